"""The click ranking's counters (F5, F12; sql/060_link_counts.sql, sql/065).

For each campaign (scope: its id), for each channel (-1 email, -2 push, -3 line) and
for the whole project (scope 0), kept in the shipper's transaction like every rollup:

* report_link_counts: per link and UTC hour, day and month (a slot: the span and its
  start hour in one integer, tracker_link_slot, sql/071), clicks (all and human) and
  how many (link, user) pairs clicked first in the span.
* report_link_returns: per link, how many pairs clicked in one UTC hour and next in a
  later one (over all clicks, and over human clicks; hours numbered from the Unix
  epoch, tracker_hour_number).

Distinct users clicking a link inside a period [S, E) of whole UTC hours are the pairs
first clicked inside it plus the pairs that clicked before S and again inside: each
has exactly one step between consecutive click hours entering the period (from < S <=
to < E). No table holds a row per pair: the SQL function ``tracker_fold_links`` reads
a batch's pairs' other clicks from the event log and adds only the difference the
batch makes to their first hour and steps. Landing calls it for every batch, under
the link counters' lock, since it reads what other shippers landed
(tracker_fold_events, sql/067); the rebuild is the same function given every click
(tracker_refold_links, sql/065).
"""

from __future__ import annotations

from enum import IntEnum


class Span(IntEnum):
    """What one counter row covers: a UTC hour, day or calendar month (its length in
    hours; 744 stands for a month of any length). SQL: tracker_span_<name>()."""

    HOUR = 1
    DAY = 24
    MONTH = 744

#: report_link_counts' scope of the whole project; a campaign's is its id (> 0), a
#: channel's PROJECT_SCOPE - channel (-1 email, -2 push, -3 line)
PROJECT_SCOPE = 0


def channel_scope(channel: int) -> int:
    """report_link_counts' scope of a channel (1 email, 2 push, 3 line)."""
    return PROJECT_SCOPE - channel

