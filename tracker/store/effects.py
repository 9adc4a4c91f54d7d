"""What landing an event changes besides the event log.

Called inside the shipper's transaction, so an effect can never be applied
without its event or twice for one event. Each effect reads the landed rows
(tuples in tracker.store.events.EVENT_COLUMNS order, ``ts`` as a datetime).
"""

from __future__ import annotations

import asyncpg

from tracker.events import Kind


async def apply(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Apply every effect of a landed batch."""
    preferences = [r for r in rows if r[6] in (Kind.UNSUBSCRIBE, Kind.SUBSCRIBE)]
    if preferences:
        await _apply_subscription_changes(conn, preferences)


async def _apply_subscription_changes(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """An unsubscribe puts the delivery's user on the channel's suppression list; a
    resubscribe lifts an unsubscribe but never a hard bounce (F14, F17)."""
    for row in sorted(rows, key=lambda r: r[0]):
        ts, delivery_id, kind = row[0], row[1], row[6]
        if kind == Kind.UNSUBSCRIBE:
            await conn.execute(
                "INSERT INTO suppressions (user_id, channel, reason, since)"
                " SELECT user_id, channel, 'unsubscribe', $2 FROM deliveries"
                " WHERE delivery_id = $1 ON CONFLICT (user_id, channel) DO NOTHING",
                delivery_id, ts,
            )
        else:
            await conn.execute(
                "DELETE FROM suppressions s USING deliveries d"
                " WHERE d.delivery_id = $1 AND s.user_id = d.user_id"
                " AND s.channel = d.channel AND s.reason = 'unsubscribe'",
                delivery_id,
            )
