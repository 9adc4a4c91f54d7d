"""``tracker ship``: the shipper process (tracker/shipper.py).

``tracker serve`` starts it by itself (tracker/shipping.py), one per data directory
whatever the number of workers, so nobody needs to run it by hand. Run by hand, it
ships the journals a stopped service left behind (or runs beside a live one if
none runs yet) and exits once every journal is shipped.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from pathlib import Path

import click

from tracker.cli.database import database_url, settings_or_exit


@click.command()
@click.option("--journal-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The journal root (default: TRACKER_DATA_DIR/journal).")
@click.option("--lock-fd", type=int, hidden=True,
              help="The root's SHIPPER file, already flocked by the process starting us.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def ship(journal_dir: Path | None, lock_fd: int | None, log_level: str) -> None:
    """Ship journaled events to PostgreSQL until no journal is left to ship."""
    import logging

    from tracker import metrics
    from tracker.shipper import run_process
    from tracker.shipper_status import open_status

    dsn = os.environ.get("TRACKER_DATABASE_URL")
    if dsn is None or journal_dir is None:
        settings = settings_or_exit()
        dsn = dsn or database_url(settings)
        journal_dir = journal_dir or settings.journal_dir
    logging.getLogger("uvicorn.error").setLevel(log_level.upper())
    metrics.configure_logging()
    if lock_fd is None:
        lock_fd = open_status(journal_dir)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            click.echo(f"tracker: a shipper already runs for {journal_dir}")
            return
    try:
        import uvloop  # the server's loop, a dependency of it

        sys.exit(uvloop.run(run_process(dsn, journal_dir, lock_fd)))
    except ImportError:  # pragma: no cover
        sys.exit(asyncio.run(run_process(dsn, journal_dir, lock_fd)))
