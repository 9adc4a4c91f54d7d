"""Report rollups kept in step with landed events (in the shipper's transaction).

``apply`` runs in the same transaction as the COPY of ``rows``, so a rollup can
never count an event that is not in the log, nor miss one that is: reports read
these tables for whole hours and stay exactly equal to the raw events.

* report_event_hours: event counts per (campaign, schedule task, channel, UTC hour,
  kind, human) for the count figures.
* deliveries' firsts (first_open ... first_conversion, sql/064): per delivery the
  first open, click and conversion, for the unique-user figures, folded in PostgreSQL
  by tracker_fold_firsts (the one declaration the rebuild uses too).
* report_click_hours, report_click_users: clicks per link and hour, and per (link,
  user) the first and last click, for the click ranking (sql/040_report_speed.sql).
* report_agent_hours: opens and clicks per user agent and hour (F22 breakdown).
* report_link_counts, report_link_returns: the click ranking's, folded by
  tracker.store.link_rollups (sql/060).
* report_delivery_cells, report_campaign_repeats: the campaign list's people figures,
  kept by triggers on deliveries (sql/055, sql/064).

``apply`` is on the serving process's hot path: it aggregates the batch in Python
(one row per hour and key, one per delivery, one per link and user) and sends only
the aggregates, after one look-up of the batch's deliveries; the firsts are folded in
PostgreSQL from the batch's times, kinds and flags. Times stay integer
microseconds since the Unix epoch, as journaled, and become timestamptz in SQL
(``tracker_time``, sql/056): asyncpg encodes an integer at a quarter of a datetime's
cost. Rows are sorted by key before the upserts so that concurrent shippers (one per
worker) lock counter rows in the same order and never deadlock. Outcome counts
(report_outcome_hours) are kept by triggers on deliveries instead, since many writers
change deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

from tracker.store import link_rollups
from tracker.store.columns import columns

#: the human predicate on events.flags (not HEAD; verdict human or proxied open);
#: tracker/reports and sql/020_reports.sql use the same expression.
HUMAN_SQL = "((flags & 1) = 0 AND ((flags >> 1) & 7) IN (0, 2))"

_CHANNEL_OF_CAMPAIGN = {"push": 2, "line": 3}


def is_human(flags: int) -> bool:
    """HUMAN_SQL in Python."""
    return (flags & 1) == 0 and ((flags >> 1) & 7) in (0, 2)


#: an hour in microseconds
HOUR_US = 3_600_000_000


_HOURS = """
INSERT INTO report_event_hours AS h (campaign, hour, schedule_task, channel, kind, human, n)
SELECT c, tracker_time(t), s, ch, k, hu, n
FROM unnest($1::int[], $2::bigint[], $3::int[], $4::int2[], $5::int2[], $6::bool[],
            $7::bigint[]) AS b (c, t, s, ch, k, hu, n)
ON CONFLICT (campaign, hour, schedule_task, channel, kind, human)
DO UPDATE SET n = h.n + EXCLUDED.n
"""

_CLICK_HOURS = """
INSERT INTO report_click_hours AS h (campaign, hour, schedule_task, channel, url_id, human, n)
SELECT c, tracker_time(t), s, ch, u, hu, n
FROM unnest($1::int[], $2::bigint[], $3::int[], $4::int2[], $5::bigint[], $6::bool[],
            $7::bigint[]) AS b (c, t, s, ch, u, hu, n)
ON CONFLICT (campaign, hour, schedule_task, channel, url_id, human)
DO UPDATE SET n = h.n + EXCLUDED.n
"""

_AGENT_HOURS = """
INSERT INTO report_agent_hours AS h (campaign, hour, schedule_task, channel, ua_id, kind,
                                     human, n)
SELECT c, tracker_time(t), s, ch, a, k, hu, n
FROM unnest($1::int[], $2::bigint[], $3::int[], $4::int2[], $5::bigint[], $6::int2[],
            $7::bool[], $8::bigint[]) AS b (c, t, s, ch, a, k, hu, n)
ON CONFLICT (campaign, hour, schedule_task, channel, ua_id, kind, human)
DO UPDATE SET n = h.n + EXCLUDED.n
"""

#: the batch's opens, clicks and conversions (times, deliveries, kinds, flags) folded
#: into their deliveries' firsts (sql/064)
_FIRSTS = "SELECT tracker_fold_firsts($1::bigint[], $2::bigint[], $3::int2[], $4::int2[])"

_CLICK_USERS = """
INSERT INTO report_click_users AS u (campaign, url_id, user_id, schedule_task, channel,
                                     first_click, last_click, first_human, last_human)
SELECT c, l, us, s, ch, tracker_time(f), tracker_time(la), tracker_time(fh),
       tracker_time(lh)
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::int[], $5::int2[], $6::bigint[],
            $7::bigint[], $8::bigint[], $9::bigint[]) AS b (c, l, us, s, ch, f, la, fh, lh)
ON CONFLICT (campaign, url_id, user_id, schedule_task, channel) DO UPDATE SET
    first_click = least(u.first_click, EXCLUDED.first_click),
    last_click = greatest(u.last_click, EXCLUDED.last_click),
    first_human = least(u.first_human, EXCLUDED.first_human),
    last_human = greatest(u.last_human, EXCLUDED.last_human)
"""


def _min(a: int | None, b: int) -> int:
    return b if a is None or b < a else a


def _max(a: int | None, b: int) -> int:
    return b if a is None or b > a else a


async def apply(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Fold landed event rows (tracker.store.events.EVENT_COLUMNS order: ts, delivery_id,
    url_id, ua_id, campaign, schedule_task, kind, flags, link_position; ts in
    microseconds since the Unix epoch) into the rollup tables."""
    if not rows:
        return
    found = await conn.fetch(
        "SELECT d.delivery_id, d.channel, d.is_test, d.user_id FROM deliveries d"
        " WHERE d.delivery_id = ANY($1::bigint[])", list({r[1] for r in rows}))
    known = {r["delivery_id"]: r for r in found}
    fallback: dict[int, int] = {}
    missing = {r[4] for r in rows if r[1] not in known}
    if missing:
        for c in await conn.fetch("SELECT id, channel FROM campaigns WHERE id = ANY($1::int[])",
                                  list(missing)):
            fallback[c["id"]] = _CHANNEL_OF_CAMPAIGN.get(c["channel"], 1)
    hours: dict[tuple[Any, ...], int] = defaultdict(int)
    clicks: dict[tuple[Any, ...], int] = defaultdict(int)
    agents: dict[tuple[Any, ...], int] = defaultdict(int)
    firsts: list[tuple[int, int, int, int]] = []
    users: dict[tuple[Any, ...], list[int | None]] = {}
    links = link_rollups.LinkBatch()
    for ts, did, url_id, ua_id, campaign, task, kind, flags, _ in rows:
        delivery = known.get(did)
        human = is_human(flags)
        if kind in (1, 2, 5):
            # first-event times count test sends too: the user figures read deliveries,
            # which exclude them (same as the rebuild)
            firsts.append((ts, did, kind, flags))
        if delivery is not None and delivery["is_test"]:
            continue
        channel = delivery["channel"] if delivery is not None else fallback.get(campaign, 1)
        hour = ts - ts % HOUR_US
        hours[(campaign, hour, task, channel, kind, human)] += 1
        if kind in (1, 2):
            agents[(campaign, hour, task, channel, ua_id, kind, human)] += 1
        if kind == 2:
            clicks[(campaign, hour, task, channel, url_id, human)] += 1
            links.add(did, url_id, ts, flags, campaign)
            if delivery is not None:
                u = users.setdefault((campaign, url_id, delivery["user_id"], task, channel),
                                     [None] * 4)
                u[0], u[1] = _min(u[0], ts), _max(u[1], ts)
                if human:
                    u[2], u[3] = _min(u[2], ts), _max(u[3], ts)
    if hours:
        await conn.execute(_HOURS, *columns(
            [(*k, n) for k, n in sorted(hours.items())], 7))
    if firsts:
        # where the deliveries' counters lock was taken before (sql/064 takes it when
        # a first changes): after report_event_hours, before the click rollups
        await conn.execute(_FIRSTS, *columns(firsts, 4))
    if clicks:
        await conn.execute(_CLICK_HOURS, *columns(
            [(*k, n) for k, n in sorted(clicks.items())], 7))
    if users:
        await conn.execute(_CLICK_USERS, *columns(
            [(*k, *v) for k, v in sorted(users.items())], 9))
    if agents:
        await conn.execute(_AGENT_HOURS, *columns(
            [(*k, n) for k, n in sorted(agents.items())], 8))
    # last: it takes the link rollups' lock, after which nothing else is touched
    await links.write(conn)


def _channel(alias: str = "d") -> str:
    return (f"coalesce({alias}.channel,"
            " CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END)")


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recompute every rollup from the event log and deliveries (after a bulk load that
    bypassed the shipper, or to prove they match); same SQL as the backfills in
    020_reports.sql and 040_report_speed.sql."""
    human = HUMAN_SQL.replace("flags", "e.flags")
    events = ("FROM events e LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id"
              " LEFT JOIN campaigns c ON c.id = e.campaign")
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute("LOCK TABLE deliveries IN SHARE MODE")
        await conn.execute("TRUNCATE report_event_hours,"
                           " report_outcome_hours, report_click_hours, report_click_users,"
                           " report_agent_hours, report_link_counts, report_link_returns")
        await conn.execute(f"""
            INSERT INTO report_event_hours (campaign, hour, schedule_task, channel, kind,
                                            human, n)
            SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task, {_channel()},
                   e.kind, {human}, count(*)
            {events} WHERE NOT coalesce(d.is_test, false)
            GROUP BY 1, 2, 3, 4, 5, 6""")
        # the shipper's fold over the whole log, a month at a time (sql/064); the
        # campaign list's counters are counted again at the end
        await conn.execute("SELECT tracker_refold_firsts()")
        await conn.execute("""
            INSERT INTO report_outcome_hours (campaign, hour, schedule_task, channel, status,
                                              error_code, error_message, n)
            SELECT campaign, date_trunc('hour', coalesce(sent_at, created_at), 'UTC'),
                   schedule_task, channel, status, error_code, error_message, count(*)
            FROM deliveries
            WHERE status BETWEEN 1 AND 5 AND NOT is_test
              AND (sent_at IS NOT NULL OR status = 5)
            GROUP BY 1, 2, 3, 4, 5, 6, 7""")
        await conn.execute(f"""
            INSERT INTO report_click_hours (campaign, hour, schedule_task, channel, url_id,
                                            human, n)
            SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task, {_channel()},
                   e.url_id, {human}, count(*)
            {events} WHERE e.kind = 2 AND NOT coalesce(d.is_test, false)
            GROUP BY 1, 2, 3, 4, 5, 6""")
        await conn.execute(f"""
            INSERT INTO report_click_users
            SELECT e.campaign, e.url_id, d.user_id, e.schedule_task, d.channel, min(e.ts),
                   max(e.ts), min(e.ts) FILTER (WHERE {human}),
                   max(e.ts) FILTER (WHERE {human})
            FROM events e JOIN deliveries d ON d.delivery_id = e.delivery_id
            WHERE e.kind = 2 AND NOT d.is_test
            GROUP BY 1, 2, 3, 4, 5""")
        await conn.execute(f"""
            INSERT INTO report_agent_hours (campaign, hour, schedule_task, channel, ua_id,
                                            kind, human, n)
            SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task, {_channel()},
                   e.ua_id, e.kind, {human}, count(*)
            {events} WHERE e.kind IN (1, 2) AND NOT coalesce(d.is_test, false)
            GROUP BY 1, 2, 3, 4, 5, 6, 7""")
        await link_rollups.rebuild(conn)
        # last, from the refolded firsts (the deliveries' cells are recounted too)
        await conn.execute("TRUNCATE report_delivery_cells, report_campaign_repeats")
        await conn.execute("""
            INSERT INTO report_delivery_cells (sent_hour, campaign, figure, event_hour, n)
            SELECT date_trunc('hour', d.sent_at, 'UTC'), d.campaign, x.figure,
                   date_trunc('hour', x.t, 'UTC'), count(*)
            FROM deliveries d
            CROSS JOIN LATERAL (VALUES (0::smallint, d.sent_at),
                                       (1::smallint, d.first_human_open),
                                       (2::smallint, d.first_open),
                                       (3::smallint, d.first_human_click),
                                       (4::smallint, d.first_click),
                                       (5::smallint, d.first_conversion)) x (figure, t)
            WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL AND x.t IS NOT NULL
            GROUP BY 1, 2, 3, 4""")
        await conn.execute("""
            INSERT INTO report_campaign_repeats
            SELECT s.delivery_id, s.campaign, s.user_id, s.sent_at, s.first_human_open,
                   s.first_open, s.first_human_click, s.first_click, s.first_conversion
            FROM (SELECT d.campaign, d.delivery_id, d.user_id, d.sent_at, d.first_human_open,
                         d.first_open, d.first_human_click, d.first_click,
                         d.first_conversion,
                         count(*) OVER (PARTITION BY d.campaign, d.user_id) AS k
                  FROM deliveries d
                  WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL) s
            WHERE s.k > 1""")
