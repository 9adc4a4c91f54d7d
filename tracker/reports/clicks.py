"""The click ranking (docs/figures.md#f5): clicks and distinct clicking users per link URL.

The project, one campaign or one channel read report_link_counts and
report_link_returns (tracker.store.link_rollups) for the period's whole UTC hours,
and raw clicks for the partial hours at its edges (a time zone whose midnights fall
inside a UTC hour). A schedule task filter, or a campaign under a channel filter,
reads its raw clicks, found by their schedule tasks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from tracker.classify.verdict import human_sql
from tracker.events import Kind
from tracker.reports.hours import edge_events, hourly
from tracker.reports.periods import DAY, Period, ceil_hour, floor_hour
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.link_rollups import PROJECT_SCOPE, Span, channel_scope

#: the kind code of a click, as the SQL below writes it
CLICK = str(int(Kind.CLICK))

#: (human clicks, all clicks) per link
Clicks = dict[int, tuple[int, int]]


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


def spans(start: datetime, end: datetime) -> list[tuple[Span, datetime, datetime]]:
    """[start, end) (whole UTC hours) as (span, from, to) ranges of report_link_counts
    rows: whole calendar months, then whole days, then the hours left at the edges."""
    out: list[tuple[Span, datetime, datetime]] = []
    rest = [(start, end)]
    month_start, month_end = _ceil_month(start), _floor_month(end)
    if month_start < month_end:
        out.append((Span.MONTH, month_start, month_end))
        rest = [(start, month_start), (month_end, end)]
    for a, b in rest:
        day_start, day_end = _ceil_day(a), _floor_day(b)
        if day_start < day_end:
            out.extend([(Span.DAY, day_start, day_end), (Span.HOUR, a, day_start),
                        (Span.HOUR, day_end, b)])
        else:
            out.append((Span.HOUR, a, b))
    return [(span, a, b) for span, a, b in out if a < b]


def _slots(p: Params, span: Span, start: datetime, end: datetime) -> str:
    """The report_link_counts rows of one span starting in [start, end): one range of
    slots (tracker_link_slot, sql/071)."""
    return (f"slot >= tracker_link_slot({int(span)}, {p(start)})"
            f" AND slot < tracker_link_slot({int(span)}, {p(end)})")


def _counted_key(scope: Scope) -> int | None:
    """The report_link_counts scope answering this scope: the whole project, one
    campaign, or one channel; None when no counters can (a schedule task filter, a
    campaign under a channel filter, several campaigns): raw clicks answer then."""
    if scope.schedule_tasks is not None:
        return None
    if scope.campaigns is None:
        return PROJECT_SCOPE if scope.channel is None else channel_scope(scope.channel)
    if scope.channel is None and len(scope.campaigns) == 1:
        return scope.campaigns[0]
    return None


def _inner(period: Period) -> tuple[datetime, datetime] | None:
    """The period's whole UTC hours, when it has any (as tracker.reports.hours reads)."""
    start, end = ceil_hour(period.start), floor_hour(period.end)
    return (start, end) if start < end else None


def _edges(period: Period) -> list[tuple[datetime, datetime]]:
    """The period's partial hours at either end (all of it when it has no whole hour)."""
    inner = _inner(period)
    if inner is None:
        return [(period.start, period.end)]
    return [(a, b) for a, b in ((period.start, inner[0]), (inner[1], period.end)) if a < b]


async def _link_clicks_counted(conn: asyncpg.Connection, scope: Scope, key: int,
                               period: Period) -> Clicks:
    """Per link (human clicks, all clicks) inside the period: report_link_counts for
    its whole hours, raw clicks in scope at its partial hours."""

    def rollup(p: Params, _g: str, _g_last: str, start: datetime, end: datetime) -> str:
        parts = " UNION ALL ".join(
            f"SELECT url_id, human_clicks, clicks FROM report_link_counts"
            f" WHERE scope = {p(key)} AND {_slots(p, span, a, b)}"
            for span, a, b in spans(start, end))
        return f"""SELECT 0 AS g, 0 AS g_last, url_id, sum(human_clicks)::bigint AS h,
                          sum(clicks)::bigint AS n
                   FROM ({parts}) c GROUP BY url_id"""

    async def raw(start: datetime, end: datetime) -> list[asyncpg.Record]:
        p = Params()
        human = human_sql("e.flags")
        rows: list[asyncpg.Record] = await conn.fetch(
            f"""SELECT e.url_id, count(*) FILTER (WHERE {human}) AS h, count(*) AS n
                {edge_events(scope, p, start, end, CLICK)} GROUP BY e.url_id""", *p.values)
        return rows

    out: dict[int, tuple[int, int]] = {}
    for r in await hourly(conn, period, "total", rollup, raw):
        h, n = out.get(r["url_id"], (0, 0))
        out[r["url_id"]] = (h + r["h"], n + r["n"])
    return out


async def _link_users_counted(conn: asyncpg.Connection, scope: Scope, key: int,
                              period: Period, include_bots: bool,
                              url_ids: list[int]) -> dict[int, int]:
    """Distinct users per link clicking inside the period. Over its whole hours
    [S, E): the (link, user) pairs whose first click hour is inside it
    (report_link_counts) plus those that clicked before it and again inside, each of
    which has exactly one step between consecutive click hours entering the period
    (report_link_returns: from before it, to inside it). At its partial hours: the
    pairs clicking there (raw clicks) with no click in scope in [S, E)."""
    p = Params()
    counters, links = p(key), p(url_ids)
    parts = []
    inner = _inner(period)
    human = "" if include_bots else f" AND {human_sql('e.flags')}"
    if inner is not None:
        start, end = inner
        column = "firsts" if include_bots else "human_firsts"
        head = (f"SELECT url_id, {column} AS n FROM report_link_counts"
                f" WHERE scope = {counters} AND url_id = ANY({links}::bigint[])")
        parts = [f"{head} AND {_slots(p, span, a, b)}" for span, a, b in spans(start, end)]
        s = f"tracker_hour_number({p(start)})"
        parts.append(f"""
            SELECT r.url_id, r.n FROM report_link_returns r
            WHERE r.scope = {counters} AND r.bots = {p(include_bots)}
              AND r."to" >= {s} AND r."to" < tracker_hour_number({p(end)})
              AND r."from" < {s} AND r.url_id = ANY({links}::bigint[])""")
    edges = _edges(period)
    if edges:
        seen = "true"
        if inner is not None:
            # the pair's clicks in the whole hours: its user's deliveries in scope,
            # then each one's clicks of the link (the clicks' index, sql/063)
            campaign = (f" AND e.campaign = ANY({p(list(scope.campaigns))}::int[])"
                        if scope.campaigns is not None else "")
            seen = f"""NOT EXISTS (
                SELECT 1 FROM deliveries d
                CROSS JOIN LATERAL (
                    SELECT 1 FROM events e
                    WHERE e.delivery_id = d.delivery_id AND e.kind = {CLICK}
                      AND e.url_id = x.url_id AND e.ts >= {p(inner[0])}
                      AND e.ts < {p(inner[1])}{human}{campaign} LIMIT 1) hit
                WHERE d.user_id = x.user_id AND NOT d.is_test AND {scope.where(p, 'd')})"""
        pairs = " UNION ".join(
            f"SELECT e.url_id, d.user_id {edge_events(scope, p, a, b, CLICK)}"
            f" AND d.user_id IS NOT NULL AND e.url_id = ANY({links}::bigint[]){human}"
            for a, b in edges)
        parts.append(f"SELECT x.url_id, 1 FROM ({pairs}) x WHERE {seen}")
    sql = f"""SELECT url_id, sum(n)::bigint AS n FROM ({' UNION ALL '.join(parts)}) pairs
              GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


async def _links_raw(conn: asyncpg.Connection, scope: Scope, period: Period,
                     include_bots: bool) -> dict[int, tuple[int, int]]:
    """Per link (clicks, distinct users) from the scope's raw clicks, found by its
    schedule tasks (the filter's, or its campaigns'; events_task): a task's clicks
    are few and lie together by time. An event's delivery is always of the event's
    campaign, so only those campaigns' deliveries are joined."""
    p = Params()
    if scope.schedule_tasks is not None:
        tasks = f"{p(list(scope.schedule_tasks))}::int[]"
    else:
        tasks = (f"ARRAY(SELECT id FROM schedule_tasks"
                 f" WHERE campaign = ANY({p(list(scope.campaigns or ()))}::int[]))")
    human = "" if include_bots else f" AND {human_sql('e.flags')}"
    sql = f"""
        SELECT e.url_id, count(*) AS n, count(DISTINCT d.user_id) AS users
        FROM events e
        LEFT JOIN (SELECT delivery_id, user_id, is_test, channel FROM deliveries
                   WHERE campaign = ANY(ARRAY(SELECT DISTINCT campaign FROM schedule_tasks
                                              WHERE id = ANY({tasks})))) d
          ON d.delivery_id = e.delivery_id
        LEFT JOIN campaigns c ON c.id = e.campaign
        WHERE e.schedule_task = ANY({tasks}) AND e.kind = {CLICK}
          AND e.ts >= {p(period.start)} AND e.ts < {p(period.end)}
          AND NOT coalesce(d.is_test, false){human}
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
        GROUP BY e.url_id"""
    return {r["url_id"]: (r["n"], r["users"]) for r in await conn.fetch(sql, *p.values)}


async def _url_texts(conn: asyncpg.Connection, url_ids: list[int]) -> dict[int, str]:
    return {r["id"]: r["url"] for r in await conn.fetch(
        "SELECT id, url FROM urls WHERE id = ANY($1::bigint[])", url_ids)}


def _ranked(texts: dict[int, str], links: dict[int, tuple[int, int]],
            limit: int) -> list[dict[str, Any]]:
    """The ranking's rows: per link with clicks (clicks, users), most clicked first,
    then most users, then by URL."""
    rows = sorted(((-n, -users, texts.get(u, "")) for u, (n, users) in links.items() if n > 0))
    return [{"url": url, "clicks": -n, "click_users": -users} for n, users, url in rows[:limit]]


async def click_ranking(conn: asyncpg.Connection, scope: Scope, period: Period,
                        include_bots: bool, limit: int) -> list[dict[str, Any]]:
    """Clicks and distinct clicking users per link URL inside the period, whenever
    the message was sent (F5), most clicked first. The project, one campaign or one
    channel is answered from the link counters (and raw clicks at partial hours);
    a schedule task filter, or a campaign under a channel filter, from its raw
    clicks. Users are counted only for the links that can make the list."""
    if period.start >= period.end:
        return []  # dates clamped to before or after any data: nothing to rank
    key = _counted_key(scope)
    if key is None:
        links = await _links_raw(conn, scope, period, include_bots)
        return _ranked(await _url_texts(conn, list(links)), links, limit)
    found = await _link_clicks_counted(conn, scope, key, period)
    clicks = {u: n if include_bots else h for u, (h, n) in found.items()}
    ranked = sorted((n for n in clicks.values() if n > 0), reverse=True)
    if not ranked:
        return []
    # every link tied with the last one listed may still make the list on users or URL
    floor = ranked[min(limit, len(ranked)) - 1]
    candidates = [u for u, n in clicks.items() if n >= floor]
    users = await _link_users_counted(conn, scope, key, period, include_bots, candidates)
    return _ranked(await _url_texts(conn, candidates),
                   {u: (clicks[u], users.get(u, 0)) for u in candidates}, limit)
