"""Every campaign's people figures for a period from counters (sql/055), for the list.

The campaign list (/reports) shows each campaign's delivered people and the people who
opened, clicked or converted (F4, F12) for periods up to a year. Read from the period's
deliveries that took 1.8 s for a year of the bench data; from report_delivery_cells
(deliveries counted per sending hour and hour of each first event) and the few
deliveries of users a campaign reached more than once (report_campaign_repeats) it
takes tens of milliseconds, and it is the same figure:

* a delivery sent in [start, end) whose first event is not before ``start`` had an
  event inside the period exactly when that first event is before ``end``; with both
  on whole UTC hours, when the event's hour is before ``end``;
* summing deliveries counts a user reached k times in the period up to k times; the
  repeat rows of the period give each such user's count, and the surplus is taken off.

It answers None where it cannot be exact, and the caller reads deliveries instead:
a period not on whole UTC hours (a time zone with half-hour midnights), or a first
event stamped before the period's start (clocks that disagree; checked raw there).
"""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from tracker.reports.periods import Period

#: cell figures 1..5 in the order of figures.USER_FIGURES (sql/055 numbers them so)
FIGURES = ("open_users", "open_users_all", "click_users", "click_users_all",
           "conversion_users")
#: a surplus row carries its figure plus this, so one statement returns both
SURPLUS = 10

_PEOPLE = f"""
SELECT campaign, figure, sum(CASE WHEN event_hour < $2 THEN n ELSE 0 END)::bigint AS n,
       sum(CASE WHEN figure > 0 AND event_hour < $1 THEN n ELSE 0 END)::bigint AS early
FROM report_delivery_cells
WHERE sent_hour >= $1 AND sent_hour < $2
GROUP BY 1, 2
UNION ALL
SELECT s.campaign, x.figure + {SURPLUS}, x.surplus::bigint, 0
FROM (SELECT campaign, sum(q0 - 1) AS s0, sum(greatest(q1 - 1, 0)) AS s1,
             sum(greatest(q2 - 1, 0)) AS s2, sum(greatest(q3 - 1, 0)) AS s3,
             sum(greatest(q4 - 1, 0)) AS s4, sum(greatest(q5 - 1, 0)) AS s5
      FROM (SELECT f.campaign, f.user_id, count(*) AS q0,
                   count(*) FILTER (WHERE f.first_human_open < $2) AS q1,
                   count(*) FILTER (WHERE f.first_open < $2) AS q2,
                   count(*) FILTER (WHERE f.first_human_click < $2) AS q3,
                   count(*) FILTER (WHERE f.first_click < $2) AS q4,
                   count(*) FILTER (WHERE f.first_conversion < $2) AS q5
            FROM report_campaign_repeats f
            WHERE f.sent_at >= $1 AND f.sent_at < $2
            GROUP BY 1, 2
            HAVING count(*) > 1) p
      GROUP BY 1) s
CROSS JOIN LATERAL (VALUES (0, s.s0), (1, s.s1), (2, s.s2), (3, s.s3), (4, s.s4),
                           (5, s.s5)) x (figure, surplus)
"""


async def campaign_people(conn: asyncpg.Connection,
                          period: Period) -> dict[int, dict[str, int]] | None:
    """Per campaign with deliveries sent in the period: ``deliveries``,
    ``delivered_users`` and each of FIGURES; None when the counters cannot say exactly
    (see the module docstring)."""
    if not period.on_whole_hours:
        return None
    totals: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in await conn.fetch(_PEOPLE, period.start, period.end):
        if r["early"]:
            return None
        totals[r["campaign"]][r["figure"]] += r["n"]
    out: dict[int, dict[str, int]] = {}
    for campaign, by_figure in totals.items():
        deliveries = by_figure[0]
        if not deliveries:
            continue
        people = {"deliveries": deliveries,
                  "delivered_users": deliveries - by_figure[SURPLUS]}
        for i, name in enumerate(FIGURES, start=1):
            people[name] = by_figure[i] - by_figure[SURPLUS + i]
        out[campaign] = people
    return out
