"""Conversions (docs/figures.md#f11, #f16): kept raw, and credited to the last click before them.

A conversion of user U named N at time t goes to the campaign whose click by U
came last before t, among campaigns whose conversion name is N and whose window
(hours after the click) still covers t. Defaults are the FAQ platform's: name
``buy``, 48 hours; a campaign overrides them with ``settings.conversion =
{"name": ..., "window_hours": ...}``. Test sends and clicks the classifier judged
to be scanners or bots never earn credit.

Each conversion lands in ``conversions`` with its attribution (or none); an
attributed one is also a ``message_conversion`` event carrying the click's
delivery, campaign and schedule task, in the same transaction, so the two never
disagree. The same (user_id, name, ts) posted again is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from tracker.classify.verdict import Verdict, verdict_sql
from tracker.events import Kind
from tracker.store import effects
from tracker.store.events import EVENT_COLUMNS, ensure_partitions, us_from_ts

DEFAULT_NAME = "buy"
DEFAULT_WINDOW_HOURS = 48
#: classifier verdicts that never earn a conversion
BOT_VERDICTS = (Verdict.SCANNER_CLICK, Verdict.OTHER_BOT)


class Conversion(NamedTuple):
    user_id: str
    name: str
    ts: datetime
    value: Decimal | None = None


@dataclass(frozen=True)
class ConversionResult:
    received: int
    stored: int  # new conversions (the rest were already stored)
    attributed: int  # of the new ones, credited to a click


_ATTRIBUTE = f"""
SELECT i.ord, i.ts, i.user_id, i.name, i.value,
       a.delivery_id, a.campaign, a.schedule_task, a.click_ts
FROM conversions_in i
LEFT JOIN LATERAL (
    SELECT e.delivery_id, e.campaign, e.schedule_task, e.ts AS click_ts
    FROM deliveries d
    JOIN events e ON e.delivery_id = d.delivery_id AND e.kind = {int(Kind.CLICK)}
    JOIN campaigns c ON c.id = d.campaign
    WHERE d.user_id = i.user_id AND NOT d.is_test
      AND e.ts <= i.ts
      AND {verdict_sql("e.flags")} NOT IN ({", ".join(str(int(v)) for v in BOT_VERDICTS)})
      AND coalesce(c.settings -> 'conversion' ->> 'name', '{DEFAULT_NAME}') = i.name
      AND e.ts >= i.ts - interval '1 hour' * (
          CASE WHEN jsonb_typeof(c.settings -> 'conversion' -> 'window_hours') = 'number'
               THEN (c.settings -> 'conversion' ->> 'window_hours')::float8
               ELSE {DEFAULT_WINDOW_HOURS} END)
    ORDER BY e.ts DESC
    LIMIT 1
) a ON true
"""


async def ingest(conn: asyncpg.Connection, conversions: list[Conversion]) -> ConversionResult:
    """Store and attribute a validated batch, all or nothing."""
    if not conversions:
        return ConversionResult(0, 0, 0)
    # partitions first, in their own transaction: a rolled-back batch must not leave
    # ensure_partitions believing a month exists that was rolled back with it
    await ensure_partitions(conn, (c.ts for c in conversions))
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE conversions_in (ord integer, user_id text, name text,"
            " ts timestamptz, value numeric) ON COMMIT DROP")
        await conn.copy_records_to_table(
            "conversions_in", records=[(i, *c) for i, c in enumerate(conversions)],
            columns=("ord", "user_id", "name", "ts", "value"))
        await conn.execute("ANALYZE conversions_in")
        stored = await conn.fetch(
            f"WITH attributed AS ({_ATTRIBUTE}), ins AS ("
            " INSERT INTO conversions (ts, user_id, name, value, delivery_id, campaign,"
            "                          schedule_task, click_ts)"
            " SELECT ts, user_id, name, value, delivery_id, campaign, schedule_task, click_ts"
            " FROM attributed ORDER BY ord"
            " ON CONFLICT (user_id, name, ts) DO NOTHING"
            " RETURNING ts, delivery_id, campaign, schedule_task)"
            " SELECT * FROM ins")
        rows = [(r["ts"], r["delivery_id"], 0, 0, r["campaign"], r["schedule_task"],
                 int(Kind.CONVERSION), 0, 0) for r in stored if r["delivery_id"] is not None]
        if rows:
            await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
            await effects.apply(conn, [(us_from_ts(r[0]), *r[1:]) for r in rows])
    return ConversionResult(len(conversions), len(stored), len(rows))
