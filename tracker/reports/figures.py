"""The SQL behind every figure, grouped by nothing, by schedule task or by local day.

Count figures come from report_event_hours for whole UTC hours inside the period
and from raw events for the (rare) partial hours at its edges, or for the whole
period when a day series is asked in a time zone whose midnights are not on the
hour. Unique-user figures join the period's deliveries to report_delivery_firsts.
Everything is exact: tests/test_reports_exact.py holds it to brute-force SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import asyncpg

from tracker.reports.periods import Period
from tracker.reports.scope import CHANNEL_OF_EVENT, Params, Scope
from tracker.store.rollups import HUMAN_SQL

HOUR = timedelta(hours=1)
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
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


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
    return await conn.fetch(sql, *p.values)


async def counts(conn: asyncpg.Connection, scope: Scope, period: Period,
                 group: str) -> dict[object, Figures]:
    """Event counts by (kind, human) inside the period, per group key."""
    out: dict[object, Figures] = defaultdict(Figures)
    inner_start, inner_end = _ceil_hour(period.start), _floor_hour(period.end)
    rows: list = []
    raw_ranges: list[tuple[datetime, datetime]] = []
    if inner_start < inner_end:
        p = Params()
        if group == "day":
            tz = p(period.timezone) + "::text"
            key = f"(h.hour AT TIME ZONE {tz})::date"
            last = f"((h.hour + interval '59 min 59.999999 s') AT TIME ZONE {tz})::date"
        else:
            key = _key(group, "h", "h.hour", p, period.timezone)
            last = key
        sql = f"""
            SELECT {key} AS g, {last} AS g_last, h.kind, h.human, sum(h.n)::bigint AS n
            FROM report_event_hours h
            WHERE h.hour >= {p(inner_start)} AND h.hour < {p(inner_end)}
              AND {scope.where(p, 'h')}
            GROUP BY 1, 2, 3, 4"""
        rows = await conn.fetch(sql, *p.values)
        if any(r["g"] != r["g_last"] for r in rows):
            # an hour bucket straddles a local midnight: this zone needs raw events
            rows, raw_ranges = [], [(period.start, period.end)]
        else:
            raw_ranges = [(period.start, inner_start), (inner_end, period.end)]
    else:
        raw_ranges = [(period.start, period.end)]
    for start, end in raw_ranges:
        if start < end:
            rows.extend(await _raw_counts(conn, scope, period, group, start, end))
    for r in rows:
        out[r["g"]].events[(r["kind"], r["human"])] += r["n"]
    return out


async def outcomes(conn: asyncpg.Connection, scope: Scope, period: Period,
                   group: str) -> dict[object, Figures]:
    """Outcomes of deliveries sent in the period, by status. A suppressed delivery
    (never sent) is placed at its sent_at, or when it was refused (created_at)."""
    out: dict[object, Figures] = defaultdict(Figures)
    p = Params()
    start, end = p(period.start), p(period.end)
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
    for r in await conn.fetch(sql, *p.values):
        out[r["g"]].outcomes[r["status"]] += r["n"]
    return out


def _seen(column: str, kind: int, human: bool) -> str:
    """A delivery had such an event inside its window [ws, we): decided by its first
    one, unless that was before the window (stamped before the send: check raw)."""
    human_sql = f" AND {HUMAN_SQL.replace('flags', 'e.flags')}" if human else ""
    return f"""(CASE WHEN f.{column} IS NULL THEN false
                WHEN f.{column} >= w.ws THEN f.{column} < w.we
                ELSE EXISTS (SELECT 1 FROM events e
                             WHERE e.campaign = w.campaign AND e.ts >= w.ws AND e.ts < w.we
                               AND e.delivery_id = w.delivery_id AND e.kind = {kind}{human_sql})
                END)"""


USER_FIGURES = {
    "open_users": ("first_human_open", 1, True),
    "open_users_all": ("first_open", 1, False),
    "click_users": ("first_human_click", 2, True),
    "click_users_all": ("first_click", 2, False),
    "conversion_users": ("first_conversion", 5, False),
}


async def users(conn: asyncpg.Connection, scope: Scope, period: Period,
                group: str) -> dict[object, Figures]:
    """Distinct users of the deliveries delivered in the period (per day: sent that
    day) with an open, click or conversion inside the same period (F4, F12)."""
    out: dict[object, Figures] = defaultdict(Figures)
    p = Params()
    start, end = p(period.start), p(period.end)
    if group == "day":
        tz = p(period.timezone) + "::text"
        local_day = f"(d.sent_at AT TIME ZONE {tz})::date"
        window = (f"({local_day})::timestamp AT TIME ZONE {tz} AS ws,"
                  f" ({local_day} + 1)::timestamp AT TIME ZONE {tz} AS we")
    else:
        window = f"{start}::timestamptz AS ws, {end}::timestamptz AS we"
    key = _key(group, "w", "w.sent_at", p, period.timezone)
    # per (group, user) whether any of their deliveries had each event, then count
    # users: one hash aggregation instead of a sorted count(DISTINCT) per figure
    seen = ",\n".join(f"bool_or({_seen(col, kind, human)}) AS {name}"
                      for name, (col, kind, human) in USER_FIGURES.items())
    firsts = "LEFT JOIN report_delivery_firsts f ON f.delivery_id = w.delivery_id"
    if scope.campaigns is not None:
        # one campaign's deliveries: look each one up (OFFSET 0 keeps the planner from
        # hashing the whole firsts table, a seq scan that grows with the project)
        firsts = ("LEFT JOIN LATERAL (SELECT * FROM report_delivery_firsts f1"
                  " WHERE f1.delivery_id = w.delivery_id OFFSET 0) f ON true")
    counted = ", ".join(f"count(*) FILTER (WHERE {name}) AS {name}" for name in USER_FIGURES)
    sql = f"""
        WITH w AS (
            SELECT d.delivery_id, d.campaign, d.schedule_task, d.sent_at, d.user_id, {window}
            FROM deliveries d
            WHERE d.sent_at >= {start} AND d.sent_at < {end} AND d.status = {DELIVERED}
              AND NOT d.is_test AND {scope.where(p, 'd')}
        ), per_user AS (
            SELECT {key} AS g, w.user_id, {seen}
            FROM w {firsts}
            GROUP BY 1, 2
        )
        SELECT g, count(*) AS delivered_users, {counted}
        FROM per_user GROUP BY g"""
    for r in await conn.fetch(sql, *p.values):
        figures = out[r["g"]]
        for name in ("delivered_users", *USER_FIGURES):
            figures.users[name] = r[name]
    return out


async def opens_measurable(conn: asyncpg.Connection, scope: Scope) -> bool:
    """Opens are measurable where some email in scope carried the pixel (F8, F24)."""
    if scope.channel is not None and scope.channel != 1:
        return False
    p = Params()
    if scope.campaigns is not None:
        # read the campaign's deliveries by index; an EXISTS lets the planner gamble on
        # a seq scan of every delivery, which never ends early for a push campaign
        sql = f"""SELECT coalesce(bool_or(d.channel = 1 AND d.has_html AND NOT d.is_test),
                  false) FROM deliveries d WHERE {scope.where(p, 'd')}"""
    else:
        sql = f"""SELECT EXISTS (SELECT 1 FROM deliveries d WHERE d.channel = 1
                  AND d.has_html AND NOT d.is_test AND {scope.where(p, 'd')})"""
    return await conn.fetchval(sql, *p.values)


async def click_ranking(conn: asyncpg.Connection, scope: Scope, period: Period,
                        include_bots: bool, limit: int) -> list[dict]:
    """Clicks and distinct clicking users per link URL inside the period, whenever
    the message was sent (F5), most clicked first."""
    p = Params()
    human = HUMAN_SQL.replace("flags", "e.flags")
    # the campaigns join is only needed to place events without a delivery row by channel
    campaigns = " LEFT JOIN campaigns c ON c.id = e.campaign" if scope.channel else ""
    # An event's delivery is always of the event's campaign (both come from one token),
    # so a campaign's report hashes only that campaign's deliveries, not all of them.
    deliveries = "deliveries"
    if scope.campaigns is not None:
        deliveries = (f"(SELECT delivery_id, user_id, is_test, channel FROM deliveries"
                      f" WHERE campaign = ANY({p(list(scope.campaigns))}::int[]))")
    # Two-level aggregation (hash the (url, user) pairs, then count per url) beats
    # count(DISTINCT). The human test is an aggregate FILTER, not a WHERE: the planner
    # cannot estimate bit tests on flags and would pick a nested loop over millions.
    sql = f"""
        SELECT e.url_id, d.user_id, count(*) FILTER (WHERE {human}) AS h, count(*) AS n
        FROM events e
        LEFT JOIN {deliveries} d ON d.delivery_id = e.delivery_id{campaigns}
        WHERE e.kind = 2 AND e.ts >= {p(period.start)} AND e.ts < {p(period.end)}
          AND NOT coalesce(d.is_test, false)
          AND {scope.where(p, 'e', channel_sql=CHANNEL_OF_EVENT)}
        GROUP BY e.url_id, d.user_id"""
    if include_bots:
        per_url = "sum(n)::bigint AS clicks, count(user_id) AS click_users"
    else:
        per_url = ("sum(h)::bigint AS clicks,"
                   " count(user_id) FILTER (WHERE h > 0) AS click_users")
    sql = f"""
        SELECT coalesce(u.url, '') AS url, r.clicks, r.click_users
        FROM (SELECT url_id, {per_url} FROM ({sql}) pairs GROUP BY url_id) r
        LEFT JOIN urls u ON u.id = r.url_id
        WHERE r.clicks > 0
        ORDER BY r.clicks DESC, r.click_users DESC, url
        LIMIT {p(limit)}"""
    return [dict(r) for r in await conn.fetch(sql, *p.values)]


async def error_codes(conn: asyncpg.Connection, scope: Scope,
                      period: Period) -> list[asyncpg.Record]:
    """Failed outcomes sent in the period: per code its count and three most frequent
    messages (F9). Rows: code, count, message, message_count (top three per code)."""
    p = Params()
    sql = f"""
        WITH m AS (
            SELECT d.error_code AS code, d.error_message AS message, count(*) AS n
            FROM deliveries d
            WHERE d.sent_at >= {p(period.start)} AND d.sent_at < {p(period.end)}
              AND d.status IN ({BOUNCED}, {SOFT_BOUNCED}, {FAILED}) AND NOT d.is_test
              AND {scope.where(p, 'd')}
            GROUP BY 1, 2
        ), r AS (
            SELECT code, message, n, (sum(n) OVER (PARTITION BY code))::bigint AS total,
                   row_number() OVER (PARTITION BY code
                                      ORDER BY n DESC, message NULLS LAST) AS rank
            FROM m
        )
        SELECT code, total, message, n FROM r WHERE rank <= 3
        ORDER BY total DESC, code NULLS LAST, rank"""
    return await conn.fetch(sql, *p.values)


def dense_days(period: Period, found: set) -> list[date]:
    """The days a series lists: all of them for sane periods, else those with data."""
    if period.dense:
        return period.local_days()
    return sorted(d for d in found if isinstance(d, date))
