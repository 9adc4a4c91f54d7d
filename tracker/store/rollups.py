"""Report rollups kept in step with landed events (in the shipper's transaction).

``apply`` runs in the same transaction as the COPY of ``rows``, so a rollup can
never count an event that is not in the log, nor miss one that is: reports read
these tables for whole hours and stay exactly equal to the raw events.

* report_event_hours: event counts per (campaign, schedule task, channel, UTC hour,
  kind, human) for the count figures.
* deliveries' firsts (first_open ... first_conversion, sql/064): per delivery the
  first open, click and conversion, for the unique-user figures, folded in PostgreSQL
  by tracker_fold_firsts (the one declaration the rebuild uses too).
* report_agent_hours: opens and clicks per user agent and hour (F22 breakdown).
* report_link_counts, report_link_returns: the click ranking's, per campaign, channel
  and the whole project, folded by tracker.store.link_rollups (sql/060, sql/065).
* report_delivery_cells, report_campaign_repeats: the campaign list's people figures,
  kept by triggers on deliveries (sql/055, sql/064).

``apply`` is on the serving process's hot path: it aggregates the batch in Python
(one row per hour and key) and sends only the aggregates, after one look-up of the
batch's deliveries; the firsts and the link counters are folded in PostgreSQL from
the batch's times, kinds and flags. Times stay integer
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

from tracker.classify.verdict import human_sql, is_human
from tracker.events import Kind
from tracker.store import link_rollups
from tracker.store.columns import columns
from tracker.store.deliveries import Status
from tracker.tokens import CHANNEL_NAMES, CHANNELS_BY_NAME, Channel

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

async def apply(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Fold landed event rows (tracker.store.events.EVENT_COLUMNS order: ts, delivery_id,
    url_id, ua_id, campaign, schedule_task, kind, flags, link_position; ts in
    microseconds since the Unix epoch) into the rollup tables."""
    if not rows:
        return
    found = await conn.fetch(
        "SELECT d.delivery_id, d.channel, d.is_test FROM deliveries d"
        " WHERE d.delivery_id = ANY($1::bigint[])", list({r[1] for r in rows}))
    known = {r["delivery_id"]: r for r in found}
    fallback: dict[int, int] = {}
    missing = {r[4] for r in rows if r[1] not in known}
    if missing:
        for c in await conn.fetch("SELECT id, channel FROM campaigns WHERE id = ANY($1::int[])",
                                  list(missing)):
            fallback[c["id"]] = CHANNELS_BY_NAME.get(c["channel"], Channel.EMAIL)
    hours: dict[tuple[Any, ...], int] = defaultdict(int)
    agents: dict[tuple[Any, ...], int] = defaultdict(int)
    firsts: list[tuple[int, int, int, int]] = []
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
            links.add(did, url_id, ts, flags, campaign)
    if hours:
        await conn.execute(_HOURS, *columns(
            [(*k, n) for k, n in sorted(hours.items())], 7))
    if firsts:
        # where the deliveries' counters lock was taken before (sql/064 takes it when
        # a first changes): after report_event_hours, before the click rollups
        await conn.execute(_FIRSTS, *columns(firsts, 4))
    if agents:
        await conn.execute(_AGENT_HOURS, *columns(
            [(*k, n) for k, n in sorted(agents.items())], 8))
    # last: it takes the link rollups' lock, after which nothing else is touched
    await links.write(conn)


def _channel(alias: str = "d") -> str:
    return (f"coalesce({alias}.channel, CASE c.channel"
            f" WHEN '{CHANNEL_NAMES[Channel.PUSH]}' THEN {int(Channel.PUSH)}"
            f" WHEN '{CHANNEL_NAMES[Channel.LINE]}' THEN {int(Channel.LINE)}"
            f" ELSE {int(Channel.EMAIL)} END)")


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recompute every rollup from the event log and deliveries (after a bulk load that
    bypassed the shipper, or to prove they match); same SQL as the backfills in
    020_reports.sql and 040_report_speed.sql."""
    human = human_sql("e.flags")
    events = ("FROM events e LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id"
              " LEFT JOIN campaigns c ON c.id = e.campaign")
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute("LOCK TABLE deliveries IN SHARE MODE")
        await conn.execute("TRUNCATE report_event_hours,"
                           " report_outcome_hours, report_agent_hours, report_link_counts,"
                           " report_link_returns")
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
        await conn.execute(f"""
            INSERT INTO report_outcome_hours (campaign, hour, schedule_task, channel, status,
                                              error_code, error_message, n)
            SELECT campaign, date_trunc('hour', coalesce(sent_at, created_at), 'UTC'),
                   schedule_task, channel, status, error_code, error_message, count(*)
            FROM deliveries
            WHERE status BETWEEN {int(Status.DELIVERED)} AND {int(Status.SUPPRESSED)}
              AND NOT is_test AND (sent_at IS NOT NULL OR status = {int(Status.SUPPRESSED)})
            GROUP BY 1, 2, 3, 4, 5, 6, 7""")
        await conn.execute(f"""
            INSERT INTO report_agent_hours (campaign, hour, schedule_task, channel, ua_id,
                                            kind, human, n)
            SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task, {_channel()},
                   e.ua_id, e.kind, {human}, count(*)
            {events} WHERE e.kind IN ({int(Kind.OPEN)}, {int(Kind.CLICK)})
              AND NOT coalesce(d.is_test, false)
            GROUP BY 1, 2, 3, 4, 5, 6, 7""")
        await link_rollups.rebuild(conn)
        # last, from the refolded firsts (the deliveries' cells are recounted too)
        await conn.execute("TRUNCATE report_delivery_cells, report_campaign_repeats")
        await conn.execute(f"""
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
            WHERE d.status = {int(Status.DELIVERED)} AND NOT d.is_test AND d.sent_at IS NOT NULL
              AND x.t IS NOT NULL
            GROUP BY 1, 2, 3, 4""")
        await conn.execute(f"""
            INSERT INTO report_campaign_repeats
            SELECT s.delivery_id, s.campaign, s.user_id, s.sent_at, s.first_human_open,
                   s.first_open, s.first_human_click, s.first_click, s.first_conversion
            FROM (SELECT d.campaign, d.delivery_id, d.user_id, d.sent_at, d.first_human_open,
                         d.first_open, d.first_human_click, d.first_click,
                         d.first_conversion,
                         count(*) OVER (PARTITION BY d.campaign, d.user_id) AS k
                  FROM deliveries d
                  WHERE d.status = {int(Status.DELIVERED)} AND NOT d.is_test
                    AND d.sent_at IS NOT NULL) s
            WHERE s.k > 1""")
