"""Report rollups kept in step with landed events (in the shipper's transaction).

Nothing is rolled up yet: reports read the event log directly."""

from __future__ import annotations

import asyncpg


async def apply(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Fold landed event rows into the rollup tables."""
    return None
