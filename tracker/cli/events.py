"""``tracker events``: the newest rows of the event log, to see that hits landed."""

from __future__ import annotations

import asyncio

import asyncpg
import click

from tracker.cli.database import connect, database_url, settings_or_exit


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
def events(limit: int) -> None:
    """Show the newest events and outcomes (the message_event_log view)."""
    settings = settings_or_exit()
    dsn = database_url(settings)

    async def fetch() -> list[asyncpg.Record]:
        async with connect(dsn) as conn:
            rows: list[asyncpg.Record] = await conn.fetch(
                'SELECT "timestamp", event_name, campaign_id, schedule_task_id, delivery_id,'
                " user_id, channel, coalesce(link_url, error_code, '') AS detail"
                ' FROM message_event_log ORDER BY "timestamp" DESC LIMIT $1', limit)
            return rows

    rows = asyncio.run(fetch())
    if not rows:
        click.echo("no events yet")
        return
    for r in rows:
        click.echo(f"{r['timestamp']:%Y-%m-%d %H:%M:%S.%f}  {r['event_name']:<20} "
                   f"{r['campaign_id']}/{r['schedule_task_id']}  delivery={r['delivery_id']} "
                   f"user={r['user_id']} {r['channel']} {r['detail']}")
