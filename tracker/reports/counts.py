"""Event counts by (kind, human) and delivery outcomes by status, per period, schedule
task or local day, from report_event_hours and report_outcome_hours for whole UTC
hours and raw rows at the edges (tracker.reports.hours); and the failed outcomes'
error codes (F9). Exact: tests/test_reports_exact.py holds them to brute-force SQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg

from tracker.classify.verdict import human_sql
from tracker.reports.hours import Grouping, group_key, hourly
from tracker.reports.ingredients import GROUPS, Figures
from tracker.reports.periods import Period
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.deliveries import Status

#: the statuses counted among outcomes (every one but PREPARED), as SQL's BETWEEN bounds
OUTCOMES = f"{int(Status.DELIVERED)} AND {int(Status.SUPPRESSED)}"
#: the failed outcomes whose error codes a report lists (F9)
FAILURES = ", ".join(str(int(s)) for s in (Status.BOUNCED, Status.SOFT_BOUNCED, Status.FAILED))


async def _raw_counts(conn: asyncpg.Connection, scope: Scope, period: Period, group: str,
                      start: datetime, end: datetime) -> list[asyncpg.Record]:
    p = Params()
    key = group_key(group, "e", "e.ts", p, period.timezone)
    sql = f"""
        SELECT {key} AS g, e.kind, {human_sql('e.flags')} AS human,
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
        human = human_sql("e.flags")
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
        key = group_key(group, "d", "coalesce(d.sent_at, d.created_at)", p, period.timezone)
        where = scope.where(p, "d")
        sql = f"""
            SELECT {key} AS g, d.status, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status BETWEEN {OUTCOMES}
              AND NOT d.is_test AND {where}
            GROUP BY 1, 2
            UNION ALL
            SELECT {key} AS g, d.status, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at IS NULL AND d.status = {int(Status.SUPPRESSED)}
              AND d.created_at >= {start} AND d.created_at < {end}
              AND NOT d.is_test AND {where}
            GROUP BY 1, 2"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    out: dict[object, Figures] = defaultdict(Figures)
    for r in await hourly(conn, period, group, rollup, raw):
        out[r["g"]].outcomes[r["status"]] += r["n"]
    return out


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
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status BETWEEN {OUTCOMES}
              AND NOT d.is_test AND {where}
            GROUP BY {sets}
            UNION ALL
            SELECT {cols}, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at IS NULL AND d.status = {int(Status.SUPPRESSED)}
              AND d.created_at >= {start} AND d.created_at < {end}
              AND NOT d.is_test AND {where}
            GROUP BY {sets}"""

    def add(figures: Figures, r: asyncpg.Record) -> None:
        figures.outcomes[r["status"]] += r["n"]

    return await grouping.figures(conn, rollup, raw, add)


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
              AND h.status IN ({FAILURES}) AND {scope.where(p, 'h')}
            GROUP BY 3, 4"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        p = Params()
        sql = f"""
            SELECT d.error_code AS code, d.error_message AS message, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {p(start)} AND d.sent_at < {p(end)}
              AND d.status IN ({FAILURES}) AND NOT d.is_test
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
