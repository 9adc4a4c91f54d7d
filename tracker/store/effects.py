"""What landing events changes besides the event log.

Called inside the shipper's transaction, so an effect can never be applied
without its events, or twice for them. ``rows`` are tuples in
tracker.store.events.EVENT_COLUMNS order with ``ts`` in microseconds since the Unix
epoch, as the journal holds them.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.store import rollups, subscriptions


async def apply(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await subscriptions.apply(conn, rows)
    await rollups.apply(conn, rows)
