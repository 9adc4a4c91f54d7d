"""Opens and clicks by client family, OS family and device class (F22), from
report_agent_hours for whole hours and raw events at the edges."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg

from tracker.classify.verdict import human_sql
from tracker.events import Kind
from tracker.reports.hours import edge_events, hourly
from tracker.reports.periods import Period
from tracker.reports.scope import Params, Scope

#: the kinds of event the table counts: opens and clicks
KINDS = f"{int(Kind.OPEN)}, {int(Kind.CLICK)}"

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
        human = human_sql("e.flags")
        sql = f"""
            SELECT {described}, e.kind, {human} AS human, count(*) AS n
            {edge_events(scope, p, start, end, KINDS).replace(
                'WHERE', 'LEFT JOIN user_agents ua ON ua.id = e.ua_id AND e.ua_id <> 0 WHERE',
                1)}
            GROUP BY 1, 2, 3, 4, 5"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    table: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in await hourly(conn, period, "total", rollup, raw):
        if include_bots or r["human"]:
            column = 0 if r["kind"] == Kind.OPEN else 1
            table[(r["client"], r["os"], r["device_class"])][column] += r["n"]
    rows: list[dict[str, Any]] = [
        {"client": k[0], "os": k[1], "device_class": k[2],
         "opens": v[0] if opens_ok else None, "clicks": v[1]}
        for k, v in table.items() if (v[0] if opens_ok else 0) or v[1]]
    rows.sort(key=lambda r: (-((r["opens"] or 0) + r["clicks"]), r["client"], r["os"],
                             r["device_class"]))
    return rows
