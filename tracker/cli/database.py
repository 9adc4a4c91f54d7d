"""Finding the database for a command: the configured one, or the embedded one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import click

from tracker.config import ConfigError, Settings, load_settings
from tracker.migrate import migrate_url


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def database_url(settings: Settings) -> str:
    """TRACKER_DATABASE_URL, or the embedded server under the data dir (started now)."""
    if settings.database_url:
        return settings.database_url
    from tracker.embedded import start_embedded

    return start_embedded(settings.data_dir / "pgdata")


def migrate_or_exit(dsn: str) -> list[str]:
    try:
        return asyncio.run(migrate_url(dsn))
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(
            f"cannot reach or migrate the database ({exc}); check TRACKER_DATABASE_URL"
        ) from exc


def align_link_zone_or_exit(dsn: str, timezone: str) -> None:
    """Keep the click ranking's counters by the reports' local days (TRACKER_TIMEZONE):
    what ``tracker serve`` and ``tracker migrate`` do after migrating, and only they
    (a one-off command in another zone must not refold a service's counters)."""
    from tracker.store.link_rollups import align_zone

    async def align() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            if await align_zone(conn, timezone):
                click.echo(f"tracker: the click ranking's counters now follow {timezone}'s"
                           " local days")
        finally:
            await conn.close()

    try:
        asyncio.run(align())
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(
            f"cannot keep the click counters by {timezone}'s days ({exc}); check"
            " TRACKER_TIMEZONE and TRACKER_DATABASE_URL") from exc


@contextlib.asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
