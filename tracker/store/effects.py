"""What landing events changes besides the event log: the suppression list, the report
counters, the deliveries' firsts and the click ranking's counters.

One SQL function does it all, in one lock order (sql/067_fold_events.sql,
tracker_fold_events): the batch goes to PostgreSQL once, as the columns of its event
tuples, and is folded there in bulk. Called inside the landing transaction, so an
effect can never be applied without its events, or twice for them. ``rows`` are tuples
in tracker.store.events.EVENT_COLUMNS order with ``ts`` in microseconds since the Unix
epoch, as the journal holds them (asyncpg encodes an integer at a quarter of a
datetime's cost; tracker_time converts them in SQL).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.store.columns import columns

_FOLD = ("SELECT tracker_fold_events($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],"
         " $5::int[], $6::int[], $7::int2[], $8::int2[])")


async def apply(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.execute(_FOLD, *columns(rows, 8))
