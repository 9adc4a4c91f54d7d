"""What landing events changes besides the event log.

Called inside the shipper's transaction, so an effect can never be applied
without its events, or twice for them. ``rows`` are tuples in
tracker.store.events.EVENT_COLUMNS order with ``ts`` as a datetime.
"""

from __future__ import annotations

import asyncpg

from tracker.events import Kind
from tracker.store import rollups, subscriptions
from tracker.store.deliveries import DELIVERY_COUNTERS_LOCK

_SUBSCRIPTION_KINDS = (Kind.UNSUBSCRIBE, Kind.SUBSCRIBE)


async def apply(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    if any(r[6] in _SUBSCRIPTION_KINDS for r in rows):
        # suppressions rows are also written by the outcome API while it holds the
        # deliveries' counters lock, which the first-event rollup below takes too:
        # taking it before them keeps the two from waiting on each other (deadlock)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DELIVERY_COUNTERS_LOCK)
    await subscriptions.apply(conn, rows)
    await rollups.apply(conn, rows)
