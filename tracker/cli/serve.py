"""``tracker serve`` and ``tracker migrate``."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import click

from tracker.cli.database import (
    align_link_zone_or_exit,
    database_url,
    migrate_or_exit,
    settings_or_exit,
)
from tracker.migrate import citus_placements_url


def _printable(dsn: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", dsn)


def _metrics_dir(data_dir: Path) -> Path:
    """An emptied directory for prometheus_client's multiprocess files: with several
    workers each writes its counters there and a scrape sums them all (see
    tracker/metrics.py). Files of an earlier run would be summed too: removed first."""
    directory = data_dir / "prometheus"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes serving requests; each has its own journal.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False),
              help="The PEM private key of --ssl-certfile.")
def serve(host: str, port: int, workers: int, log_level: str, ssl_certfile: str | None,
          ssl_keyfile: str | None) -> None:
    """Migrate the database if needed, then serve (HTTPS with --ssl-certfile/--ssl-keyfile)."""
    import uvicorn

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise click.UsageError("--ssl-certfile and --ssl-keyfile go together: give both "
                               "(PEM certificate and its private key) or neither")

    settings = settings_or_exit()
    dsn = database_url(settings)
    applied = migrate_or_exit(dsn)
    align_link_zone_or_exit(dsn, settings.timezone)
    # the workers read the same settings; the embedded database's DSN goes to them here
    os.environ["TRACKER_DATABASE_URL"] = dsn
    os.environ["TRACKER_DATA_DIR"] = str(settings.data_dir)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir(settings.data_dir))
    scheme = "https" if ssl_certfile else "http"
    click.echo(f"tracker: listening on {scheme}://{host}:{port} with {workers} worker(s)")
    where = "embedded PostgreSQL in " + str(settings.data_dir / "pgdata") \
        if not settings.database_url else _printable(dsn)
    click.echo(f"tracker: database {where}"
               + (f" (applied {', '.join(applied)})" if applied else ""))
    click.echo(f"tracker: public URL {settings.public_url}, data in {settings.data_dir}")
    for item in settings.generated:
        click.echo(f"tracker: generated {item}")
    # uvicorn re-raises the signal it stopped on; with a Python handler in place that
    # becomes a normal exit, so the embedded database is stopped at exit too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "tracker.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=5,
        loop="uvloop",
        http="tracker.protocol:GuardedHttpToolsProtocol",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


@click.command()
def migrate() -> None:
    """Apply the SQL migrations in sql/ (idempotent)."""
    settings = settings_or_exit()
    dsn = database_url(settings)
    applied = migrate_or_exit(dsn)
    align_link_zone_or_exit(dsn, settings.timezone)
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")
    placements = asyncio.run(citus_placements_url(dsn))
    if placements is not None:  # a Citus cluster's coordinator: where the tables are
        click.echo("Citus: " + placements)
