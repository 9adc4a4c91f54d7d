"""Unsubscribes and resubscribes landing from the journal change the suppression list."""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.events import Kind
from tracker.store.deliveries import DELIVERY_COUNTERS_LOCK


async def apply(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    changes = [r for r in rows if r[6] in (Kind.UNSUBSCRIBE, Kind.SUBSCRIBE)]
    if changes:
        # the outcome API writes suppressions while it holds the deliveries' counters
        # lock, which the first-event rollup after this takes too: taking it before
        # the suppressions rows keeps the two from waiting on each other (deadlock)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DELIVERY_COUNTERS_LOCK)
    for row in sorted(changes, key=lambda r: r[0]):
        ts, delivery_id, kind = row[0], row[1], row[6]
        if kind == Kind.UNSUBSCRIBE:
            # an unsubscribe puts the user on the channel's suppression list (F14, F17)
            await conn.execute(
                "INSERT INTO suppressions (user_id, channel, reason, since)"
                " SELECT user_id, channel, 'unsubscribe', tracker_time($2) FROM deliveries"
                " WHERE delivery_id = $1 ON CONFLICT (user_id, channel) DO NOTHING",
                delivery_id, ts,
            )
        else:
            # a resubscribe lifts an unsubscribe, never a hard bounce
            await conn.execute(
                "DELETE FROM suppressions s USING deliveries d"
                " WHERE d.delivery_id = $1 AND s.user_id = d.user_id"
                " AND s.channel = d.channel AND s.reason = 'unsubscribe'",
                delivery_id,
            )
