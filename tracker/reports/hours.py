"""The whole-hours-plus-edges reader: a figure over a period from hourly rollups for
the whole UTC hours inside it and from raw rows for the (rare) partial hours at its
edges, or from raw rows alone when a day series is asked in a time zone whose
midnights are not on the hour. ``hourly`` reads one group; ``Grouping`` reads the
total, schedule tasks and local days at once. Every figure kept by UTC hour reads
through these, so the split between rollups and raw rows is made in one place (the
click ranking's counters are kept by local day: tracker.reports.clicks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg

from tracker.reports.ingredients import Figures
from tracker.reports.periods import DAY, Period, ceil_hour, day_bounds, floor_hour, uniform_days
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope


def group_key(group: str, alias: str, time_sql: str, p: Params, timezone: str) -> str:
    """The grouping expression; the time zone becomes a parameter only when used."""
    if group == "total":
        return "0"
    if group == "task":
        return f"{alias}.schedule_task"
    return f"({time_sql} AT TIME ZONE {p(timezone)}::text)::date"


async def hourly(conn: asyncpg.Connection, period: Period, group: str,
                  rollup: Callable[[Params, str, str, datetime, datetime], str],
                  raw: Callable[[datetime, datetime], Awaitable[list[asyncpg.Record]]],
                  ) -> list[asyncpg.Record]:
    """Rows for the period: ``rollup`` SQL for its whole UTC hours, ``raw`` for the
    partial hours at its edges, or ``raw`` alone when a day series is asked in a time
    zone whose midnights fall inside an hour (the rollup rows say so: g != g_last).
    ``rollup(p, key, key_last, inner_start, inner_end)`` selects g, g_last, ...;
    ``raw(start, end)`` returns rows with g and the same other columns."""
    inner_start, inner_end = ceil_hour(period.start), floor_hour(period.end)
    rows: list[asyncpg.Record] = []
    raw_ranges = [(period.start, period.end)]
    if inner_start < inner_end:
        p = Params()
        if group == "day":
            tz = p(period.timezone) + "::text"
            key = f"(h.hour AT TIME ZONE {tz})::date"
            last = f"((h.hour + interval '59 min 59.999999 s') AT TIME ZONE {tz})::date"
        else:
            key = last = group_key(group, "h", "h.hour", p, period.timezone)
        rows = list(await conn.fetch(rollup(p, key, last, inner_start, inner_end), *p.values))
        if any(r["g"] != r["g_last"] for r in rows):
            rows = []
        else:
            raw_ranges = [(period.start, inner_start), (inner_end, period.end)]
    for start, end in raw_ranges:
        if start < end:
            rows.extend(await raw(start, end))
    return rows


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
        inner_start, inner_end = ceil_hour(period.start), floor_hour(period.end)
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


def edge_events(scope: Scope, p: Params, start: datetime, end: datetime, kinds: str) -> str:
    """FROM and WHERE over raw events of ``kinds`` in [start, end) in scope, test
    sends left out, with ``d`` and ``c`` joined for the channel."""
    return f"""FROM events e
        LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
        LEFT JOIN campaigns c ON c.id = e.campaign
        WHERE e.kind IN ({kinds}) AND e.ts >= {p(start)} AND e.ts < {p(end)}
          AND NOT coalesce(d.is_test, false)
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}"""
