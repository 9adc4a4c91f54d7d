"""The click ranking (F5): clicks and distinct clicking users per link URL.

Clicks come from report_click_hours like every count figure (figures.hourly); the
distinct users per link are the costly part and have their own rollups.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from tracker.reports import figures as fig
from tracker.reports.periods import Period
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.rollups import HUMAN_SQL


async def _link_users(conn: asyncpg.Connection, scope: Scope, period: Period,
                      include_bots: bool, url_ids: list[int]) -> dict[int, int]:
    """Distinct users per link clicking inside the period, from report_click_users:
    a (link, user) whose first or last click is inside clicked inside; one whose
    clicks surround the period is checked against raw clicks."""
    p = Params()
    first, last = ("u.first_click", "u.last_click") if include_bots else (
        "u.first_human", "u.last_human")
    start, end = p(period.start), p(period.end)
    human = "" if include_bots else f" AND {HUMAN_SQL.replace('flags', 'e.flags')}"
    # Pairs decided by their first or last click, and (apart) pairs whose clicks surround
    # the period, checked one by one against raw clicks: kept apart so the planner sees
    # the first branch as the plain filtered scan it is.
    links = f"JOIN unnest({p(url_ids)}::bigint[]) AS l(url_id) ON l.url_id = u.url_id"
    where = scope.where(p, "u")
    sql = f"""
        SELECT url_id, count(*) AS n FROM (
            SELECT u.url_id, u.user_id FROM report_click_users u {links}
            WHERE {where} AND {first} < {end} AND {last} >= {start}
              AND ({first} >= {start} OR {last} < {end})
            UNION
            SELECT u.url_id, u.user_id FROM report_click_users u {links}
            CROSS JOIN LATERAL (
                SELECT 1 FROM deliveries d JOIN events e ON e.delivery_id = d.delivery_id
                WHERE d.user_id = u.user_id AND d.campaign = u.campaign
                  AND d.schedule_task = u.schedule_task AND d.channel = u.channel
                  AND NOT d.is_test AND e.kind = 2 AND e.url_id = u.url_id
                  AND e.ts >= {start} AND e.ts < {end}{human} LIMIT 1) seen
            WHERE {where} AND {first} < {start} AND {last} >= {end}
        ) pairs GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


async def _link_users_raw(conn: asyncpg.Connection, scope: Scope, period: Period,
                          include_bots: bool, url_ids: list[int]) -> dict[int, int]:
    """Distinct users per link from one campaign's raw clicks: its clicks are few and
    lie together by time, and its deliveries are hashed alone (an event's delivery is
    always of the event's campaign), which beats report_click_users' scattered rows."""
    p = Params()
    human = "" if include_bots else f" AND {HUMAN_SQL.replace('flags', 'e.flags')}"
    campaigns = " LEFT JOIN campaigns c ON c.id = e.campaign" if scope.channel else ""
    sql = f"""
        SELECT url_id, count(*) AS n FROM (
            SELECT e.url_id, d.user_id
            FROM events e
            JOIN (SELECT delivery_id, user_id, is_test, channel FROM deliveries
                  WHERE campaign = ANY({p(list(scope.campaigns or ()))}::int[])) d
              ON d.delivery_id = e.delivery_id{campaigns}
            WHERE e.kind = 2 AND e.ts >= {p(period.start)} AND e.ts < {p(period.end)}
              AND NOT d.is_test AND e.url_id = ANY({p(url_ids)}::bigint[]){human}
              AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
            GROUP BY 1, 2) pairs
        GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


async def click_ranking(conn: asyncpg.Connection, scope: Scope, period: Period,
                        include_bots: bool, limit: int) -> list[dict]:
    """Clicks and distinct clicking users per link URL inside the period, whenever
    the message was sent (F5), most clicked first. Clicks come from
    report_click_hours (raw clicks at the period's edges); users are counted only for
    the links that can make the list."""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT 0 AS g, 0 AS g_last, h.url_id,
                   coalesce(sum(h.n) FILTER (WHERE h.human), 0)::bigint AS h,
                   sum(h.n)::bigint AS n
            FROM report_click_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY h.url_id"""

    async def raw(start: datetime, end: datetime) -> list:
        p = Params()
        human = HUMAN_SQL.replace("flags", "e.flags")
        sql = f"""SELECT e.url_id, count(*) FILTER (WHERE {human}) AS h, count(*) AS n
                  {fig.edge_events(scope, p, start, end, '2')} GROUP BY e.url_id"""
        return await conn.fetch(sql, *p.values)

    clicks: dict[int, int] = defaultdict(int)
    for r in await fig.hourly(conn, period, "total", rollup, raw):
        clicks[r["url_id"]] += r["n"] if include_bots else r["h"]
    ranked = sorted((n for n in clicks.values() if n > 0), reverse=True)
    if not ranked:
        return []
    # every link tied with the last one listed may still make the list on users or URL
    floor = ranked[min(limit, len(ranked)) - 1]
    candidates = [u for u, n in clicks.items() if n >= floor]
    count_users = _link_users_raw if scope.campaigns is not None else _link_users
    link_users = await count_users(conn, scope, period, include_bots, candidates)
    texts = {r["id"]: r["url"] for r in await conn.fetch(
        "SELECT id, url FROM urls WHERE id = ANY($1::bigint[])", candidates)}
    rows = [{"url": texts.get(u, ""), "clicks": clicks[u], "click_users": link_users.get(u, 0)}
            for u in candidates]
    rows.sort(key=lambda r: (-r["clicks"], -r["click_users"], r["url"]))
    return rows[:limit]
