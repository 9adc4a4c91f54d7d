"""Apply the plain SQL files in ``sql/`` in name order, each once.

Each file runs in its own transaction and is recorded in ``schema_migrations``;
an advisory lock makes concurrent starts (several workers, several test
processes) wait for one another instead of racing (on a Citus cluster every tracker
migrates through the coordinator, so the lock is the coordinator's and still serves).

The same files serve plain PostgreSQL and Citus: sql/072 hands the tables to Citus
when the ``citus`` extension is installed in the database and does nothing otherwise.
When a run applied migrations on Citus, one log line (INFO, this module's logger)
says where the tables now are; ``citus_placements_url`` gives the same line to a
command that prints it.
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
    if applied_now:
        placements = await citus_placements(conn)
        if placements is not None:
            log.info("Citus: %s", placements)
    return applied_now


async def citus_placements(conn: asyncpg.Connection) -> str | None:
    """Where Citus keeps the tracker's tables, in one line (None without Citus):
    distributed tables by column and co-location group, reference tables, and the
    tables that stay on the coordinator."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_extension"
                               " WHERE extname = 'citus')"):
        return None
    rows = await conn.fetch(
        "SELECT c.relname, t.citus_table_type AS kind, t.distribution_column AS column,"
        " t.colocation_id FROM pg_class c"
        " LEFT JOIN citus_tables t ON t.table_name = c.oid"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND NOT c.relispartition ORDER BY c.relname")
    distributed: dict[tuple[str, int], list[str]] = {}
    reference: list[str] = []
    local: list[str] = []
    for row in rows:
        if row["kind"] == "distributed":
            distributed.setdefault((row["column"], row["colocation_id"]), []).append(row["relname"])
        elif row["kind"] == "reference":
            reference.append(row["relname"])
        else:
            local.append(row["relname"])
    parts = [f"distributed by {column} (co-location group {group}): {', '.join(names)}"
             for (column, group), names in sorted(distributed.items())]
    parts.append(f"reference tables: {', '.join(reference) or 'none'}")
    parts.append(f"on the coordinator: {', '.join(local) or 'none'}")
    return "; ".join(parts)


async def citus_placements_url(dsn: str) -> str | None:
    """``citus_placements`` of the database at ``dsn``."""
    conn = await asyncpg.connect(dsn)
    try:
        return await citus_placements(conn)
    finally:
        await conn.close()


async def migrate_url(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
