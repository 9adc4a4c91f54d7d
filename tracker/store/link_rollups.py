"""The click ranking's counters (F5, F12; sql/060_link_counts.sql, sql/065).

For each campaign (scope: its id), for each channel (-1 email, -2 push, -3 line) and
for the whole project (scope 0), kept in the shipper's transaction like every rollup:

* report_link_counts: per link and UTC hour, day and month, clicks (all and human) and
  how many (link, user) pairs clicked first in the span.
* report_link_returns: per link, how many pairs clicked in one UTC hour and next in a
  later one (over all clicks, and over human clicks).

Distinct users clicking a link inside a period [S, E) of whole UTC hours are the pairs
first clicked inside it plus the pairs that clicked before S and again inside: each
has exactly one step between consecutive click hours entering the period (from < S <=
to < E). No table holds a row per pair: the SQL function ``tracker_fold_links`` reads
a batch's pairs' other clicks from the event log and adds only the difference the
batch makes to their first hour and steps. The rebuild is the same function given
every click (tracker_refold_links, sql/065).

It reads what other shippers landed, so writers hold LINK_USERS_LOCK: two shippers
never fold the same pair at once.
"""

from __future__ import annotations

import asyncpg

#: counters are kept per UTC hour, day and calendar month (the span's length in hours;
#: 744 stands for a month of any length)
HOUR_SPAN, DAY_SPAN, MONTH_SPAN = 1, 24, 744

#: report_link_counts' scope of the whole project; a campaign's is its id (> 0), a
#: channel's PROJECT_SCOPE - channel (-1 email, -2 push, -3 line)
PROJECT_SCOPE = 0

#: one writer of the link counters at a time (see the module docstring)
LINK_USERS_LOCK = 7302050
LOCK_WAIT = "10s"

_FOLD = ("SELECT tracker_fold_links($1::bigint[], $2::bigint[], $3::bigint[],"
         " $4::int2[], $5::int[])")


class LinkBatch:
    """The clicks of one landed batch (not of test sends), to fold once landed."""

    def __init__(self) -> None:
        self.deliveries: list[int] = []
        self.urls: list[int] = []
        self.times: list[int] = []
        self.flags: list[int] = []
        self.campaigns: list[int] = []

    def add(self, delivery_id: int, url_id: int, ts: int, flags: int, campaign: int) -> None:
        """One click; ``ts`` in microseconds since the Unix epoch."""
        self.deliveries.append(delivery_id)
        self.urls.append(url_id)
        self.times.append(ts)
        self.flags.append(flags)
        self.campaigns.append(campaign)

    async def write(self, conn: asyncpg.Connection) -> None:
        """Fold the batch; the last thing its transaction does. It first takes
        LINK_USERS_LOCK, held to commit; after it the transaction touches only the link
        counters (written by no one without the lock) and its own journal position, so
        it never waits for a shipper that waits for the lock: no deadlock."""
        if not self.deliveries:
            return
        # a shipper stalled while holding the lock must not stall every other one: past
        # LOCK_WAIT this transaction fails and its batch is shipped again later
        await conn.execute("SELECT set_config('lock_timeout', $1, true),"
                           " pg_advisory_xact_lock($2)", LOCK_WAIT, LINK_USERS_LOCK)
        await conn.execute(_FOLD, self.deliveries, self.urls, self.times, self.flags,
                           self.campaigns)


def channel_scope(channel: int) -> int:
    """report_link_counts' scope of a channel (1 email, 2 push, 3 line)."""
    return PROJECT_SCOPE - channel


async def rebuild(conn: asyncpg.Connection) -> None:
    """Recount the link counters from events and deliveries: the landing function
    given every click (tracker_refold_links, as sql/065 does)."""
    await conn.execute("SELECT tracker_refold_links()")
