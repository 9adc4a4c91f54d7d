"""Every report rollup recomputed from the event log and deliveries.

Landing keeps them in step batch by batch, in the same transaction as the events
(tracker.store.effects, sql/067 tracker_fold_events); deliveries' writers keep theirs
by triggers on deliveries. ``rebuild`` recounts them all after a bulk load that
bypassed the shipper, or to prove they match:

* report_event_hours, report_agent_hours: tracker_refold_counts (sql/067), the fold
  given each month's events.
* report_outcome_hours: tracker_refold_outcomes (sql/068), the triggers' fold given
  every delivery.
* deliveries' firsts (first_open ... first_conversion): tracker_refold_firsts
  (sql/064, sql/068).
* report_link_counts, report_link_returns: tracker_refold_links (sql/065, sql/068).
* report_delivery_cells, report_campaign_repeats: tracker_refold_list (sql/068).

Each is the function that keeps the table batch by batch, given everything: no
aggregation is written twice.
"""

from __future__ import annotations

import asyncpg


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recompute every rollup from the event log and deliveries (see the module)."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute("LOCK TABLE deliveries IN SHARE MODE")
        for refold in ("tracker_refold_counts", "tracker_refold_outcomes",
                       # the firsts before the list's counters, which count them
                       "tracker_refold_firsts", "tracker_refold_links", "tracker_refold_list"):
            await conn.execute(f"SELECT {refold}()")
