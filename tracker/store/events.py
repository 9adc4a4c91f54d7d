"""Landing journal batches in PostgreSQL: rows, dictionaries and position at once.

The journal position is written in the same transaction as the rows it covers,
so after any crash a batch is either wholly in the database (and its position
says so) or wholly absent (and will be shipped again): exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from tracker.classify import describe
from tracker.store import effects

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

EVENT_COLUMNS = (
    "ts", "delivery_id", "url_id", "ua_id", "campaign", "schedule_task",
    "kind", "flags", "link_position",
)

_known_months: set[date] = set()


def ts_from_us(ts_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_us)


def us_from_ts(ts: datetime) -> int:
    """ts_from_us undone, exactly (integer arithmetic on the timedelta)."""
    return (ts - EPOCH) // MICROSECOND


def _rows(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Journal tuples with the time as a datetime. ``fromtimestamp(us / 1e6)`` is exact
    to the microsecond until past year 2100 (a double holds 1e15 µs with room to spare
    and fromtimestamp rounds to the nearest µs) and half the cost of EPOCH + timedelta,
    on the shipper's per-row path."""
    fromtimestamp = datetime.fromtimestamp
    return [(fromtimestamp(e[0] / 1e6, UTC), *e[1:]) for e in events]


def _text(value: bytes) -> str:
    # PostgreSQL text cannot hold NUL; user agents are not guaranteed UTF-8.
    return value.decode("utf-8", "replace").replace("\x00", "")


async def ensure_partitions(conn: asyncpg.Connection,
                            timestamps: Iterable[datetime]) -> set[date]:
    """Create missing month partitions. Outside a transaction they are remembered
    at once; inside one, the caller remembers the returned months after commit (a
    rolled-back CREATE leaves no partition, and remembering it would make every later
    COPY of that month fail)."""
    months = {date(t.year, t.month, 1) for t in timestamps} - _known_months
    for month in sorted(months):
        await conn.execute("SELECT tracker_ensure_month_partition($1)", month)
    if not conn.is_in_transaction():
        _known_months.update(months)
    return months


async def land(
    conn: asyncpg.Connection,
    *,
    journal: str,
    segment: int,
    offset: int,
    events: list[tuple[Any, ...]],
    urls: dict[int, bytes],
    user_agents: dict[int, bytes],
) -> None:
    """Write one shipped batch. ``events`` are decoded journal tuples in
    EVENT_COLUMNS order with the time still in microseconds."""
    rows = _rows(events)
    months: set[date] = set()
    async with conn.transaction():
        if rows:
            months = await ensure_partitions(conn, (r[0] for r in rows))
        if urls:
            await conn.execute(
                "INSERT INTO urls (id, url) SELECT * FROM unnest($1::bigint[], $2::text[])"
                " ON CONFLICT (id) DO NOTHING",
                list(urls), [_text(v) for v in urls.values()],
            )
        if user_agents:
            await _land_user_agents(conn, user_agents)
        if rows:
            await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
            await effects.apply(conn, events)
        await conn.execute(
            "INSERT INTO journal_positions (journal, segment, \"offset\", updated_at)"
            " VALUES ($1, $2, $3, now()) ON CONFLICT (journal) DO UPDATE"
            " SET segment = EXCLUDED.segment, \"offset\" = EXCLUDED.\"offset\","
            " updated_at = now()",
            journal, segment, offset,
        )
    _known_months.update(months)


async def _land_user_agents(conn: asyncpg.Connection, user_agents: dict[int, bytes]) -> None:
    """New user agents, with the client, OS and device families of the per-client
    breakdown (F22) worked out once per string, here, off the request path."""
    texts = [_text(v) for v in user_agents.values()]
    described = [describe(t) for t in texts]
    await conn.execute(
        "INSERT INTO user_agents (id, user_agent, client_family, os_family, device_family,"
        " device_class, is_bot) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
        " $4::text[], $5::text[], $6::text[], $7::boolean[]) ON CONFLICT (id) DO NOTHING",
        list(user_agents), texts, [d["client"] for d in described],
        [d["os"] for d in described], [d["device"] for d in described],
        [d["device_class"] for d in described], [d["is_bot"] for d in described],
    )


async def shipped_position(conn: asyncpg.Connection, journal: str) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT segment, \"offset\" FROM journal_positions WHERE journal = $1", journal
    )
    return (row["segment"], row["offset"]) if row else (0, 0)


async def forget_journal(conn: asyncpg.Connection, journal: str) -> None:
    await conn.execute("DELETE FROM journal_positions WHERE journal = $1", journal)
