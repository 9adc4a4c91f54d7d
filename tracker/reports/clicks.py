"""The click ranking (docs/figures.md#f5): clicks and distinct clicking users per link URL.

The project, one campaign or one channel read report_link_counts and
report_link_returns (tracker.store.link_rollups), kept by local day and month of the
reports' time zone: a period of whole local days is whole months plus whole days,
from the counters alone. A schedule task filter, a campaign under a channel filter,
or a time zone other than the counters' (until they are refolded in it) read raw
clicks.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg

from tracker.classify.verdict import human_sql
from tracker.events import Kind
from tracker.reports.hours import edge_events
from tracker.reports.periods import EARLIEST, LATEST, Period
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.link_rollups import PROJECT_SCOPE, Span, channel_scope, counters_zone

#: the kind code of a click, as the SQL below writes it
CLICK = str(int(Kind.CLICK))

#: (human clicks, all clicks) per link
Clicks = dict[int, tuple[int, int]]

#: the local days data can lie in (periods.EARLIEST and LATEST, a day of margin)
FIRST_DAY, END_DAY = EARLIEST.date() - timedelta(days=1), LATEST.date() + timedelta(days=1)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def spans(first: date, end: date) -> list[tuple[Span, date, date]]:
    """The local days [first, end) as (span, from, to) ranges of report_link_counts
    rows: whole calendar months, then the days left at either side."""
    month_start = first if first.day == 1 else _next_month(first)
    month_end = end.replace(day=1)
    if month_start < month_end:
        ranges = [(Span.MONTH, month_start, month_end), (Span.DAY, first, month_start),
                  (Span.DAY, month_end, end)]
    else:
        ranges = [(Span.DAY, first, end)]
    return [(span, a, b) for span, a, b in ranges if a < b]


def _days(period: Period) -> tuple[date, date]:
    """The period's local days as [first, end), bounded to where data can lie."""
    return max(period.first, FIRST_DAY), min(period.last, END_DAY) + timedelta(days=1)


def _slots(p: Params, span: Span, first: date, end: date) -> str:
    """The report_link_counts rows of one span starting on a day in [first, end): one
    range of slots (tracker_link_slot, sql/079)."""
    return (f"slot >= tracker_link_slot({int(span)}, {p(first)}::date)"
            f" AND slot < tracker_link_slot({int(span)}, {p(end)}::date)")


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


async def _link_clicks_counted(conn: asyncpg.Connection, key: int, period: Period) -> Clicks:
    """Per link (human clicks, all clicks) on the period's local days."""
    p = Params()
    counters = p(key)
    parts = " UNION ALL ".join(
        f"SELECT url_id, human_clicks, clicks FROM report_link_counts"
        f" WHERE scope = {counters} AND {_slots(p, span, a, b)}"
        for span, a, b in spans(*_days(period)))
    rows = await conn.fetch(f"""SELECT url_id, sum(human_clicks)::bigint AS h,
                                       sum(clicks)::bigint AS n
                                FROM ({parts}) c GROUP BY url_id""", *p.values)
    return {r["url_id"]: (r["h"], r["n"]) for r in rows}


async def _link_users_counted(conn: asyncpg.Connection, key: int, period: Period,
                              include_bots: bool, url_ids: list[int]) -> dict[int, int]:
    """Distinct users per link clicking on the period's local days [F, E): the (link,
    user) pairs whose first click day is inside (report_link_counts) plus those that
    clicked before it and again inside, each of which has exactly one step between
    consecutive click days entering the period (report_link_returns: from before F,
    to inside)."""
    p = Params()
    counters, links = p(key), p(url_ids)
    first, end = _days(period)
    column = "firsts" if include_bots else "human_firsts"
    parts = [f"SELECT url_id, {column} AS n FROM report_link_counts"
             f" WHERE scope = {counters} AND url_id = ANY({links}::bigint[])"
             f" AND {_slots(p, span, a, b)}" for span, a, b in spans(first, end)]
    f = f"tracker_day_number({p(first)}::date)"
    parts.append(f"""
        SELECT r.url_id, r.n FROM report_link_returns r
        WHERE r.scope = {counters} AND r.bots = {p(include_bots)}
          AND r."to" >= {f} AND r."to" < tracker_day_number({p(end)}::date)
          AND r."from" < {f} AND r.url_id = ANY({links}::bigint[])""")
    sql = f"""SELECT url_id, sum(n)::bigint AS n FROM ({' UNION ALL '.join(parts)}) pairs
              GROUP BY url_id"""
    return {r["url_id"]: r["n"] for r in await conn.fetch(sql, *p.values)}


def _clicks_by_task(scope: Scope, p: Params, period: Period) -> str:
    """FROM and WHERE over the scope's raw clicks of the period, found by its schedule
    tasks (the filter's, or its campaigns'; events_task): a task's clicks are few and
    lie together by time. An event's delivery is always of the event's campaign, so
    only those campaigns' deliveries are joined."""
    if scope.schedule_tasks is not None:
        tasks = f"{p(list(scope.schedule_tasks))}::int[]"
    else:
        tasks = (f"ARRAY(SELECT id FROM schedule_tasks"
                 f" WHERE campaign = ANY({p(list(scope.campaigns or ()))}::int[]))")
    return f"""FROM events e
        LEFT JOIN (SELECT delivery_id, user_id, is_test, channel FROM deliveries
                   WHERE campaign = ANY(ARRAY(SELECT DISTINCT campaign FROM schedule_tasks
                                              WHERE id = ANY({tasks})))) d
          ON d.delivery_id = e.delivery_id
        LEFT JOIN campaigns c ON c.id = e.campaign
        WHERE e.schedule_task = ANY({tasks}) AND e.kind = {CLICK}
          AND e.ts >= {p(period.start)} AND e.ts < {p(period.end)}
          AND NOT coalesce(d.is_test, false)
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}"""


async def _links_raw(conn: asyncpg.Connection, scope: Scope, period: Period,
                     include_bots: bool) -> dict[int, tuple[int, int]]:
    """Per link (clicks, distinct users) from the scope's raw clicks: found by their
    schedule tasks when the scope names campaigns or tasks, else every click of the
    period in scope (the project or a channel in a time zone other than the
    counters': exact, and as slow as the period's clicks are many)."""
    p = Params()
    if scope.campaigns is None and scope.schedule_tasks is None:
        clicks = edge_events(scope, p, period.start, period.end, CLICK)
    else:
        clicks = _clicks_by_task(scope, p, period)
    human = "" if include_bots else f" AND {human_sql('e.flags')}"
    sql = f"""SELECT e.url_id, count(*) AS n, count(DISTINCT d.user_id) AS users
              {clicks}{human}
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
    channel is answered from the link counters when they are kept in the period's
    time zone; a schedule task filter, a campaign under a channel filter, or another
    time zone, from raw clicks. Users are counted only for the links that can make
    the list."""
    if period.start >= period.end:
        return []  # dates clamped to before or after any data: nothing to rank
    key = _counted_key(scope)
    if key is None or await counters_zone(conn) != period.timezone:
        links = await _links_raw(conn, scope, period, include_bots)
        return _ranked(await _url_texts(conn, list(links)), links, limit)
    found = await _link_clicks_counted(conn, key, period)
    clicks = {u: n if include_bots else h for u, (h, n) in found.items()}
    ranked = sorted((n for n in clicks.values() if n > 0), reverse=True)
    if not ranked:
        return []
    # every link tied with the last one listed may still make the list on users or URL
    floor = ranked[min(limit, len(ranked)) - 1]
    candidates = [u for u, n in clicks.items() if n >= floor]
    users = await _link_users_counted(conn, key, period, include_bots, candidates)
    return _ranked(await _url_texts(conn, candidates),
                   {u: (clicks[u], users.get(u, 0)) for u in candidates}, limit)
