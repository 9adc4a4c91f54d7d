"""The query shapes that keep reports fast at scale (issue 5), checked on a real
PostgreSQL: each fast path gives the same answer as the plain question, and uses
the index or plan it was written for. Exactness against brute force lives in
tests/test_reports_exact.py; this file holds what a random data set rarely hits.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import asyncpg
import pytest

from tests.support import run
from tracker.reports import measurable, people
from tracker.reports.ingredients import GROUPS
from tracker.reports.periods import day_bounds, uniform_days
from tracker.reports.scope import Scope


class Captured:
    """An asyncpg connection that remembers the SQL it was asked to run."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.sql: list[tuple[str, tuple]] = []

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.sql.append((sql, args))
        return await self.conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list:
        self.sql.append((sql, args))
        return await self.conn.fetch(sql, *args)


def nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


# campaign name -> (channel, has_html, is_test) of its deliveries; 3000 each so the
# planner has a real choice between walking deliveries and the partial index
CAMPAIGNS = {
    "html": (1, True, False),
    "text": (1, False, False),
    "push": (2, None, False),
    "line": (3, None, False),
    "test-only": (1, True, True),
}


async def _setup(conn: asyncpg.Connection) -> dict[str, tuple[int, int, int]]:
    """Per campaign: its id and two schedule tasks; the html campaign's second task
    sent text-only mail."""
    ids = {}
    for name, (channel, has_html, is_test) in CAMPAIGNS.items():
        cid = await conn.fetchval(
            "INSERT INTO campaigns (campaign_id, name, channel) VALUES ($1, $1, $2)"
            " RETURNING id", name, {1: "email", 2: "push", 3: "line"}[channel])
        tasks = [await conn.fetchval(
            "INSERT INTO schedule_tasks (campaign, schedule_task_id) VALUES ($1, $2)"
            " RETURNING id", cid, f"{name}-{t}") for t in (1, 2)]
        await conn.execute(
            """INSERT INTO deliveries (delivery_id, campaign, schedule_task, sent_at, channel,
                                       status, has_html, is_test, user_id)
               SELECT $1::int * 10000 + g, $1, CASE WHEN g % 2 = 0 THEN $2::int ELSE $3::int END,
                      '2026-03-01'::timestamptz + g * interval '1 minute', $4::smallint, 1,
                      CASE WHEN $6::bool AND g % 2 = 1 THEN false ELSE $5::bool END, $7::bool,
                      'u' || g
               FROM generate_series(1, 3000) g""",
            cid, tasks[0], tasks[1], channel, has_html, name == "html", is_test)
        ids[name] = (cid, *tasks)
    await conn.execute("ANALYZE deliveries")
    return ids


def _measurable_cases(ids: dict) -> list[tuple[Scope, bool]]:
    html, text, push = ids["html"], ids["text"], ids["push"]
    return [
        (Scope(), True),
        (Scope(channel=2), False),
        (Scope(channel=1), True),
        (Scope((html[0],)), True),
        (Scope((html[0],), (html[1],)), True),
        (Scope((html[0],), (html[2],)), False),  # the text-only task
        (Scope(None, (html[1],)), True),
        (Scope(None, (html[2], text[1])), False),
        (Scope((text[0],)), False),
        (Scope((push[0],)), False),
        (Scope((ids["line"][0],)), False),
        (Scope((ids["test-only"][0],)), False),  # test sends never count (F2)
        (Scope((text[0], html[0])), True),
        (Scope((html[0],), channel=3), False),
    ]


def test_opens_measurable_probes_the_html_email_index(database: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(database)
        try:
            ids = await _setup(conn)
            for scope, expected in _measurable_cases(ids):
                # the plain question, asked of every delivery in scope
                plain = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM deliveries d WHERE d.channel = 1"
                    " AND d.has_html AND NOT d.is_test"
                    " AND ($1::int[] IS NULL OR d.campaign = ANY($1::int[]))"
                    " AND ($2::int[] IS NULL OR d.schedule_task = ANY($2::int[]))"
                    " AND ($3::int IS NULL OR d.channel = $3))",
                    scope.campaigns and list(scope.campaigns),
                    scope.schedule_tasks and list(scope.schedule_tasks), scope.channel)
                assert plain == expected, scope
                captured = Captured(conn)
                assert await measurable.opens_measurable(captured, scope) is expected, scope
                if scope.channel not in (None, 1):
                    assert captured.sql == []  # answered without asking
                    continue
                (sql, args), = captured.sql
                plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
                used = {n.get("Index Name") for n in nodes(plan[0]["Plan"])}
                # never a walk of deliveries, whatever the campaign's channel
                assert "deliveries_html_email" in used, (scope, plan)
                assert "deliveries_campaign_sent" not in used, (scope, plan)
        finally:
            await conn.close()

    run(go())


@pytest.mark.parametrize("write", ["insert", "update"])
def test_html_email_index_follows_the_deliveries_it_describes(database: str, write: str) -> None:
    """A delivery registered, or corrected, as HTML email makes opens measurable at
    once: the index is kept by PostgreSQL itself, in the writer's transaction."""
    async def go() -> None:
        conn = await asyncpg.connect(database)
        try:
            ids = await _setup(conn)
            cid, task, _ = ids["text"]
            scope = Scope((cid,), (task,))
            assert await measurable.opens_measurable(conn, scope) is False
            if write == "insert":
                await conn.execute(
                    "INSERT INTO deliveries (delivery_id, campaign, schedule_task, channel,"
                    " has_html, user_id) VALUES (999999, $1, $2, 1, true, 'late')", cid, task)
            else:
                await conn.execute(
                    "UPDATE deliveries SET has_html = true WHERE delivery_id ="
                    " (SELECT min(delivery_id) FROM deliveries WHERE schedule_task = $1)", task)
            assert await measurable.opens_measurable(conn, scope) is True
        finally:
            await conn.close()

    run(go())


def test_day_bounds_place_rollup_hours_only_where_midnights_are_on_the_hour() -> None:
    """Counts find a rollup hour's local day by the period's midnights; where a
    midnight falls inside an hour (or the period is absurd) they read raw events."""
    from tracker.reports.periods import period

    spring = period("2026-03-07", "2026-03-09", "America/New_York")  # DST starts 3/8
    bounds = day_bounds(spring)
    assert bounds is not None and len(bounds) == 4
    hours = [(b - a).total_seconds() / 3600 for a, b in zip(bounds, bounds[1:], strict=False)]
    assert hours == [24, 23, 24]
    assert bounds[0] == spring.start and bounds[-1] == spring.end
    tokyo = day_bounds(period("2026-01-01", "2026-12-31", "Asia/Tokyo"))
    assert tokyo is not None and len(tokyo) == 366 and tokyo[0].hour == 15
    assert day_bounds(period("2026-01-01", "2026-01-31", "Asia/Kolkata")) is None
    # user figures need no whole hours, only days of 24 hours for their arithmetic
    assert uniform_days(period("2026-01-01", "2026-01-31", "Asia/Kolkata"))
    assert uniform_days(period("2026-01-01", "2026-12-31", "Asia/Tokyo"))
    assert not uniform_days(spring)
    assert not uniform_days(period("0001-01-01", "9999-12-31", "UTC"))
    assert day_bounds(period("0001-01-01", "9999-12-31", "UTC")) is None
    assert day_bounds(period("9999-12-30", "9999-12-31", "UTC")) is None
    assert day_bounds(period("1900-01-01", "1900-01-02", "UTC")) is None


@pytest.mark.parametrize("early", [False, True], ids=["firsts decide", "event before send"])
def test_user_figures_of_one_group_equal_those_asked_together(database: str,
                                                               early: bool) -> None:
    """users(group) runs the query with that group alone (the first part of its UNION
    names the columns); an event stamped before its send takes the raw path."""
    from tests.reports_support import Data, at
    from tracker.reports.periods import period as make_period

    data = Data(database)
    data.campaign("c")
    sent = [("t1", "u1", "2026-05-01 10:00"), ("t1", "u2", "2026-05-01 23:30"),
            ("t2", "u1", "2026-05-02 09:00"), ("t2", "u3", "2026-05-03 12:00")]
    ids = data.deliveries([{"campaign": "c", "task": t, "user": u, "sent_at": at(s)}
                           for t, u, s in sent])
    data.events([(ids[0], at("2026-05-01 11:00"), 1), (ids[1], at("2026-05-02 08:00"), 2),
                 (ids[2], at("2026-05-04 09:00"), 1), (ids[3], at("2026-05-03 12:01"), 5)])
    if early:  # clocks disagree: an open stamped before its send, inside the period
        data.events([(ids[3], at("2026-05-02 23:00"), 1)])

    async def go() -> None:
        conn = await asyncpg.connect(database)
        try:
            cid = data.campaign_ids["c"]
            ids_task = {t: data.task("c", t) for t in ("t1", "t2")}
            for tz in ("UTC", "Asia/Tokyo"):
                scope, period = Scope((cid,)), make_period("2026-05-01", "2026-05-03", tz)
                together = await people.users_by_group(conn, scope, period)
                for group in GROUPS:
                    alone = await people.users(conn, scope, period, group)
                    assert ({k: dict(f.users) for k, f in alone.items()}
                            == {k: dict(f.users) for k, f in together[group].items()})
                total = together["total"][0].users
                assert total["delivered_users"] == 3
                # u1 opened; u3's open, stamped before its send, is inside the period
                # and, in Tokyo, inside its send day (08:00 and 21:00 on 5/3); in UTC
                # it is the day before, which only the raw check can tell
                assert total["open_users"] == (2 if early else 1)
                u3_day = together["day"][date(2026, 5, 3)].users["open_users"]
                assert u3_day == (1 if early and tz == "Asia/Tokyo" else 0)
                if tz == "UTC":
                    # 5/1 is t1's alone (figures taken from the task), 5/2 and 5/3 are
                    # t2's, which spans two days (counted by day and user)
                    by_day = {d: (f.users["delivered_users"], f.users["open_users"],
                                  f.users["click_users"])
                              for d, f in together["day"].items()}
                    assert by_day == {date(2026, 5, 1): (2, 1, 0), date(2026, 5, 2): (1, 0, 0),
                                      date(2026, 5, 3): (1, 0, 0)}
                    assert together["task"][ids_task["t1"]].users["click_users"] == 1
        finally:
            await conn.close()

    run(go())
