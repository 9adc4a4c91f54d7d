"""Reading the suppression list (F14): who must not be sent to, and why."""

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
