"""Exactness: for random data sets, every figure of both reports equals a
brute-force SQL over the raw rows, written here independently of the report code.

Timestamps fall on arbitrary minutes (so the raw edges of the hourly rollups are
used), events may precede their send (the raw fallback of the user figures), and
the time zone varies, including one whose midnights are not on the hour.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tracker.events import dictionary_id
from tracker.reports import campaign as campaign_report
from tracker.reports import people_cells
from tracker.reports import project as project_report
from tracker.reports.options import options
from tracker.store import rollups
from tracker.store.events import land

pytestmark = pytest.mark.slow  # property tests against brute-force SQL over many random data sets


BASE = datetime(2026, 3, 7, tzinfo=UTC)  # a DST change in New York falls inside
ZONES = ["UTC", "Asia/Tokyo", "Asia/Kolkata", "America/New_York"]
URLS = ["https://a.example/", "https://b.example/x", "https://c.example/?q=1"]
CHANNELS = {1: "email", 2: "push", 3: "line"}
HUMAN = "((e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2))"


def deliveries_of(users: list[str], statuses: list[int]) -> st.SearchStrategy:
    """Deliveries of these users, with these statuses (repeated ones more often)."""
    return st.lists(st.fixed_dictionaries({
        "campaign": st.integers(0, 1),
        "task": st.integers(0, 1),
        "user": st.sampled_from(users),
        "status": st.sampled_from(statuses),
        "sent_minute": st.integers(0, 5 * 24 * 60) | st.tuples(
            st.integers(0, 5), st.sampled_from([0, 15 * 60, 18 * 60 + 30, 5 * 60])).map(
            lambda t: t[0] * 24 * 60 + t[1] - 7),
        "channel": st.sampled_from([1, 1, 2, 3]),
        "has_html": st.sampled_from([True, False, None]),
        "is_test": st.sampled_from([False, False, False, True]),
        "error": st.sampled_from([(None, None), ("Transient:MailboxFull", "full"),
                                  ("Transient:MailboxFull", "quota"),
                                  ("Permanent:General", "=no such user"), ("odd", None)]),
    }), min_size=1, max_size=14)


deliveries_st = deliveries_of(["u1", "u2", "u3", "visitor:9", "u5"], [0, 1, 1, 1, 2, 3, 4, 5])

#: UTC times of local midnights in ZONES (minutes after 00:00 UTC), to put events
#: right around the boundaries of days and periods
MIDNIGHTS = [0, 15 * 60, 18 * 60 + 30, 5 * 60, 4 * 60]

events_st = st.lists(st.tuples(
    st.integers(0, 13),                      # delivery index (modulo)
    st.one_of(                               # minutes after the send, or near a midnight
        st.integers(-600, 3 * 24 * 60),
        st.tuples(st.integers(0, 6), st.sampled_from(MIDNIGHTS), st.integers(-70, 70))),
    st.sampled_from([1, 1, 2, 2, 3, 4, 5]),  # kind
    st.sampled_from([0, 0, 1, 2, 4, 6, 8]),  # flags: HEAD bit and verdicts
    st.sampled_from(URLS),
    st.sampled_from([None, 0, 1, 2]),        # user agent (2: not yet described)
), max_size=40)

AGENTS = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Mobile/15E148",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
          " Chrome/124.0 Safari/537.36",
          "Mozilla/5.0 (X11; Linux x86_64) HypotheticalMail/1.0"]


async def write(conn: asyncpg.Connection, deliveries: list[dict], events: list[tuple]) -> None:
    await conn.execute("TRUNCATE campaigns, schedule_tasks, deliveries, events, urls,"
                       " report_event_hours, journal_positions,"
                       " report_outcome_hours, report_agent_hours, report_link_counts,"
                       " report_link_returns CASCADE")
    camps, tasks = [], {}
    for i, channel in enumerate(("email", "push")):
        camps.append(await conn.fetchval(
            "INSERT INTO campaigns (campaign_id, channel) VALUES ($1, $2) RETURNING id",
            f"c{i}", channel))
        for t in range(2):
            tasks[(i, t)] = await conn.fetchval(
                "INSERT INTO schedule_tasks (campaign, schedule_task_id) VALUES ($1, $2)"
                " RETURNING id", camps[i], f"t{t}")
    records = []
    for i, d in enumerate(deliveries, 1):
        sent = BASE + timedelta(minutes=d["sent_minute"])
        status = d["status"]
        code, message = d["error"] if status in (2, 3, 4) else (None, None)
        records.append((i, camps[d["campaign"]], tasks[(d["campaign"], d["task"])],
                        None if status in (0, 5) else sent, sent, d["channel"], status,
                        d["has_html"], d["is_test"], d["user"], code, message))
    # even ones as they end, odd ones prepared first and given their outcome by an
    # UPDATE after their events landed, so the triggers on deliveries (outcome counters,
    # list cells) count both on insert and on update, with firsts already there
    prepared = [(*r[:3], None, r[4], r[5], 0, *r[7:10], None, None) if r[0] % 2 else r
                for r in records]
    await conn.copy_records_to_table("deliveries", records=prepared, columns=(
        "delivery_id", "campaign", "schedule_task", "sent_at", "created_at", "channel",
        "status", "has_html", "is_test", "user_id", "error_code", "error_message"))
    rows, urls, agents = [], {}, {}
    for index, minutes, kind, flags, url, *agent in events:
        rec = records[index % len(records)]
        if isinstance(minutes, tuple):
            day, midnight, offset = minutes
            ts = BASE + timedelta(days=day, minutes=midnight + offset, seconds=17)
        else:
            ts = rec[4] + timedelta(minutes=minutes, seconds=17)
        url_id = 0
        if kind == 2:
            url_id = dictionary_id(url.encode())
            urls[url_id] = url.encode()
        ua_id = 0
        if agent and agent[0] is not None:
            ua_id = dictionary_id(AGENTS[agent[0]].encode())
            agents[ua_id] = AGENTS[agent[0]].encode()
        ts_us = (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        rows.append((ts_us, rec[0], url_id, ua_id, rec[1], rec[2], kind, flags, 0))
    # land in two batches, as two shipper transactions would
    half = len(rows) // 2
    for n, part in enumerate((rows[:half], rows[half:])):
        await land(conn, journal="exact", segment=n, offset=0, events=part, urls=urls,
                   user_agents=agents)
    odd = [r for r in records if r[0] % 2]
    await conn.execute(
        "UPDATE deliveries d SET sent_at = u.sent_at, status = u.status, error_code = u.code,"
        " error_message = u.message FROM unnest($1::bigint[], $2::timestamptz[],"
        " $3::int2[], $4::text[], $5::text[]) AS u(id, sent_at, status, code, message)"
        " WHERE d.delivery_id = u.id",
        [r[0] for r in odd], [r[3] for r in odd], [r[6] for r in odd],
        [r[10] for r in odd], [r[11] for r in odd])
    # an agent landed before the shipper described agents reads as "unknown" (F22)
    await conn.execute("UPDATE user_agents SET client_family = NULL, os_family = NULL,"
                       " device_class = NULL WHERE user_agent = $1", AGENTS[2])


class Reference:
    """Brute force over raw rows for one scope."""

    def __init__(self, conn: asyncpg.Connection, tz: str, campaign: str | None,
                 task: str | None, channel: int | None) -> None:
        self.conn, self.tz = conn, tz
        self.args = [campaign, task, channel]

    SCOPE = """($3::text IS NULL OR c.campaign_id = $3) AND ($4::text IS NULL OR EXISTS (
                   SELECT 1 FROM schedule_tasks st WHERE st.id = {a}.schedule_task
                   AND st.schedule_task_id = $4)) AND ($5::int IS NULL OR {ch} = $5)"""

    async def window(self, first: date, last: date) -> tuple[datetime, datetime]:
        row = await self.conn.fetchrow(
            "SELECT ($1::date)::timestamp AT TIME ZONE $3, ($2::date + 1)::timestamp"
            " AT TIME ZONE $3", first, last, self.tz)
        return row[0], row[1]

    async def figures(self, ws: datetime, we: datetime) -> dict:
        ev_scope = self.SCOPE.format(a="e", ch="coalesce(d.channel, CASE c.channel"
                                     " WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END)")
        d_scope = self.SCOPE.format(a="d", ch="d.channel")
        out: dict = {}
        for name, cond in (("opens", f"e.kind = 1 AND {HUMAN}"),
                           ("machine_opens", f"e.kind = 1 AND NOT {HUMAN}"),
                           ("clicks", f"e.kind = 2 AND {HUMAN}"),
                           ("bot_clicks", f"e.kind = 2 AND NOT {HUMAN}"),
                           ("unsubscribes", "e.kind = 3"), ("resubscribes", "e.kind = 4"),
                           ("conversions", "e.kind = 5")):
            out[name] = await self.conn.fetchval(
                f"SELECT count(*) FROM events e LEFT JOIN deliveries d USING (delivery_id)"
                f" JOIN campaigns c ON c.id = e.campaign WHERE e.ts >= $1 AND e.ts < $2"
                f" AND NOT coalesce(d.is_test, false) AND {cond} AND {ev_scope}",
                ws, we, *self.args)
        for name, status in (("deliveries", 1), ("bounces", 2), ("soft_bounces", 3),
                             ("failures", 4), ("suppressed", 5)):
            out[name] = await self.conn.fetchval(
                f"SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
                f" WHERE d.status = {status} AND NOT d.is_test"
                f" AND coalesce(d.sent_at, CASE WHEN d.status = 5 THEN d.created_at END) >= $1"
                f" AND coalesce(d.sent_at, CASE WHEN d.status = 5 THEN d.created_at END) < $2"
                f" AND {d_scope}", ws, we, *self.args)
        for name, cond in (("delivered_users", None), ("open_users", f"e.kind = 1 AND {HUMAN}"),
                           ("open_users_all", "e.kind = 1"),
                           ("click_users", f"e.kind = 2 AND {HUMAN}"),
                           ("click_users_all", "e.kind = 2"), ("conversion_users", "e.kind = 5")):
            exists = "" if cond is None else (
                f" AND EXISTS (SELECT 1 FROM events e WHERE e.delivery_id = d.delivery_id"
                f" AND e.ts >= $1 AND e.ts < $2 AND {cond})")
            out[name] = await self.conn.fetchval(
                f"SELECT count(DISTINCT d.user_id) FROM deliveries d"
                f" JOIN campaigns c ON c.id = d.campaign WHERE d.status = 1 AND NOT d.is_test"
                f" AND d.sent_at >= $1 AND d.sent_at < $2 AND {d_scope}{exists}",
                ws, we, *self.args)
        return out

    async def opens_ok(self) -> bool:
        return await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
            " WHERE d.channel = 1 AND d.has_html AND NOT d.is_test AND "
            + self.SCOPE.format(a="d", ch="d.channel").replace("$3", "$1").replace(
                "$4", "$2").replace("$5", "$3") + ")", *self.args)

    async def ranking(self, ws: datetime, we: datetime, bots: bool) -> list[dict]:
        ev_scope = self.SCOPE.format(a="e", ch="coalesce(d.channel, CASE c.channel"
                                     " WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END)")
        rows = await self.conn.fetch(
            f"SELECT u.url, count(*) AS clicks, count(DISTINCT d.user_id) AS click_users"
            f" FROM events e LEFT JOIN deliveries d USING (delivery_id)"
            f" JOIN campaigns c ON c.id = e.campaign JOIN urls u ON u.id = e.url_id"
            f" WHERE e.kind = 2 AND e.ts >= $1 AND e.ts < $2 AND NOT coalesce(d.is_test, false)"
            f" AND ({'true' if bots else HUMAN}) AND {ev_scope} GROUP BY u.url",
            ws, we, *self.args)
        return sorted((dict(r) for r in rows),
                      key=lambda r: (-r["clicks"], -r["click_users"], r["url"]))

    async def devices(self, ws: datetime, we: datetime, bots: bool, opens_ok: bool) -> list:
        ev_scope = self.SCOPE.format(a="e", ch="coalesce(d.channel, CASE c.channel"
                                     " WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END)")
        counted = "true" if bots else HUMAN
        rows = await self.conn.fetch(
            f"SELECT coalesce(ua.client_family, 'unknown') AS client,"
            f" coalesce(ua.os_family, 'unknown') AS os,"
            f" coalesce(ua.device_class, 'unknown') AS device_class,"
            f" count(*) FILTER (WHERE e.kind = 1 AND {counted}) AS opens,"
            f" count(*) FILTER (WHERE e.kind = 2 AND {counted}) AS clicks"
            f" FROM events e LEFT JOIN deliveries d USING (delivery_id)"
            f" JOIN campaigns c ON c.id = e.campaign"
            f" LEFT JOIN user_agents ua ON ua.id = e.ua_id"
            f" WHERE e.ts >= $1 AND e.ts < $2 AND NOT coalesce(d.is_test, false)"
            f" AND {ev_scope} GROUP BY 1, 2, 3", ws, we, *self.args)
        out = [{**dict(r), "opens": r["opens"] if opens_ok else None} for r in rows
               if (r["opens"] if opens_ok else 0) or r["clicks"]]
        return sorted(out, key=lambda r: (r["client"], r["os"], r["device_class"]))

    async def error_codes(self, ws: datetime, we: datetime) -> dict:
        rows = await self.conn.fetch(
            "SELECT d.error_code, d.error_message, count(*) FROM deliveries d"
            " JOIN campaigns c ON c.id = d.campaign WHERE d.status IN (2, 3, 4)"
            " AND NOT d.is_test AND d.sent_at >= $1 AND d.sent_at < $2 AND "
            + self.SCOPE.format(a="d", ch="d.channel") + " GROUP BY 1, 2", ws, we, *self.args)
        out: dict = {}
        for code, message, n in rows:
            entry = out.setdefault(code, {"count": 0, "messages": {}})
            entry["count"] += n
            entry["messages"][message] = n
        return out


def by_agent(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["client"], r["os"], r["device_class"]))


def rate(a, b):
    return None if a is None or not b else a / b


def check_campaign_row(got: dict, ref: dict, opens_ok: bool, cv_ok: bool, bots: bool) -> None:
    opens = ref["opens"] + (ref["machine_opens"] if bots else 0)
    clicks = ref["clicks"] + (ref["bot_clicks"] if bots else 0)
    open_users = ref["open_users_all" if bots else "open_users"]
    click_users = ref["click_users_all" if bots else "click_users"]
    expected = {
        "targets": ref["deliveries"] + ref["bounces"] + ref["soft_bounces"] + ref["failures"],
        "deliveries": ref["deliveries"], "delivered_users": ref["delivered_users"],
        "opens": opens if opens_ok else None, "open_users": open_users if opens_ok else None,
        "clicks": clicks, "click_users": click_users,
        "open_rate": rate(open_users, ref["delivered_users"]) if opens_ok else None,
        "click_rate": rate(click_users, ref["delivered_users"]),
        "click_to_open_rate": rate(click_users, open_users) if opens_ok else None,
        "machine_opens": ref["machine_opens"] if opens_ok else None,
        "bot_clicks": ref["bot_clicks"], "bounces": ref["bounces"],
        "soft_bounces": ref["soft_bounces"], "failures": ref["failures"],
        "suppressed": ref["suppressed"], "unsubscribes": ref["unsubscribes"],
        "resubscribes": ref["resubscribes"],
        "conversions": ref["conversions"] if cv_ok else None,
        "conversion_users": ref["conversion_users"] if cv_ok else None,
        "conversion_rate": rate(ref["conversion_users"], ref["delivered_users"]) if cv_ok
        else None,
        "conversion_status": "measured" if cv_ok else "not_measured",
    }
    assert {k: got[k] for k in expected} == expected


def check_project_row(got: dict, ref: dict, opens_ok: bool, bots: bool) -> None:
    targets = ref["deliveries"] + ref["bounces"] + ref["soft_bounces"] + ref["failures"]
    expected = {
        "targets": targets, "deliveries": ref["deliveries"], "bounces": ref["bounces"],
        "soft_bounces": ref["soft_bounces"], "failures": ref["failures"],
        "fail_count": targets - ref["deliveries"], "suppressed": ref["suppressed"],
        "bounce_rate": rate(ref["bounces"], targets), "unsubscribes": ref["unsubscribes"],
        "resubscribes": ref["resubscribes"],
        "opens": (ref["opens"] + (ref["machine_opens"] if bots else 0)) if opens_ok else None,
        "clicks": ref["clicks"] + (ref["bot_clicks"] if bots else 0),
    }
    assert {k: got[k] for k in expected} == expected


async def check_campaign_people(conn: asyncpg.Connection, period, tz: str) -> None:
    """The campaign list's counters (people_cells) equal brute force per campaign,
    wherever they answer (None: a half-hour time zone or an event before its send)."""
    people = await people_cells.campaign_people(conn, period)
    if people is None:
        return
    for cid, internal in await conn.fetch("SELECT campaign_id, id FROM campaigns"):
        ref = await Reference(conn, tz, cid, None, None).figures(period.start, period.end)
        names = ("delivered_users", *people_cells.FIGURES)
        expected = {"deliveries": ref["deliveries"], **{k: ref[k] for k in names}}
        got = people.get(internal, dict.fromkeys(expected, 0))
        assert got == expected, cid
        assert all(type(v) is int for v in got.values()), got  # not Decimal: pages format ints


async def check(dsn: str, deliveries, events, tz, first_day, days, bots, task, channel) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await write(conn, deliveries, events)
        snapshot = ("SELECT * FROM report_event_hours ORDER BY 1, 3, 4, 5, 6, 7",
                    "SELECT delivery_id, first_open, first_human_open, first_click,"
                    " first_human_click, first_conversion FROM deliveries ORDER BY 1",
                    "SELECT * FROM report_outcome_hours WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5,"
                    " 6 NULLS FIRST, 7 NULLS FIRST",
                    "SELECT * FROM report_agent_hours ORDER BY 1, 2, 3, 4, 5, 6, 7",
                    "SELECT * FROM report_link_counts WHERE (clicks, firsts, human_firsts)"
                    " <> (0, 0, 0) ORDER BY scope, slot, url_id",
                    "SELECT * FROM report_link_returns WHERE n <> 0"
                    " ORDER BY scope, bots, \"to\", \"from\", url_id",
                    "SELECT * FROM report_delivery_cells WHERE n <> 0 ORDER BY 1, 2, 3, 4",
                    "SELECT * FROM report_campaign_repeats ORDER BY 1, 2")
        kept = [await conn.fetch(q) for q in snapshot]
        await rollups.rebuild(conn)  # what landing built equals a recount from scratch
        assert [await conn.fetch(q) for q in snapshot] == kept
        first = (BASE + timedelta(days=first_day)).date()
        last = first + timedelta(days=days)
        params = {"from": first.isoformat(), "to": last.isoformat(),
                  "include_bots": str(bots).lower(), "schedule_task_id": task,
                  "channel": CHANNELS.get(channel), "links": "100"}
        for cid in ("c0", "c1"):
            got = await campaign_report.build(conn, options({**params, "campaign_id": cid}, tz))
            ref = Reference(conn, tz, cid, task, channel)
            opens_ok = await ref.opens_ok()
            cv_ok = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM events e LEFT JOIN deliveries d USING"
                " (delivery_id) JOIN campaigns c ON c.id = e.campaign WHERE c.campaign_id = $1"
                " AND e.kind = 5 AND NOT coalesce(d.is_test, false))", cid)
            ws, we = await ref.window(first, last)
            check_campaign_row(got, await ref.figures(ws, we), opens_ok, cv_ok, bots)
            assert got["click_ranking"] == await ref.ranking(ws, we, bots)
            assert by_agent(got["devices"]) == await ref.devices(ws, we, bots, opens_ok)
            assert [d["date"] for d in got["days"]] == [
                (first + timedelta(days=i)).isoformat() for i in range(days + 1)]
            for day in got["days"]:
                dws, dwe = await ref.window(date.fromisoformat(day["date"]),
                                            date.fromisoformat(day["date"]))
                check_campaign_row(day, await ref.figures(dws, dwe), opens_ok, cv_ok, bots)
            for t in got["schedule_tasks"]:
                tref = Reference(conn, tz, cid, t["schedule_task_id"], channel)
                check_campaign_row(t, await tref.figures(ws, we), opens_ok, cv_ok, bots)
        if task is None and channel is None:
            await check_campaign_people(conn, options(params, tz).period, tz)
        got = await project_report.build(conn, options(params, tz))
        ref = Reference(conn, tz, None, task, channel)
        ws, we = await ref.window(first, last)
        opens_ok = await ref.opens_ok()
        check_project_row(got, await ref.figures(ws, we), opens_ok, bots)
        assert got["click_ranking"] == await ref.ranking(ws, we, bots)
        assert by_agent(got["devices"]) == await ref.devices(ws, we, bots, opens_ok)
        codes = await ref.error_codes(ws, we)
        assert {e["code"]: e["count"] for e in got["error_codes"]} == {
            k: v["count"] for k, v in codes.items()}
        for e in got["error_codes"]:
            messages = codes[e["code"]]["messages"]
            counts = sorted(messages.values(), reverse=True)[:3]
            assert [m["count"] for m in e["top_messages"]] == counts
            assert all(messages[m["message"]] == m["count"] for m in e["top_messages"])
        for day in got["days"]:
            dws, dwe = await ref.window(date.fromisoformat(day["date"]),
                                        date.fromisoformat(day["date"]))
            check_project_row(day, await ref.figures(dws, dwe), opens_ok, bots)
    finally:
        await conn.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(deliveries=deliveries_st, events=events_st, tz=st.sampled_from(ZONES),
       first_day=st.integers(-1, 5), days=st.integers(0, 4), bots=st.booleans(),
       task=st.sampled_from([None, None, "t0", "t1"]),
       channel=st.sampled_from([None, None, 1, 2, 3]))
@example(  # sent late on day 0, first open just after midnight: not a day-0 open user
    deliveries=[{"campaign": 0, "task": 0, "user": "u1", "status": 1, "sent_minute": 23 * 60,
                 "channel": 1, "has_html": True, "is_test": False, "error": (None, None)}],
    events=[(0, 90, 1, 0, URLS[0]), (0, -30, 2, 0, URLS[1]), (0, 24 * 60 + 50, 2, 0, URLS[1])],
    tz="UTC", first_day=0, days=1, bots=False, task=None, channel=None)
def test_every_figure_equals_brute_force_sql(database, deliveries, events, tz, first_day, days,
                                             bots, task, channel) -> None:
    asyncio.run(check(database, deliveries, events, tz, first_day, days, bots, task, channel))


#: events only at or after their send (the counters answer then; an earlier one makes
#: them hand over to the deliveries path, which the test above covers)
events_after_send_st = st.lists(st.tuples(
    st.integers(0, 13), st.integers(0, 3 * 24 * 60), st.sampled_from([1, 1, 2, 2, 5]),
    st.sampled_from([0, 0, 1, 2, 8]), st.sampled_from(URLS)), max_size=40)


async def check_list_counters(dsn: str, deliveries, events, tz: str, first_day: int,
                              days: int, outcome_changes: list[tuple[int, int]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await write(conn, deliveries, events)
        # later outcomes: a delivered message bounces after all, a failed one arrives
        for index, status in outcome_changes:
            await conn.execute("UPDATE deliveries SET status = $2, sent_at = coalesce("
                               "sent_at, created_at) WHERE delivery_id = $1",
                               index % len(deliveries) + 1, status)
        first = (BASE + timedelta(days=first_day)).date()
        period = options({"from": first.isoformat(),
                          "to": (first + timedelta(days=days)).isoformat()}, tz).period
        assert await people_cells.campaign_people(conn, period) is not None
        await check_campaign_people(conn, period, tz)
        snapshot = ("SELECT * FROM report_delivery_cells WHERE n <> 0 ORDER BY 1, 2, 3, 4",
                    "SELECT * FROM report_campaign_repeats ORDER BY 1, 2")
        kept = [await conn.fetch(q) for q in snapshot]
        await rollups.rebuild(conn)
        assert [await conn.fetch(q) for q in snapshot] == kept
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(deliveries=deliveries_of(["u1", "u2", "visitor:9"], [0, 1, 1, 1, 1, 2]),
       events=events_after_send_st,
       tz=st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York"]),
       first_day=st.integers(-1, 5), days=st.integers(0, 4),
       outcome_changes=st.lists(st.tuples(st.integers(0, 13), st.sampled_from([1, 2, 4])),
                                max_size=4))
@example(  # one user reached twice, both deliveries opened, clicked and converted
    deliveries=[{"campaign": 0, "task": t, "user": "u1", "status": 1, "sent_minute": m,
                 "channel": 1, "has_html": True, "is_test": False, "error": (None, None)}
                for t, m in ((0, 60), (1, 120))],
    events=[(i, 10 + i, kind, 0, URLS[0]) for i in (0, 1) for kind in (1, 2, 5)],
    tz="UTC", first_day=0, days=1, outcome_changes=[])
def test_campaign_list_counters_equal_brute_force_sql(database, deliveries, events, tz,
                                                      first_day, days,
                                                      outcome_changes) -> None:
    """The campaign list's people per campaign (sql/055 cells and repeat deliveries,
    kept by triggers as deliveries and firsts change in any order) equal brute force,
    and equal a rebuild from scratch."""
    asyncio.run(check_list_counters(database, deliveries, events, tz, first_day, days,
                                    outcome_changes))
