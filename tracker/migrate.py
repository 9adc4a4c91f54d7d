"""Apply the plain SQL files in ``sql/`` in name order, each once.

Each file runs in its own transaction and is recorded in ``schema_migrations``;
an advisory lock makes concurrent starts (several workers, several test
processes) wait for one another instead of racing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_LOCK_KEY = 7_462_001  # arbitrary, fixed: "tracker migrations"


def sql_dir() -> Path:
    """The migrations folder: packaged inside the wheel, or the repo's ``sql/``."""
    packaged = Path(__file__).parent / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "sql"


def migration_files() -> list[Path]:
    return sorted(sql_dir().glob("*.sql"))


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in migration_files():
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            log.info("applied migration %s", path.name)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate_url(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
