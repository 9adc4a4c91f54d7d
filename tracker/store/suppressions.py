"""Reading the suppression list (docs/figures.md#f14): who must not be sent to, and why."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def suppression(conn: asyncpg.Connection, user_id: str,
                      channel: int) -> tuple[str, datetime] | None:
    """(reason, since) if the user is suppressed on the channel, else None."""
    row = await conn.fetchrow(
        "SELECT reason, since FROM suppressions WHERE user_id = $1 AND channel = $2",
        user_id, channel)
    return (row["reason"], row["since"]) if row else None


async def suppressed_among(conn: asyncpg.Connection, user_ids: list[str],
                           channel: int) -> dict[str, str]:
    """{user_id: reason} for those of ``user_ids`` suppressed on the channel (one query)."""
    rows = await conn.fetch(
        "SELECT user_id, reason FROM suppressions WHERE channel = $2 AND user_id = ANY($1::text[])",
        user_ids, channel)
    return {r["user_id"]: r["reason"] for r in rows}



async def reason_for_delivery(conn: asyncpg.Connection, delivery_id: int, *,
                              timeout: float | None = None) -> str | None:
    """Why the delivery's user is suppressed on the delivery's channel, or None."""
    reason: str | None = await conn.fetchval(
        "SELECT s.reason FROM deliveries d JOIN suppressions s"
        " ON s.user_id = d.user_id AND s.channel = d.channel WHERE d.delivery_id = $1",
        delivery_id, timeout=timeout)
    return reason

#: Why a user is suppressed. ``unsubscribe`` is the only reason a resubscribe lifts;
#: ``import`` marks rows brought in from another platform without a reason.
REASONS = ("hard_bounce", "complaint", "unsubscribe", "token_not_registered", "import")

#: How a new reason meets the user's row, for every writer but the unsubscribe itself
#: (which never replaces a row). A harder reason replaces an unsubscribe, so a later
#: resubscribe cannot lift a hard bounce; among the harder reasons the earliest event
#: names the reason and the date. Events arrive out of order (SNS keeps none), and
#: this rule makes the row the same whatever order they arrive in.
UPSERT_TAIL = (
    " ON CONFLICT (user_id, channel) DO UPDATE SET reason = EXCLUDED.reason,"
    " since = EXCLUDED.since"
    " WHERE EXCLUDED.reason <> 'unsubscribe'"
    " AND (suppressions.reason = 'unsubscribe' OR EXCLUDED.since < suppressions.since)"
)


async def suppress(conn: asyncpg.Connection,
                   rows: list[tuple[str, int, str, datetime]]) -> int:
    """Put (user_id, channel, reason, since) rows on the list; returns rows changed."""
    if not rows:
        return 0
    result = await conn.execute(
        "INSERT INTO suppressions (user_id, channel, reason, since)"
        " SELECT DISTINCT ON (u, c) u, c, r, s"
        " FROM unnest($1::text[], $2::smallint[], $3::text[], $4::timestamptz[]) AS t(u, c, r, s)"
        " ORDER BY u, c, (r = 'unsubscribe'), s" + UPSERT_TAIL,
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    return int(result.rsplit(" ", 1)[1])


async def suppressions_of(conn: asyncpg.Connection,
                          user_id: str) -> list[tuple[int, str, datetime]]:
    """Every (channel, reason, since) the user is suppressed on, oldest first."""
    rows = await conn.fetch(
        "SELECT channel, reason, since FROM suppressions WHERE user_id = $1"
        " ORDER BY since, channel",
        user_id)
    return [(r["channel"], r["reason"], r["since"]) for r in rows]


async def import_rows(conn: asyncpg.Connection,
                      rows: list[tuple[str, int, str, datetime]]) -> int:
    """COPY a chunk of imported rows into the session's ``suppressions_import`` table
    (made by ``begin_import``); ``finish_import`` merges them in one statement."""
    await conn.copy_records_to_table("suppressions_import", records=rows,
                                     columns=("user_id", "channel", "reason", "since"))
    return len(rows)


async def begin_import(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TEMP TABLE suppressions_import (user_id text, channel smallint, reason text,"
        " since timestamptz) ON COMMIT DROP")


async def finish_import(conn: asyncpg.Connection) -> int:
    """Merge the imported rows; returns how many rows were added or changed."""
    result = await conn.execute(
        "INSERT INTO suppressions (user_id, channel, reason, since)"
        " SELECT DISTINCT ON (user_id, channel) user_id, channel, reason, since"
        " FROM suppressions_import ORDER BY user_id, channel, (reason = 'unsubscribe'), since"
        + UPSERT_TAIL)
    return int(result.rsplit(" ", 1)[1])


async def count(conn: asyncpg.Connection) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM suppressions")
    return total
