"""Report rollups kept in step with landed events (in the shipper's transaction).

``apply`` runs in the same transaction as the COPY of ``rows``, so a rollup can
never count an event that is not in the log, nor miss one that is: reports read
these tables for whole hours and stay exactly equal to the raw events.

* report_event_hours: event counts per (campaign, schedule task, channel, UTC hour,
  kind, human) for the count figures.
* report_delivery_firsts: per delivery the first open, click and conversion, for the
  unique-user figures.

Rows are sorted by key before the upserts so that concurrent shippers (one per
worker) lock counter rows in the same order and never deadlock.
"""

from __future__ import annotations

import asyncpg

#: the human predicate on events.flags (not HEAD; verdict human or proxied open);
#: tracker/reports and sql/020_reports.sql use the same expression.
HUMAN_SQL = "((flags & 1) = 0 AND ((flags >> 1) & 7) IN (0, 2))"

_UNNEST = (
    "unnest($1::timestamptz[], $2::bigint[], $3::int[], $4::int[], $5::int2[], $6::int2[])"
    " AS r(ts, delivery_id, campaign, schedule_task, kind, flags)"
)

_HOURS = f"""
INSERT INTO report_event_hours AS h (hour, n, campaign, schedule_task, channel, kind, human)
SELECT date_trunc('hour', r.ts, 'UTC'), count(*), r.campaign, r.schedule_task,
       coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END),
       r.kind, {HUMAN_SQL.replace('flags', 'r.flags')}
FROM {_UNNEST}
LEFT JOIN deliveries d ON d.delivery_id = r.delivery_id
LEFT JOIN campaigns c ON c.id = r.campaign
WHERE NOT coalesce(d.is_test, false)
GROUP BY 1, 3, 4, 5, 6, 7
ORDER BY 3, 1, 4, 5, 6, 7
ON CONFLICT (campaign, hour, schedule_task, channel, kind, human)
DO UPDATE SET n = h.n + EXCLUDED.n
"""

_FIRSTS = f"""
INSERT INTO report_delivery_firsts AS f
SELECT r.delivery_id,
       min(r.ts) FILTER (WHERE r.kind = 1),
       min(r.ts) FILTER (WHERE r.kind = 1 AND {HUMAN_SQL.replace('flags', 'r.flags')}),
       min(r.ts) FILTER (WHERE r.kind = 2),
       min(r.ts) FILTER (WHERE r.kind = 2 AND {HUMAN_SQL.replace('flags', 'r.flags')}),
       min(r.ts) FILTER (WHERE r.kind = 5)
FROM {_UNNEST}
WHERE r.kind IN (1, 2, 5)
GROUP BY r.delivery_id
ORDER BY r.delivery_id
ON CONFLICT (delivery_id) DO UPDATE SET
    first_open = least(f.first_open, EXCLUDED.first_open),
    first_human_open = least(f.first_human_open, EXCLUDED.first_human_open),
    first_click = least(f.first_click, EXCLUDED.first_click),
    first_human_click = least(f.first_human_click, EXCLUDED.first_human_click),
    first_conversion = least(f.first_conversion, EXCLUDED.first_conversion)
"""


async def apply(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    """Fold landed event rows (tracker.store.events.EVENT_COLUMNS order, ts a
    datetime) into the rollup tables."""
    if not rows:
        return
    columns = (
        [r[0] for r in rows], [r[1] for r in rows], [r[4] for r in rows],
        [r[5] for r in rows], [r[6] for r in rows], [r[7] for r in rows],
    )
    await conn.execute(_HOURS, *columns)
    if any(r[6] in (1, 2, 5) for r in rows):
        await conn.execute(_FIRSTS, *columns)


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recompute both rollups from the event log (after a bulk load that bypassed the
    shipper, or to prove they match); same SQL as the backfill in 020_reports.sql."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute("TRUNCATE report_event_hours, report_delivery_firsts")
        await conn.execute(f"""
            INSERT INTO report_event_hours (hour, n, campaign, schedule_task, channel, kind,
                                            human)
            SELECT date_trunc('hour', e.ts, 'UTC'), count(*), e.campaign, e.schedule_task,
                   coalesce(d.channel,
                            CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END),
                   e.kind, {HUMAN_SQL.replace('flags', 'e.flags')}
            FROM events e
            LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
            LEFT JOIN campaigns c ON c.id = e.campaign
            WHERE NOT coalesce(d.is_test, false)
            GROUP BY 1, 3, 4, 5, 6, 7""")
        await conn.execute(f"""
            INSERT INTO report_delivery_firsts
            SELECT delivery_id,
                   min(ts) FILTER (WHERE kind = 1),
                   min(ts) FILTER (WHERE kind = 1 AND {HUMAN_SQL}),
                   min(ts) FILTER (WHERE kind = 2),
                   min(ts) FILTER (WHERE kind = 2 AND {HUMAN_SQL}),
                   min(ts) FILTER (WHERE kind = 5)
            FROM events WHERE kind IN (1, 2, 5)
            GROUP BY delivery_id""")
