"""The click ranking's rollups (F5, F12; sql/050_link_users.sql, sql/052_link_gaps.sql).

For each campaign and for the whole project (campaign 0), kept in the shipper's
transaction like every rollup:

* report_link_click_counts: clicks per link, human or not, per UTC hour, day and month.
* report_link_users: each (link, user) pair's first and last click (and human click).
* report_link_first_counts: how many pairs first clicked per link, hour, day and month.
* report_link_gaps: for each pair, the gaps between its consecutive distinct click
  times, over all clicks (bots true) and over human clicks (bots false).

Distinct users clicking a link inside a period [S, E) are then the pairs first clicked
inside it (sums of counters) plus the pairs with a click before S and one inside: each
has exactly one gap entering the period (start < S <= end < E), counted from an index.

A batch reads the pairs' old first clicks and gaps before changing them, so writers
hold LINK_USERS_LOCK: two shippers never fold the same pair at once. Times are integer
microseconds since the Unix epoch on this side, timestamptz in the tables
(``tracker_time`` and ``tracker_us``, sql/056).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from functools import lru_cache

import asyncpg

from tracker.store.columns import columns

#: counters are kept per UTC hour, day and calendar month (the span's length in hours;
#: 744 stands for a month of any length)
HOUR_SPAN, DAY_SPAN, MONTH_SPAN = 1, 24, 744

#: one writer of the pair tables at a time (see the module docstring)
LINK_USERS_LOCK = 7302050
LOCK_WAIT = "10s"

SPANS_SQL = "(VALUES (1::smallint), (24::smallint), (744::smallint)) s (span)"

#: a day in microseconds
DAY_US = 86_400_000_000


@lru_cache(maxsize=4096)
def month_start_us(day_us: int) -> int:
    """The first microsecond of the UTC calendar month holding the day ``day_us``
    (itself the first microsecond of a UTC day)."""
    day_of_month = datetime.fromtimestamp(day_us // 1_000_000, UTC).day
    return day_us - (day_of_month - 1) * DAY_US


def span_start_sql(t: str) -> str:
    """The start of the span (column ``span``) holding instant ``t``, in SQL."""
    return (f"CASE span WHEN 1 THEN date_trunc('hour', {t}, 'UTC')"
            f" WHEN 24 THEN date_trunc('day', {t}, 'UTC')"
            f" ELSE date_trunc('month', {t}, 'UTC') END")


_CLICKS = """
INSERT INTO report_link_click_counts AS c (campaign, url_id, human, span, at, n)
SELECT c, u, h, s, tracker_time(a), n
FROM unnest($1::int[], $2::bigint[], $3::bool[], $4::int2[], $5::bigint[], $6::bigint[])
     AS b (c, u, h, s, a, n)
ON CONFLICT (campaign, span, at, human, url_id) DO UPDATE SET n = c.n + EXCLUDED.n
"""

_PAIRS = f"""
WITH b (campaign, url_id, user_id, f, l, fh, lh, old_f, old_fh) AS (
    -- old_f, old_fh: the pair's stored first click and first human click (NULL: none),
    -- read under LINK_USERS_LOCK by _write_gaps just before
    SELECT c, u, us, tracker_time(f), tracker_time(l), tracker_time(fh), tracker_time(lh),
           tracker_time(old_f), tracker_time(old_fh)
    FROM unnest($1::int[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
         AS x (c, u, us, f, l, fh, lh, old_f, old_fh)
), up AS (
    INSERT INTO report_link_users AS u
    SELECT campaign, url_id, user_id, f, l, fh, lh FROM b
    ON CONFLICT (campaign, url_id, user_id) DO UPDATE SET
        first_click = least(u.first_click, EXCLUDED.first_click),
        last_click = greatest(u.last_click, EXCLUDED.last_click),
        first_human = least(u.first_human, EXCLUDED.first_human),
        last_human = greatest(u.last_human, EXCLUDED.last_human)
), moved AS (
    SELECT campaign, url_id, true AS bots, f AS t, 1 AS n
    FROM b WHERE old_f IS NULL OR f < old_f
    UNION ALL
    SELECT campaign, url_id, true, old_f, -1 FROM b WHERE f < old_f
    UNION ALL
    SELECT campaign, url_id, false, fh, 1
    FROM b WHERE fh IS NOT NULL AND (old_fh IS NULL OR fh < old_fh)
    UNION ALL
    SELECT campaign, url_id, false, old_fh, -1 FROM b WHERE fh < old_fh
)
INSERT INTO report_link_first_counts AS c (campaign, url_id, bots, span, at, n)
SELECT m.campaign, m.url_id, m.bots, s.span, {span_start_sql("m.t")}, sum(m.n)
FROM moved m CROSS JOIN {SPANS_SQL}
GROUP BY 1, 2, 3, 4, 5
HAVING sum(m.n) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (campaign, url_id, bots, span, at) DO UPDATE SET n = c.n + EXCLUDED.n
"""

_OLD_PAIRS = """
SELECT u.campaign, u.url_id, u.user_id, tracker_us(u.first_click) AS first_click,
       tracker_us(u.last_click) AS last_click, tracker_us(u.first_human) AS first_human,
       tracker_us(u.last_human) AS last_human
FROM report_link_users u
JOIN unnest($1::int[], $2::bigint[], $3::text[]) AS b (campaign, url_id, user_id)
  USING (campaign, url_id, user_id)
"""

_SPLIT_GAPS = """
SELECT g.campaign, g.url_id, g.user_id, g.bots, tracker_us(g.gap_start) AS gap_start,
       tracker_us(g.gap_end) AS gap_end, q.us AS t
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::bool[], $5::bigint[])
     AS q (campaign, url_id, user_id, bots, us)
JOIN report_link_gaps g ON g.campaign = q.campaign AND g.url_id = q.url_id
 AND g.user_id = q.user_id AND g.bots = q.bots AND g.gap_start < tracker_time(q.us)
 AND g.gap_end > tracker_time(q.us)
"""

_DROP_GAPS = """
DELETE FROM report_link_gaps g
USING unnest($1::int[], $2::bigint[], $3::text[], $4::bool[], $5::bigint[])
      AS q (campaign, url_id, user_id, bots, gap_start)
WHERE g.campaign = q.campaign AND g.url_id = q.url_id AND g.user_id = q.user_id
  AND g.bots = q.bots AND g.gap_start = tracker_time(q.gap_start)
"""

_ADD_GAPS = """
INSERT INTO report_link_gaps (campaign, url_id, user_id, bots, gap_start, gap_end)
SELECT c, u, us, b, tracker_time(s), tracker_time(e)
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::bool[], $5::bigint[], $6::bigint[])
     AS q (c, u, us, b, s, e)
"""


def _chain(points: list[int]) -> list[tuple[int, int]]:
    return list(zip(points, points[1:], strict=False))


class LinkBatch:
    """The clicks of one landed batch, folded for the report_link_* tables."""

    def __init__(self) -> None:
        self.clicks: dict[tuple, int] = defaultdict(int)
        #: (campaign, url_id, user_id) -> (click times, human click times)
        self.pairs: dict[tuple, tuple[list[int], list[int]]] = {}

    def add(self, campaign: int, url_id: int, user_id: str | None, ts: int, hour: int,
            human: bool) -> None:
        """One click (not of a test send); ``user_id`` None when the delivery is unknown;
        ``ts`` and its ``hour`` in microseconds since the Unix epoch."""
        day = hour - hour % DAY_US
        for span, at in ((HOUR_SPAN, hour), (DAY_SPAN, day), (MONTH_SPAN, month_start_us(day))):
            self.clicks[(campaign, span, at, human, url_id)] += 1
            self.clicks[(0, span, at, human, url_id)] += 1
        if user_id is None:
            return
        for scope in (campaign, 0):
            every, humans = self.pairs.setdefault((scope, url_id, user_id), ([], []))
            every.append(ts)
            if human:
                humans.append(ts)

    async def write(self, conn: asyncpg.Connection) -> None:
        """Write the batch; the last thing its transaction does. It first takes
        LINK_USERS_LOCK, held to commit; after it the transaction touches only these
        tables (written by no one without the lock) and its own journal position, so
        it never waits for a shipper that waits for the lock: no deadlock."""
        if not self.clicks:
            return
        # a shipper stalled while holding the lock must not stall every other one: past
        # LOCK_WAIT this transaction fails and its batch is shipped again later
        await conn.execute("SELECT set_config('lock_timeout', $1, true),"
                           " pg_advisory_xact_lock($2)", LOCK_WAIT, LINK_USERS_LOCK)
        await conn.execute(_CLICKS, *columns(
            [(c, u, h, s, a, n) for (c, s, a, h, u), n in sorted(self.clicks.items())], 6))
        if not self.pairs:
            return
        keys = sorted(self.pairs)
        old = {(r[0], r[1], r[2]): r for r in await conn.fetch(_OLD_PAIRS, *columns(keys, 3))}
        await self._write_gaps(conn, keys, old)
        rows = []
        for key in keys:
            every, humans = self.pairs[key]
            stored = old.get(key)
            rows.append((*key, min(every), max(every), min(humans, default=None),
                         max(humans, default=None), stored and stored["first_click"],
                         stored and stored["first_human"]))
        await conn.execute(_PAIRS, *columns(rows, 9))

    async def _write_gaps(self, conn: asyncpg.Connection, keys: list[tuple],
                          old: dict[tuple, asyncpg.Record]) -> None:
        """New gaps from this batch's click times and the pairs' stored first and last
        clicks (``old``); a click inside a stored gap splits it (clicks may land out of
        order)."""
        added: list[tuple] = []
        inside: list[tuple] = []
        for key in keys:
            stored = old.get(key)
            for bots, times in ((True, self.pairs[key][0]), (False, self.pairs[key][1])):
                points = sorted(set(times))
                first = last = None
                if stored is not None:
                    first, last = (stored[3], stored[4]) if bots else (stored[5], stored[6])
                if first is None:
                    added.extend((*key, bots, a, b) for a, b in _chain(points))
                    continue
                before = [t for t in points if t < first]
                after = [t for t in points if t > last]
                added.extend((*key, bots, a, b) for a, b in _chain(before + [first]) if before)
                added.extend((*key, bots, a, b) for a, b in _chain([last] + after) if after)
                inside.extend((*key, bots, t) for t in points if first < t < last)
        dropped: list[tuple] = []
        if inside:
            splits: dict[tuple, list[int]] = defaultdict(list)
            for r in await conn.fetch(_SPLIT_GAPS, *columns(inside, 5)):
                splits[tuple(r)[:6]].append(r["t"])
            for (campaign, url_id, user_id, bots, start, end), points in splits.items():
                dropped.append((campaign, url_id, user_id, bots, start))
                added.extend((campaign, url_id, user_id, bots, a, b)
                             for a, b in _chain([start, *sorted(points), end]))
        if dropped:
            await conn.execute(_DROP_GAPS, *columns(sorted(dropped), 5))
        if added:
            await conn.execute(_ADD_GAPS, *columns(sorted(added), 6))


async def rebuild(conn: asyncpg.Connection, human: str) -> None:
    """Recompute the report_link_* tables from events and deliveries (already emptied
    by the caller); ``human`` is the human predicate on alias ``e``. The same SQL as
    the backfills of sql/050_link_users.sql and sql/052_link_gaps.sql."""
    await conn.execute(f"""
        INSERT INTO report_link_click_counts (campaign, url_id, human, span, at, n)
        SELECT c.campaign, k.url_id, k.human, s.span, {span_start_sql('k.hour')}, sum(k.n)
        FROM (SELECT e.campaign, e.url_id, date_trunc('hour', e.ts, 'UTC') AS hour,
                     {human} AS human, count(*) AS n
              FROM events e LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
              WHERE e.kind = 2 AND NOT coalesce(d.is_test, false)
              GROUP BY 1, 2, 3, 4) k
        CROSS JOIN LATERAL (VALUES (k.campaign), (0)) c (campaign)
        CROSS JOIN {SPANS_SQL}
        GROUP BY 1, 2, 3, 4, 5""")
    await conn.execute(f"""
        INSERT INTO report_link_users
        SELECT e.campaign, e.url_id, d.user_id, min(e.ts), max(e.ts),
               min(e.ts) FILTER (WHERE {human}), max(e.ts) FILTER (WHERE {human})
        FROM events e JOIN deliveries d ON d.delivery_id = e.delivery_id
        WHERE e.kind = 2 AND NOT d.is_test
        GROUP BY 1, 2, 3""")
    await conn.execute("""
        INSERT INTO report_link_users
        SELECT 0, url_id, user_id, min(first_click), max(last_click), min(first_human),
               max(last_human)
        FROM report_link_users GROUP BY 2, 3""")
    await conn.execute(f"""
        INSERT INTO report_link_first_counts (campaign, url_id, bots, span, at, n)
        SELECT campaign, url_id, bots, span, {span_start_sql('t')}, count(*)
        FROM (SELECT campaign, url_id, true AS bots, first_click AS t
              FROM report_link_users
              UNION ALL
              SELECT campaign, url_id, false, first_human FROM report_link_users
              WHERE first_human IS NOT NULL) f
        CROSS JOIN {SPANS_SQL}
        GROUP BY 1, 2, 3, 4, 5""")
    await conn.execute(f"""
        INSERT INTO report_link_gaps (campaign, url_id, user_id, bots, gap_start, gap_end)
        SELECT campaign, url_id, user_id, bots, previous, ts
        FROM (SELECT p.*, lag(p.ts) OVER (PARTITION BY p.campaign, p.url_id, p.user_id,
                                                       p.bots ORDER BY p.ts) AS previous
              FROM (SELECT DISTINCT c.campaign, k.url_id, k.user_id, v.bots, k.ts
                    FROM (SELECT e.campaign, e.url_id, d.user_id, e.ts, {human} AS human
                          FROM events e JOIN deliveries d ON d.delivery_id = e.delivery_id
                          WHERE e.kind = 2 AND NOT d.is_test) k
                    CROSS JOIN LATERAL (VALUES (k.campaign), (0)) c (campaign)
                    CROSS JOIN LATERAL (VALUES (true), (false)) v (bots)
                    WHERE v.bots OR k.human) p) g
        WHERE previous IS NOT NULL""")
