"""The click ranking's counters (F5, F12; sql/060_link_counts.sql, sql/065, sql/079).

For each campaign (scope: its id), for each channel (-1 email, -2 push, -3 line) and
for the whole project (scope 0), kept in the shipper's transaction like every rollup,
by local day and local month of one time zone (report_link_zone), the reports':

* report_link_counts: per link and local day and month (a slot: the span and its
  first day in one integer, tracker_link_slot), clicks (all and human) and how many
  (link, user) pairs clicked first in the span.
* report_link_returns: per link, how many pairs clicked on one local day and next on
  a later one (over all clicks, and over human clicks; days numbered from 1970-01-01,
  tracker_day_number).

Distinct users clicking a link on a period's local days [F, E) are the pairs first
clicked inside it plus the pairs that clicked before F and again inside: each has
exactly one step between consecutive click days entering the period (from < F <=
to < E). No table holds a row per pair: the SQL function ``tracker_fold_links`` reads
a batch's pairs' other clicks from the event log and adds only the difference the
batch makes to their first day and steps. Landing calls it for every batch, under
the link counters' lock, since it reads what other shippers landed
(tracker_fold_events, sql/067); the rebuild is the same function given every click
(tracker_refold_links, sql/079), which ``align_zone`` runs when TRACKER_TIMEZONE is
not the counters' zone.
"""

from __future__ import annotations

import logging
from enum import IntEnum

import asyncpg

log = logging.getLogger(__name__)


class Span(IntEnum):
    """What one counter row covers: a local day or a local calendar month (its length
    in hours; 744 stands for a month of any length). SQL: tracker_span_<name>()."""

    DAY = 24
    MONTH = 744


#: report_link_counts' scope of the whole project; a campaign's is its id (> 0), a
#: channel's PROJECT_SCOPE - channel (-1 email, -2 push, -3 line)
PROJECT_SCOPE = 0


def channel_scope(channel: int) -> int:
    """report_link_counts' scope of a channel (1 email, 2 push, 3 line)."""
    return PROJECT_SCOPE - channel


async def counters_zone(conn: asyncpg.Connection) -> str:
    """The time zone whose local days the counters are kept by."""
    zone: str = await conn.fetchval("SELECT zone FROM report_link_zone")
    return zone


async def align_zone(conn: asyncpg.Connection, timezone: str) -> bool:
    """Refold the counters by ``timezone``'s local days unless they already are (True
    when it refolded). Under the link counters' lock, in one transaction: landing
    waits for it, and two services starting at once refold once. Until then a
    report in ``timezone`` reads raw clicks (exact, slower)."""
    if await counters_zone(conn) == timezone:
        return False
    async with conn.transaction():
        await conn.execute("SELECT tracker_lock_link_counters()")
        current = await conn.fetchval("SELECT zone FROM report_link_zone FOR UPDATE")
        if current == timezone:
            return False
        clicks = await conn.fetchval("SELECT count(*) FROM events"
                                     " WHERE kind = tracker_kind_click()")
        log.warning("the click ranking's counters are kept by local days of %s, the reports'"
                    " time zone is %s: folding %d clicks again by %s's days (reports in %s"
                    " read raw clicks until this ends)", current, timezone, clicks, timezone,
                    timezone)
        await conn.execute("SELECT tracker_refold_links($1)", timezone)
    return True
