"""The click ranking (docs/figures.md#f5): clicks and distinct clicking users per link URL.

The project or one campaign over whole hours reads report_link_counts and
report_link_returns (tracker.store.link_rollups); any other scope reads
report_click_hours and report_click_users with raw clicks at the edges.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from tracker.reports import figures as fig
from tracker.reports.periods import Period
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.link_rollups import DAY_SPAN, HOUR_SPAN, MONTH_SPAN
from tracker.store.rollups import HUMAN_SQL

DAY = timedelta(days=1)


def _floor_day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(t: datetime) -> datetime:
    floor = _floor_day(t)
    return floor if floor == t else floor + DAY


def _floor_month(t: datetime) -> datetime:
    return _floor_day(t).replace(day=1)


def _ceil_month(t: datetime) -> datetime:
    floor = _floor_month(t)
    if floor == t:
        return floor
    return (floor + 32 * DAY).replace(day=1)


def spans(start: datetime, end: datetime) -> list[tuple[int, datetime, datetime]]:
    """[start, end) (whole UTC hours) as (span, from, to) ranges of report_link_counts
    rows: whole calendar months, then whole days, then the hours left at the edges."""
    out: list[tuple[int, datetime, datetime]] = []
    rest = [(start, end)]
    month_start, month_end = _ceil_month(start), _floor_month(end)
    if month_start < month_end:
        out.append((MONTH_SPAN, month_start, month_end))
        rest = [(start, month_start), (month_end, end)]
    for a, b in rest:
        day_start, day_end = _ceil_day(a), _floor_day(b)
        if day_start < day_end:
            out.extend([(DAY_SPAN, day_start, day_end), (HOUR_SPAN, a, day_start),
                        (HOUR_SPAN, day_end, b)])
        else:
            out.append((HOUR_SPAN, a, b))
    return [(span, a, b) for span, a, b in out if a < b]


def _counted_key(scope: Scope, period: Period) -> int | None:
    """The report_link_counts scope answering this scope and period: 0 for the whole project,
    a campaign's id for one campaign; None when those rollups cannot (a schedule task or
    channel filter, several campaigns, or a period not on whole UTC hours)."""
    if scope.schedule_tasks is not None or scope.channel is not None:
        return None
    if not period.on_whole_hours:
        return None
    if scope.campaigns is None:
        return 0
    return scope.campaigns[0] if len(scope.campaigns) == 1 else None


async def _link_clicks_counted(conn: asyncpg.Connection, key: int,
                               period: Period) -> dict[int, tuple[int, int]]:
    """Per link (human clicks, all clicks) inside the period from report_link_counts."""
    p = Params()
    scope = p(key)
    parts = " UNION ALL ".join(
        f"SELECT url_id, clicks, human_clicks FROM report_link_counts WHERE scope = {scope}"
        f" AND span = {span} AND at >= {p(a)} AND at < {p(b)}"
        for span, a, b in spans(period.start, period.end))
    sql = f"""SELECT url_id, sum(human_clicks)::bigint AS h, sum(clicks)::bigint AS n
              FROM ({parts}) c GROUP BY url_id"""
    return {r["url_id"]: (r["h"], r["n"]) for r in await conn.fetch(sql, *p.values)}


async def _link_users_counted(conn: asyncpg.Connection, key: int, period: Period,
                              include_bots: bool, url_ids: list[int]) -> dict[int, int]:
    """Distinct users per link clicking inside the period: the (link, user) pairs whose
    first click hour is inside it (report_link_counts) plus those that clicked before it
    and again inside, each of which has exactly one step between consecutive click
    hours entering the period (report_link_returns: from before it, to inside it)."""
    start, end = period.start, period.end
    p = Params()
    scope, links, bots = p(key), p(url_ids), p(include_bots)
    column = "firsts" if include_bots else "human_firsts"
    head = (f"SELECT url_id, {column} AS n FROM report_link_counts WHERE scope = {scope}"
            f" AND url_id = ANY({links}::bigint[])")
    firsts = " UNION ALL ".join(f"{head} AND span = {span} AND at >= {p(a)} AND at < {p(b)}"
                                for span, a, b in spans(start, end))
    s = p(start)
    sql = f"""
        SELECT url_id, sum(n)::bigint AS n FROM ({firsts}
            UNION ALL
            SELECT r.url_id, r.n FROM report_link_returns r
            WHERE r.scope = {scope} AND r.url_id = ANY({links}::bigint[])
              AND r.bots = {bots} AND r."to" >= {s} AND r."to" < {p(end)}
              AND r."from" < {s}
        ) pairs GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


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
    always of the event's campaign), which beats report_click_users' scattered rows.
    Its events are found by its schedule tasks (events_task_ts, sql/063)."""
    p = Params()
    human = "" if include_bots else f" AND {HUMAN_SQL.replace('flags', 'e.flags')}"
    campaigns = " LEFT JOIN campaigns c ON c.id = e.campaign" if scope.channel else ""
    ids = p(list(scope.campaigns or ()))
    sql = f"""
        SELECT url_id, count(*) AS n FROM (
            SELECT e.url_id, d.user_id
            FROM events e
            JOIN (SELECT delivery_id, user_id, is_test, channel FROM deliveries
                  WHERE campaign = ANY({ids}::int[])) d
              ON d.delivery_id = e.delivery_id{campaigns}
            WHERE e.schedule_task = ANY(ARRAY(SELECT id FROM schedule_tasks
                                              WHERE campaign = ANY({ids}::int[])))
              AND e.kind = 2 AND e.ts >= {p(period.start)} AND e.ts < {p(period.end)}
              AND NOT d.is_test AND e.url_id = ANY({p(url_ids)}::bigint[]){human}
              AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
            GROUP BY 1, 2) pairs
        GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


async def _link_clicks_hourly(conn: asyncpg.Connection, scope: Scope,
                              period: Period) -> dict[int, tuple[int, int]]:
    """Per link (human clicks, all clicks) inside the period for any scope: from
    report_click_hours for whole hours and raw clicks at the period's edges."""

    def rollup(p: Params, key: str, last: str, start: datetime, end: datetime) -> str:
        return f"""
            SELECT 0 AS g, 0 AS g_last, h.url_id,
                   coalesce(sum(h.n) FILTER (WHERE h.human), 0)::bigint AS h,
                   sum(h.n)::bigint AS n
            FROM report_click_hours h
            WHERE h.hour >= {p(start)} AND h.hour < {p(end)} AND {scope.where(p, 'h')}
            GROUP BY h.url_id"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        p = Params()
        human = HUMAN_SQL.replace("flags", "e.flags")
        sql = f"""SELECT e.url_id, count(*) FILTER (WHERE {human}) AS h, count(*) AS n
                  {fig.edge_events(scope, p, start, end, '2')} GROUP BY e.url_id"""
        rows: list[asyncpg.Record] = await conn.fetch(sql, *p.values)
        return rows

    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in await fig.hourly(conn, period, "total", rollup, raw):
        out[r["url_id"]][0] += r["h"]
        out[r["url_id"]][1] += r["n"]
    return {u: (h, n) for u, (h, n) in out.items()}


async def click_ranking(conn: asyncpg.Connection, scope: Scope, period: Period,
                        include_bots: bool, limit: int) -> list[dict[str, Any]]:
    """Clicks and distinct clicking users per link URL inside the period, whenever
    the message was sent (F5), most clicked first. The project or one campaign over
    whole hours is answered from the link counters; any other scope from
    report_click_hours, report_click_users and raw clicks. Users are counted only for
    the links that can make the list."""
    if period.start >= period.end:
        return []  # dates clamped to before or after any data: nothing to rank
    key = _counted_key(scope, period)
    if key is not None:
        found = await _link_clicks_counted(conn, key, period)
    else:
        found = await _link_clicks_hourly(conn, scope, period)
    clicks = {u: n if include_bots else h for u, (h, n) in found.items()}
    ranked = sorted((n for n in clicks.values() if n > 0), reverse=True)
    if not ranked:
        return []
    # every link tied with the last one listed may still make the list on users or URL
    floor = ranked[min(limit, len(ranked)) - 1]
    candidates = [u for u, n in clicks.items() if n >= floor]
    if key is not None:
        link_users = await _link_users_counted(conn, key, period, include_bots, candidates)
    else:
        count_users = _link_users_raw if scope.campaigns is not None else _link_users
        link_users = await count_users(conn, scope, period, include_bots, candidates)
    texts = {r["id"]: r["url"] for r in await conn.fetch(
        "SELECT id, url FROM urls WHERE id = ANY($1::bigint[])", candidates)}
    rows = [{"url": texts.get(u, ""), "clicks": clicks[u], "click_users": link_users.get(u, 0)}
            for u in candidates]
    rows.sort(key=lambda r: (-r["clicks"], -r["click_users"], r["url"]))
    return rows[:limit]
