"""The SQL behind every figure, grouped by nothing, by schedule task or by local day.

Count figures come from report_event_hours for whole UTC hours inside the period
and from raw events for the (rare) partial hours at its edges, or for the whole
period when a day series is asked in a time zone whose midnights are not on the
hour. Unique-user figures read the period's deliveries with their firsts (sql/064).
Everything is exact: tests/test_reports_exact.py holds it to brute-force SQL.
What each figure means, and the rules F1..F24 cited below: docs/figures.md.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from tracker.reports import people_cells
from tracker.reports.periods import EARLIEST, LATEST, Period, local_midnight
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.rollups import HUMAN_SQL

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GROUPS = ("total", "task", "day")

#: deliveries.status codes counted among outcomes
DELIVERED, BOUNCED, SOFT_BOUNCED, FAILED, SUPPRESSED = 1, 2, 3, 4, 5


@dataclass
class Figures:
    """Raw ingredients of one report row (one period, task or day)."""

    events: dict[tuple[int, bool], int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    users: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, kind: int, human: bool | None = None) -> int:
        if human is None:
            return self.events[(kind, True)] + self.events[(kind, False)]
        return self.events[(kind, human)]


async def plan_each_time(conn: asyncpg.Connection) -> None:
    """Plan report queries for their actual ids and period (this transaction only).

    asyncpg prepares statements; after five runs PostgreSQL may switch to a generic
    plan that cannot know one campaign or one month is selective, and reads every
    delivery: measured at 300+ ms per query instead of a few."""
    # and hash the (link, user) pairs of a year's click ranking in memory, not on disk;
    # one round trip for both
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan;"
                       " SET LOCAL work_mem = '64MB'")


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floor = _floor_hour(t)
    return floor if floor == t else floor + HOUR


def _key(group: str, alias: str, time_sql: str, p: Params, timezone: str) -> str:
    """The grouping expression; the time zone becomes a parameter only when used."""
    if group == "total":
        return "0"
    if group == "task":
        return f"{alias}.schedule_task"
    return f"({time_sql} AT TIME ZONE {p(timezone)}::text)::date"


async def _raw_counts(conn: asyncpg.Connection, scope: Scope, period: Period, group: str,
                      start: datetime, end: datetime) -> list[asyncpg.Record]:
    p = Params()
    key = _key(group, "e", "e.ts", p, period.timezone)
    sql = f"""
        SELECT {key} AS g, e.kind, {HUMAN_SQL.replace('flags', 'e.flags')} AS human,
               count(*) AS n
        FROM events e
        LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
        LEFT JOIN campaigns c ON c.id = e.campaign
        WHERE e.ts >= {p(start)} AND e.ts < {p(end)} AND NOT coalesce(d.is_test, false)
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
        GROUP BY 1, 2, 3"""
    rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
    return rows


async def counts(conn: asyncpg.Connection, scope: Scope, period: Period,
                 group: str) -> dict[object, Figures]:
    """Event counts by (kind, human) inside the period, per group key."""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT {key} AS g, {last} AS g_last, h.kind, h.human, sum(h.n)::bigint AS n
            FROM report_event_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY 1, 2, 3, 4"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        return list(await _raw_counts(conn, scope, period, group, start, end))

    out: dict[object, Figures] = defaultdict(Figures)
    for r in await hourly(conn, period, group, rollup, raw):
        out[r["g"]].events[(r["kind"], r["human"])] += r["n"]
    return out


@functools.lru_cache(maxsize=512)
def midnights(period: Period) -> tuple[datetime, ...] | None:
    """The UTC instants of the period's local midnights, from its first day's to the
    one after its last day; None for periods too long or too far out to list them.
    Cached: a year's midnights take ~1 ms to compute, and reports ask for the same
    periods."""
    if (not period.dense or period.first.year <= EARLIEST.year
            or period.last.year >= LATEST.year - 1):
        return None
    zone = ZoneInfo(period.timezone)
    bounds = tuple(local_midnight(period.first + timedelta(days=i), zone)
                   for i in range(period.days + 1))
    if bounds[0] != period.start or bounds[-1] != period.end:
        return None
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        return None
    return bounds


def day_bounds(period: Period) -> tuple[datetime, ...] | None:
    """``midnights`` when they can place rollup hours in local days: all of them on
    whole UTC hours. None otherwise."""
    bounds = midnights(period)
    if bounds is None or any(b.astimezone(UTC) != _floor_hour(b.astimezone(UTC))
                             for b in bounds):
        return None
    return bounds


def uniform_days(period: Period) -> bool:
    """Every local day of the period lasts 24 hours (no DST change inside): a day
    starts a whole number of days after the period does."""
    bounds = midnights(period)
    return bounds is not None and all(b - a == DAY for a, b in zip(bounds, bounds[1:],
                                                                    strict=False))


class Grouping:
    """Rows of a figure for several groups (total, task, day) from one query: whole
    hours or raw rows are grouped by schedule task and by local day together
    (GROUPING SETS), the day found by arithmetic (date_bin) or, across a DST change,
    a binary search of the period's midnights (width_bucket), never by a time zone
    conversion per row; the total is the sum of the days (they partition the period).
    ``usable`` is false where the midnights cannot place hours (see day_bounds)."""

    def __init__(self, period: Period, groups: tuple[str, ...]) -> None:
        self.period, self.groups = period, groups
        self.bounds = day_bounds(period)
        self.by_day = "day" in groups
        self.usable = not self.by_day or self.bounds is not None

    def sql(self, p: Params, task: str, time_sql: str, keys: list[str]) -> tuple[str, str]:
        """Select list (task, task_set, day_index, then ``keys`` as written, each with
        its own alias) and the GROUPING SETS clause for it."""
        day = "0"
        bounds = self.bounds or ()
        if self.by_day and uniform_days(self.period):
            # days of 24 hours (no DST change inside): arithmetic, 15% faster
            day = f"date_bin('1 day', {time_sql}, {p(self.period.start)}::timestamptz)"
        elif self.by_day:
            day = f"width_bucket({time_sql}, {p(list(bounds))}::timestamptz[])"
        exprs = [k.rsplit(" AS ", 1)[0] for k in keys]
        sets = []
        if "task" in self.groups:
            sets.append(", ".join([task, *exprs]))
        if self.by_day:
            sets.append(", ".join([day, *exprs]))
        if "total" in self.groups and not self.by_day:
            sets.append(", ".join(exprs))
        task_cols = (f"{task} AS task, grouping({task}) = 0 AS task_set"
                     if "task" in self.groups else "NULL::int AS task, false AS task_set")
        return (", ".join([task_cols, f"{day} AS day_index", *keys]),
                "GROUPING SETS (" + ", ".join(f"({x})" for x in sets) + ")")

    def keys_of(self, r: asyncpg.Record) -> list[tuple[str, object]]:
        """The (group, key) pairs a row adds to."""
        if r["task_set"]:
            return [("task", r["task"])]
        out: list[tuple[str, object]] = []
        if self.by_day:
            index = r["day_index"]  # date_bin's day start, or width_bucket's 1-based day
            days = (index - self.period.start) // DAY if isinstance(index, datetime) else index - 1
            out.append(("day", self.period.first + timedelta(days=days)))
        if "total" in self.groups:
            out.append(("total", 0))
        return out

    async def rows(self, conn: asyncpg.Connection,
                   rollup: Callable[[Params, datetime, datetime], str],
                   raw: Callable[[Params, datetime, datetime], str]) -> list[asyncpg.Record]:
        """``rollup(p, start, end)`` SQL for the period's whole UTC hours, ``raw(p,
        start, end)`` for the partial hours at its edges."""
        period, rows = self.period, []
        inner_start, inner_end = _ceil_hour(period.start), _floor_hour(period.end)
        edges = [(period.start, period.end)]
        if inner_start < inner_end:
            p = Params()
            rows.extend(await conn.fetch(rollup(p, inner_start, inner_end), *p.values))
            edges = [(period.start, inner_start), (inner_end, period.end)]
        for start, end in edges:
            if start < end:
                p = Params()
                rows.extend(await conn.fetch(raw(p, start, end), *p.values))
        return rows

    async def figures(self, conn: asyncpg.Connection,
                      rollup: Callable[[Params, datetime, datetime], str],
                      raw: Callable[[Params, datetime, datetime], str],
                      add: Callable[[Figures, asyncpg.Record], None],
                      ) -> dict[str, dict[object, Figures]]:
        """``rows`` folded into Figures per group and key by ``add(figures, row)``."""
        out: dict[str, dict[object, Figures]] = {g: defaultdict(Figures) for g in self.groups}
        for r in await self.rows(conn, rollup, raw):
            for group, key in self.keys_of(r):
                add(out[group][key], r)
        return out


async def counts_by_group(conn: asyncpg.Connection, scope: Scope, period: Period,
                          groups: tuple[str, ...] = GROUPS) -> dict[str, dict[object, Figures]]:
    """``counts`` for each of ``groups`` from one read of report_event_hours (see
    Grouping); periods the midnights cannot serve are left to ``counts``."""
    grouping = Grouping(period, groups)
    if not grouping.usable:
        return {g: await counts(conn, scope, period, g) for g in groups}

    def rollup(p: Params, start: datetime, end: datetime) -> str:
        cols, sets = grouping.sql(p, "h.schedule_task", "h.hour", ["h.kind AS kind",
                                                                   "h.human AS human"])
        return f"""
            SELECT {cols}, sum(h.n)::bigint AS n
            FROM report_event_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY {sets}"""

    def raw(p: Params, start: datetime, end: datetime) -> str:
        human = HUMAN_SQL.replace("flags", "e.flags")
        cols, sets = grouping.sql(p, "e.schedule_task", "e.ts", ["e.kind AS kind",
                                                                 f"{human} AS human"])
        return f"""
            SELECT {cols}, count(*) AS n
            FROM events e
            LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
            LEFT JOIN campaigns c ON c.id = e.campaign
            WHERE e.ts >= {p(start)} AND e.ts < {p(end)} AND NOT coalesce(d.is_test, false)
              AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
            GROUP BY {sets}"""

    def add(figures: Figures, r: asyncpg.Record) -> None:
        figures.events[(r["kind"], r["human"])] += r["n"]

    return await grouping.figures(conn, rollup, raw, add)


async def outcomes_by_group(conn: asyncpg.Connection, scope: Scope, period: Period,
                            groups: tuple[str, ...] = GROUPS) -> dict[str, dict[object, Figures]]:
    """``outcomes`` for each of ``groups`` from one read of report_outcome_hours (see
    Grouping); periods the midnights cannot serve are left to ``outcomes``."""
    grouping = Grouping(period, groups)
    if not grouping.usable:
        return {g: await outcomes(conn, scope, period, g) for g in groups}

    def rollup(p: Params, start: datetime, end: datetime) -> str:
        cols, sets = grouping.sql(p, "h.schedule_task", "h.hour", ["h.status AS status"])
        return f"""
            SELECT {cols}, sum(h.n)::bigint AS n
            FROM report_outcome_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY {sets}"""

    def raw(p: Params, start_at: datetime, end_at: datetime) -> str:
        start, end = p(start_at), p(end_at)
        cols, sets = grouping.sql(p, "d.schedule_task", "coalesce(d.sent_at, d.created_at)",
                                  ["d.status AS status"])
        where = scope.where(p, "d")
        return f"""
            SELECT {cols}, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status BETWEEN 1 AND 5
              AND NOT d.is_test AND {where}
            GROUP BY {sets}
            UNION ALL
            SELECT {cols}, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at IS NULL AND d.status = 5
              AND d.created_at >= {start} AND d.created_at < {end}
              AND NOT d.is_test AND {where}
            GROUP BY {sets}"""

    def add(figures: Figures, r: asyncpg.Record) -> None:
        figures.outcomes[r["status"]] += r["n"]

    return await grouping.figures(conn, rollup, raw, add)


async def hourly(conn: asyncpg.Connection, period: Period, group: str,
                  rollup: Callable[[Params, str, str, datetime, datetime], str],
                  raw: Callable[[datetime, datetime], Awaitable[list[asyncpg.Record]]],
                  ) -> list[asyncpg.Record]:
    """Rows for the period: ``rollup`` SQL for its whole UTC hours, ``raw`` for the
    partial hours at its edges, or ``raw`` alone when a day series is asked in a time
    zone whose midnights fall inside an hour (the rollup rows say so: g != g_last).
    ``rollup(p, key, key_last, inner_start, inner_end)`` selects g, g_last, ...;
    ``raw(start, end)`` returns rows with g and the same other columns."""
    inner_start, inner_end = _ceil_hour(period.start), _floor_hour(period.end)
    rows: list[asyncpg.Record] = []
    raw_ranges = [(period.start, period.end)]
    if inner_start < inner_end:
        p = Params()
        if group == "day":
            tz = p(period.timezone) + "::text"
            key = f"(h.hour AT TIME ZONE {tz})::date"
            last = f"((h.hour + interval '59 min 59.999999 s') AT TIME ZONE {tz})::date"
        else:
            key = last = _key(group, "h", "h.hour", p, period.timezone)
        rows = list(await conn.fetch(rollup(p, key, last, inner_start, inner_end), *p.values))
        if any(r["g"] != r["g_last"] for r in rows):
            rows = []
        else:
            raw_ranges = [(period.start, inner_start), (inner_end, period.end)]
    for start, end in raw_ranges:
        if start < end:
            rows.extend(await raw(start, end))
    return rows


async def outcomes(conn: asyncpg.Connection, scope: Scope, period: Period,
                   group: str) -> dict[object, Figures]:
    """Outcomes of deliveries sent in the period, by status. A suppressed delivery
    (never sent) is placed at its sent_at, or when it was refused (created_at).
    Whole hours come from report_outcome_hours (kept by triggers on deliveries)."""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT {key} AS g, {last} AS g_last, h.status, sum(h.n)::bigint AS n
            FROM report_outcome_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY 1, 2, 3"""

    async def raw(start_at: datetime, end_at: datetime) -> list[asyncpg.Record]:
        p = Params()
        start, end = p(start_at), p(end_at)
        key = _key(group, "d", "coalesce(d.sent_at, d.created_at)", p, period.timezone)
        where = scope.where(p, "d")
        sql = f"""
            SELECT {key} AS g, d.status, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status BETWEEN 1 AND 5
              AND NOT d.is_test AND {where}
            GROUP BY 1, 2
            UNION ALL
            SELECT {key} AS g, d.status, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at IS NULL AND d.status = 5
              AND d.created_at >= {start} AND d.created_at < {end}
              AND NOT d.is_test AND {where}
            GROUP BY 1, 2"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    out: dict[object, Figures] = defaultdict(Figures)
    for r in await hourly(conn, period, group, rollup, raw):
        out[r["g"]].outcomes[r["status"]] += r["n"]
    return out


def _seen(column: str, kind: int, human: bool, ws: str = "w.ws", we: str = "w.we") -> str:
    """A delivery had such an event inside its window [ws, we): decided by its first
    one, unless that was before the window (stamped before the send: check raw)."""
    human_sql = f" AND {HUMAN_SQL.replace('flags', 'e.flags')}" if human else ""
    return f"""(CASE WHEN w.{column} IS NULL THEN false
                WHEN w.{column} >= {ws} THEN w.{column} < {we}
                ELSE EXISTS (SELECT 1 FROM events e
                             WHERE e.campaign = w.campaign AND e.ts >= {ws} AND e.ts < {we}
                               AND e.delivery_id = w.delivery_id AND e.kind = {kind}{human_sql})
                END)"""


USER_FIGURES = {
    "open_users": ("first_human_open", 1, True),
    "open_users_all": ("first_open", 1, False),
    "click_users": ("first_human_click", 2, True),
    "click_users_all": ("first_click", 2, False),
    "conversion_users": ("first_conversion", 5, False),
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
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status = {DELIVERED}
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
    list); its Figures also carry the campaign's delivered count (outcomes[DELIVERED],
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
                row.outcomes[DELIVERED] = cells.pop("deliveries")
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
            figures.outcomes[DELIVERED] = r["deliveries"]
    return out


async def users(conn: asyncpg.Connection, scope: Scope, period: Period,
                group: str) -> dict[object, Figures]:
    """users_by_group for one group."""
    return (await users_by_group(conn, scope, period, (group,)))[group]


#: the predicate of the partial index deliveries_html_email (sql/051): a delivery that
#: makes opens measurable; queries must repeat it verbatim for the index to serve them
HTML_EMAIL = "d.channel = 1 AND d.has_html AND NOT d.is_test"


async def opens_measurable(conn: asyncpg.Connection, scope: Scope) -> bool:
    """Opens are measurable where some email in scope carried the pixel (F8, F24):
    one probe of the deliveries_html_email index, whatever the campaign's size."""
    if scope.channel is not None and scope.channel != 1:
        return False
    p = Params()
    where = [HTML_EMAIL]
    if scope.campaigns is not None:
        where.append(f"d.campaign = ANY({p(list(scope.campaigns))}::int[])")
    if scope.schedule_tasks is not None:
        tasks = p(list(scope.schedule_tasks))
        if scope.campaigns is None:
            # the index leads with campaign: name the tasks' campaigns
            where.append(f"d.campaign IN (SELECT st.campaign FROM schedule_tasks st"
                         f" WHERE st.id = ANY({tasks}::int[]))")
        where.append(f"d.schedule_task = ANY({tasks}::int[])")
    # not EXISTS: PostgreSQL drops an EXISTS's ORDER BY and may then gamble on a
    # seq scan finding a match early; the index order makes the index the plan
    sql = f"""SELECT coalesce((SELECT true FROM deliveries d WHERE {' AND '.join(where)}
              ORDER BY d.campaign, d.schedule_task LIMIT 1), false)"""
    measurable: bool = await conn.fetchval(sql, *p.values)
    return measurable


def edge_events(scope: Scope, p: Params, start: datetime, end: datetime, kinds: str) -> str:
    """FROM and WHERE over raw events of ``kinds`` in [start, end) in scope, test
    sends left out, with ``d`` and ``c`` joined for the channel."""
    return f"""FROM events e
        LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
        LEFT JOIN campaigns c ON c.id = e.campaign
        WHERE e.kind IN ({kinds}) AND e.ts >= {p(start)} AND e.ts < {p(end)}
          AND NOT coalesce(d.is_test, false)
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}"""


async def error_codes(conn: asyncpg.Connection, scope: Scope,
                      period: Period) -> list[dict[str, Any]]:
    """Failed outcomes sent in the period: per code its count and three most frequent
    messages (F9). Rows (dicts): code, total, message, n (top three per code), most
    frequent code first."""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT 0 AS g, 0 AS g_last, h.error_code AS code, h.error_message AS message,
                   sum(h.n)::bigint AS n
            FROM report_outcome_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)}
              AND h.status IN ({BOUNCED}, {SOFT_BOUNCED}, {FAILED}) AND {scope.where(p, 'h')}
            GROUP BY 3, 4"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        p = Params()
        sql = f"""
            SELECT d.error_code AS code, d.error_message AS message, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {p(start)} AND d.sent_at < {p(end)}
              AND d.status IN ({BOUNCED}, {SOFT_BOUNCED}, {FAILED}) AND NOT d.is_test
              AND {scope.where(p, 'd')}
            GROUP BY 1, 2"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    messages: dict[object, dict[object, int]] = defaultdict(lambda: defaultdict(int))
    for r in await hourly(conn, period, "total", rollup, raw):
        messages[r["code"]][r["message"]] += r["n"]
    codes = []
    for code, by_message in messages.items():
        found = [(m, n) for m, n in by_message.items() if n]
        if found:
            codes.append((code, sum(n for _, n in found), found))
    codes.sort(key=lambda c: (-c[1], c[0] is None, c[0] or ""))
    out: list[dict[str, Any]] = []
    for code, total, found in codes:
        found.sort(key=lambda mn: (-mn[1], mn[0] is None, mn[0] or ""))
        out.extend({"code": code, "total": total, "message": m, "n": n} for m, n in found[:3])
    return out


DEVICES_CAVEAT = ("one person may read one message on several devices; "
                  "these are event counts, not people")


async def devices(conn: asyncpg.Connection, scope: Scope, period: Period, *,
                  opens_ok: bool, include_bots: bool) -> list[dict[str, Any]]:
    """Opens and clicks inside the period by client family, OS family and device class
    of their user agent (F22), "unknown" where the user agent is missing or not yet
    described. Event counts, not people (DEVICES_CAVEAT). Opens are None where they
    are not measurable (F8)."""
    described = """coalesce(ua.client_family, 'unknown') AS client,
                   coalesce(ua.os_family, 'unknown') AS os,
                   coalesce(ua.device_class, 'unknown') AS device_class"""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT 0 AS g, 0 AS g_last, {described}, a.kind, a.human, sum(a.n)::bigint AS n
            FROM (SELECT h.ua_id, h.kind, h.human, sum(h.n) AS n FROM report_agent_hours h
                  WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
                  GROUP BY 1, 2, 3) a
            LEFT JOIN user_agents ua ON ua.id = a.ua_id AND a.ua_id <> 0
            GROUP BY 3, 4, 5, 6, 7"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        p = Params()
        human = HUMAN_SQL.replace("flags", "e.flags")
        sql = f"""
            SELECT {described}, e.kind, {human} AS human, count(*) AS n
            {edge_events(scope, p, start, end, '1, 2').replace(
                'WHERE', 'LEFT JOIN user_agents ua ON ua.id = e.ua_id AND e.ua_id <> 0 WHERE',
                1)}
            GROUP BY 1, 2, 3, 4, 5"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    table: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in await hourly(conn, period, "total", rollup, raw):
        if include_bots or r["human"]:
            table[(r["client"], r["os"], r["device_class"])][r["kind"] - 1] += r["n"]
    rows: list[dict[str, Any]] = [
        {"client": k[0], "os": k[1], "device_class": k[2],
         "opens": v[0] if opens_ok else None, "clicks": v[1]}
        for k, v in table.items() if (v[0] if opens_ok else 0) or v[1]]
    rows.sort(key=lambda r: (-((r["opens"] or 0) + r["clicks"]), r["client"], r["os"],
                             r["device_class"]))
    return rows


def dense_days(period: Period, found: set[object]) -> list[date]:
    """The days a series lists: all of them for sane periods, else those with data."""
    if period.dense:
        return period.local_days()
    return sorted(d for d in found if isinstance(d, date))
