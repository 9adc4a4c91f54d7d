"""Unique-user figures (F4, F12): distinct users of the deliveries delivered in a
period with an open, click or conversion inside it, read from the period's deliveries
with their firsts (sql/064), or for the campaign list from counters where those are
exact (tracker.reports.people_cells). Exact: tests/test_reports_exact.py holds them to
brute-force SQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from tracker.classify.verdict import human_sql
from tracker.events import Kind
from tracker.reports import people_cells
from tracker.reports.ingredients import GROUPS, Figures
from tracker.reports.periods import DAY, Period, uniform_days
from tracker.reports.scope import Params, Scope
from tracker.store.deliveries import Status


def _seen(column: str, kind: int, human: bool, ws: str = "w.ws", we: str = "w.we") -> str:
    """A delivery had such an event inside its window [ws, we): decided by its first
    one, unless that was before the window (stamped before the send: check raw)."""
    human_only = f" AND {human_sql('e.flags')}" if human else ""
    return f"""(CASE WHEN w.{column} IS NULL THEN false
                WHEN w.{column} >= {ws} THEN w.{column} < {we}
                ELSE EXISTS (SELECT 1 FROM events e
                             WHERE e.campaign = w.campaign AND e.ts >= {ws} AND e.ts < {we}
                               AND e.delivery_id = w.delivery_id AND e.kind = {kind}{human_only})
                END)"""


USER_FIGURES = {
    "open_users": ("first_human_open", int(Kind.OPEN), True),
    "open_users_all": ("first_open", int(Kind.OPEN), False),
    "click_users": ("first_human_click", int(Kind.CLICK), True),
    "click_users_all": ("first_click", int(Kind.CLICK), False),
    "conversion_users": ("first_conversion", int(Kind.CONVERSION), False),
}


def _decided(column: str, end: str) -> str:
    """The figure of ``column`` for a delivery whose firsts are all at or after its
    window's start (checked by ``early``): the first one is before the window's end."""
    return f"w.{column} < {end}"


def _bit(figure: int, day: bool) -> int:
    """A figure's bit in the per-delivery mask: period figures 0..4, day figures 5..9.
    One bit_or per row aggregates all ten (ten bool_or cost 12-15% of the query)."""
    return 1 << (figure + (len(USER_FIGURES) if day else 0))


def _users_sql(scope: Scope, period: Period, groups: tuple[str, ...],
               fast: bool) -> tuple[str, list[Any]]:
    """The unique-user query for ``groups``. ``fast`` decides every delivery by its
    firsts alone and adds a row 'early' counting the deliveries where that is not
    enough (a first event stamped before a window it is asked for starts; clocks
    disagree rarely), so the caller re-asks with ``fast=False``, which checks those
    raw. Day windows (and their bits) are only computed when days are asked."""
    p = Params()
    start, end = p(period.start), p(period.end)
    by_day = "day" in groups
    if not by_day:
        day_cols, no_day = "NULL::date AS day, NULL::date AS ds, NULL::date AS de", "NULL::date"
    elif uniform_days(period):
        # days of 24 hours: the send day's midnight by arithmetic (day is then that
        # instant), not three time zone conversions per delivery
        day_start = f"date_bin('1 day', d.sent_at, {start}::timestamptz)"
        day_cols = f"{day_start} AS day, {day_start} AS ds, {day_start} + interval '1 day' AS de"
        no_day = "NULL::timestamptz"
    else:
        tz = p(period.timezone) + "::text"
        local_day = f"(d.sent_at AT TIME ZONE {tz})::date"
        day_cols = (f"{local_day} AS day, ({local_day})::timestamp AT TIME ZONE {tz} AS ds,"
                    f" ({local_day} + 1)::timestamp AT TIME ZONE {tz} AS de")
        no_day = "NULL::date"
    # the delivery's firsts, read with it (sql/064)
    firsts = ", ".join(f"d.{col}" for col, _, _ in USER_FIGURES.values())
    windows = [(False, ("w.ws", "w.we"))] + ([(True, ("w.ds", "w.de"))] if by_day else [])
    bits = []
    for i, (col, kind, human) in enumerate(USER_FIGURES.values()):
        for day, (ws, we) in windows:
            seen = _decided(col, we) if fast else _seen(col, kind, human, ws, we)
            bits.append(f"CASE WHEN {seen} THEN {_bit(i, day)} ELSE 0 END")
    mask = " | ".join(bits)
    early = "false"
    if fast:
        every_first = ", ".join(f"w.{col}" for col, _, _ in USER_FIGURES.values())
        # the day window starts at the send's local midnight, never before the period
        early = f"least({every_first}) < {'greatest(w.ds, w.ws)' if by_day else 'w.ws'}"

    def counted(day: bool) -> str:
        return ", ".join(f"count(*) FILTER (WHERE m & {_bit(i, day)} <> 0) AS {name}"
                         for i, name in enumerate(USER_FIGURES))

    def head(campaign: object = "NULL::int", task: object = "NULL::int", day: str = no_day,
             users: str = "count(*)", deliveries: str = "NULL::bigint",
             early: str = "0::bigint") -> str:
        """The key and count columns; every part names them (the first one of the
        UNION names them for all)."""
        return (f"AS grp, {campaign} AS campaign, {task} AS task, {day} AS day,"
                f" {deliveries} AS deliveries, {early} AS early, {users} AS delivered_users")

    parts = []
    if "total" in groups:
        parts.append(f"""SELECT 'total' {head()}, {counted(False)}
                         FROM (SELECT user_id, bit_or(m) AS m FROM per_task_user GROUP BY 1) t""")
    if "campaign" in groups:
        # campaigns never share a delivery: (campaign, user) pairs straight from seen;
        # each campaign counts its own early deliveries, so seen is read once
        parts.append(f"""SELECT 'campaign' {head('campaign', deliveries='sum(n)::bigint',
                                                 early='sum(e)::bigint')}, {counted(False)}
                         FROM (SELECT campaign, user_id, bit_or(m) AS m, count(*) AS n,
                                      count(*) FILTER (WHERE early) AS e
                               FROM seen GROUP BY 1, 2) t
                         GROUP BY campaign""")
    if "task" in groups:
        names = ", ".join(USER_FIGURES)
        parts.append(f"""SELECT 'task' {head(task='schedule_task', users='users')}, {names}
                         FROM task_figures""")
    if by_day:
        # a day on which one task alone was sent, all of it (a send run usually is):
        # its users are that task's, so only the other days need (day, user) hashing
        days = ", ".join(f"t.day_{name} AS {name}" for name in USER_FIGURES)
        parts.append(f"""SELECT 'day' {head(day='t.d0', users='t.users')}, {days}
                         FROM task_figures t JOIN lone_days l USING (schedule_task)""")
        parts.append(f"""SELECT 'day' {head(day='day')}, {counted(True)}
                         FROM (SELECT day, user_id, bit_or(m) AS m FROM seen s
                               WHERE NOT EXISTS (SELECT 1 FROM lone_days l WHERE l.d0 = s.day)
                               GROUP BY 1, 2) t
                         GROUP BY day""")
    alone = set(groups) <= {"campaign"}
    if fast and not alone:
        nothing = ", ".join(f"0 AS {name}" for name in USER_FIGURES)
        parts.append(f"SELECT 'early' {head()}, {nothing} FROM seen WHERE early")
    day_counted = ", ".join(f"count(*) FILTER (WHERE m & {_bit(i, True)} <> 0) AS day_{name}"
                            for i, name in enumerate(USER_FIGURES))
    sql = f"""
        WITH w AS (
            SELECT d.delivery_id, d.campaign, d.schedule_task, d.user_id, {day_cols},
                   {start}::timestamptz AS ws, {end}::timestamptz AS we, {firsts}
            FROM deliveries d
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status = {int(Status.DELIVERED)}
              AND NOT d.is_test AND {scope.where(p, 'd')}
        ), seen AS {"NOT " if alone else ""}MATERIALIZED (
            SELECT w.campaign, w.schedule_task, w.user_id, w.day, {mask} AS m,
                   {early} AS early
            FROM w
        ), per_task_user AS MATERIALIZED (
            SELECT schedule_task, user_id, bit_or(m) AS m, min(day) AS d0, max(day) AS d1
            FROM seen GROUP BY 1, 2
        ), task_figures AS MATERIALIZED (
            SELECT schedule_task, count(*) AS users, min(d0) AS d0, max(d1) AS d1,
                   {counted(False)}, {day_counted}
            FROM per_task_user GROUP BY schedule_task
        ), lone_days AS MATERIALIZED (
            -- tasks sent on one day that no other task touches: in the order of first
            -- days, no earlier task ends on or after it and the next starts later
            SELECT schedule_task, d0 FROM (
                SELECT schedule_task, d0, d1,
                       max(d1) OVER (ORDER BY d0, schedule_task
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ended,
                       lead(d0) OVER (ORDER BY d0, schedule_task) AS next_start
                FROM task_figures) t
            WHERE d0 = d1 AND (ended IS NULL OR ended < d0)
              AND (next_start IS NULL OR next_start > d0)
        )
        {" UNION ALL ".join(parts)}"""
    return sql, p.values


async def users_by_group(conn: asyncpg.Connection, scope: Scope, period: Period,
                         groups: tuple[str, ...] = GROUPS) -> dict[str, dict[object, Figures]]:
    """Distinct users of the deliveries delivered in the period (per day: sent that
    day) with an open, click or conversion inside the same period (F4, F12), for each
    of ``groups`` at once: the deliveries and their firsts are read once, not per group.
    Besides GROUPS, "campaign" answers every campaign in scope at once (the campaign
    list); its Figures also carry the campaign's delivered count (outcomes[Status.DELIVERED],
    the same deliveries the report's ``deliveries`` counts), as it reads them anyway.
    Asked alone for the whole project, "campaign" is read from counters where they are
    exact (tracker.reports.people_cells), else from the deliveries as every group is.

    Asked first with every delivery decided by its firsts (a plan without the raw
    look-ups: 7 ms less planning for one campaign); asked again with them only when
    some first event precedes its window, so the answer is the same either way."""
    out: dict[str, dict[object, Figures]] = {g: defaultdict(Figures) for g in groups}
    if groups == ("campaign",) and scope == Scope():
        people = await people_cells.campaign_people(conn, period)
        if people is not None:
            for campaign, cells in people.items():
                row = out["campaign"][campaign]
                row.outcomes[Status.DELIVERED] = cells.pop("deliveries")
                row.users.update(cells)
            return out
    sql, values = _users_sql(scope, period, groups, fast=True)
    rows = await conn.fetch(sql, *values)
    if any(r["early"] or (r["grp"] == "early" and r["delivered_users"]) for r in rows):
        sql, values = _users_sql(scope, period, groups, fast=False)
        rows = await conn.fetch(sql, *values)
    for r in rows:
        if r["grp"] == "early":
            continue
        day = r["day"]
        if isinstance(day, datetime):  # a day's start (uniform_days): its local date
            day = period.first + timedelta(days=(day - period.start) // DAY)
        key = {"total": 0, "task": r["task"], "day": day, "campaign": r["campaign"]}[r["grp"]]
        figures = out[r["grp"]][key]
        for name in ("delivered_users", *USER_FIGURES):
            figures.users[name] = r[name]
        if r["grp"] == "campaign":
            figures.outcomes[Status.DELIVERED] = r["deliveries"]
    return out


async def users(conn: asyncpg.Connection, scope: Scope, period: Period,
                group: str) -> dict[object, Figures]:
    """users_by_group for one group."""
    return (await users_by_group(conn, scope, period, (group,)))[group]
