"""Every report rollup recomputed from the event log and deliveries.

Landing keeps them in step batch by batch, in the same transaction as the events
(tracker.store.effects, sql/067 tracker_fold_events); deliveries' writers keep theirs
by triggers on deliveries. ``rebuild`` recounts them all after a bulk load that
bypassed the shipper, or to prove they match:

* report_event_hours, report_agent_hours: tracker_refold_counts (sql/067), the fold
  given each month's events.
* deliveries' firsts (first_open ... first_conversion): tracker_refold_firsts
  (sql/064).
* report_link_counts, report_link_returns: tracker_refold_links (sql/065).
* report_outcome_hours (sql/040), report_delivery_cells and report_campaign_repeats
  (sql/055, sql/064), kept by triggers on deliveries: counted here from deliveries.
"""

from __future__ import annotations

import asyncpg

from tracker.store import link_rollups
from tracker.store.deliveries import Status


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recompute every rollup from the event log and deliveries (see the module)."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute("LOCK TABLE deliveries IN SHARE MODE")
        await conn.execute("SELECT tracker_refold_counts()")
        await conn.execute("TRUNCATE report_outcome_hours")
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
