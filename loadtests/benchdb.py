"""The database a bench runs against: ``TRACKER_DATABASE_URL``'s when set, else an
embedded PostgreSQL in a temporary directory, stopped and removed afterwards;
migrated either way."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bench_database() -> Iterator[tuple[str, Path]]:
    """(DSN, a temporary directory for the bench's own files)."""
    from tracker.embedded import pg_ctl_stop, start_embedded
    from tracker.migrate import migrate_url

    with tempfile.TemporaryDirectory() as tmp:
        dsn = os.environ.get("TRACKER_DATABASE_URL")
        pgdata = Path(tmp) / "pgdata"
        if not dsn:
            Path(tmp).chmod(0o755)  # the embedded server runs as another user under root
            dsn = start_embedded(pgdata)
        try:
            asyncio.run(migrate_url(dsn))
            yield dsn, Path(tmp)
        finally:
            if not os.environ.get("TRACKER_DATABASE_URL"):
                pg_ctl_stop(pgdata)
