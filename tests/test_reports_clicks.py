"""The click ranking's distinct users per link (F5, F12) from report_link_counts and
report_link_returns: pairs first clicked before a period, clicks that surround
it, one user in two campaigns or two channels, bots, periods whose ends are not whole
UTC hours, out-of-order landing and two shippers at once. Every count is held to a
brute-force SQL over the raw rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from tracker.events import dictionary_id
from tracker.reports import campaign as campaign_report
from tracker.reports import project as project_report
from tracker.reports.clicks import spans
from tracker.reports.options import options
from tracker.reports.periods import Period
from tracker.store import effects, rollups
from tracker.store.events import EVENT_COLUMNS, land, ts_from_us
from tracker.store.link_rollups import Span, align_zone
from tracker.tokens import CHANNELS_BY_NAME

BASE = datetime(2026, 3, 2, tzinfo=UTC)
LINKS = ["https://a.example/", "https://b.example/"]
HUMAN, SCANNER = 0, 3 << 1  # flags: verdict human, verdict scanner click

#: delivery id -> (campaign index, user, is_test, channel): u1 and u2 click link A by
#: email and by push too (in campaign c1, whose deliveries go by either)
DELIVERIES = {1: (0, "u1", False, 1), 2: (1, "u1", False, 1), 3: (0, "u2", False, 1),
              4: (0, "u3", True, 1), 5: (0, "u4", False, 1), 6: (1, "u2", False, 1),
              7: (1, "u1", False, 2), 8: (1, "u2", False, 2)}

#: (delivery, day after BASE, hour, link index, flags): from January to May, so periods
#: are made of whole months, whole days and edge hours alike
CLICKS = [(1, -40, 10, 0, HUMAN), (1, 33, 10, 0, HUMAN), (2, 2, 12, 0, HUMAN),
          (3, -3, 9, 0, HUMAN), (3, 3, 10, 0, HUMAN), (4, 2, 11, 0, HUMAN),
          (5, 2, 8, 0, SCANNER), (5, 70, 8, 0, HUMAN), (6, 0, 23, 1, HUMAN),
          (6, 40, 1, 1, SCANNER), (3, 2, 0, 1, HUMAN), (1, 3, 23, 1, SCANNER),
          (5, -45, 5, 1, HUMAN), (2, 31, 0, 1, HUMAN), (7, 2, 14, 0, HUMAN),
          (7, 34, 6, 0, SCANNER), (8, -3, 21, 0, HUMAN), (8, 45, 3, 1, HUMAN)]

#: period bounds (days after BASE) combined into every first <= last
BOUNDS = [-50, -41, -3, 0, 2, 3, 5, 33, 45, 80]


def _us(day: int, hour: int) -> int:
    ts = BASE + timedelta(days=day, hours=hour, minutes=7)
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


async def _setup(conn: asyncpg.Connection) -> tuple[list[int], dict[int, int]]:
    """The campaigns' ids, and each delivery's schedule task: "t" in both campaigns,
    and "u" in c1 for its push deliveries."""
    camps, tasks = [], {}
    for i, name in enumerate(("c0", "c1")):
        cid = await conn.fetchval(
            "INSERT INTO campaigns (campaign_id, channel) VALUES ($1, 'email') RETURNING id", name)
        camps.append(cid)
        for task in ("t", "u"):
            tasks[(i, task)] = await conn.fetchval(
                "INSERT INTO schedule_tasks (campaign, schedule_task_id) VALUES ($1, $2)"
                " RETURNING id", cid, task)
    task_of = {did: tasks[(c, "u" if (c, channel) == (1, 2) else "t")]
               for did, (c, _, _, channel) in DELIVERIES.items()}
    await conn.copy_records_to_table("deliveries", records=[
        (did, camps[c], task_of[did], BASE, BASE, channel, 1, True, test, user)
        for did, (c, user, test, channel) in DELIVERIES.items()], columns=(
        "delivery_id", "campaign", "schedule_task", "sent_at", "created_at", "channel",
        "status", "has_html", "is_test", "user_id"))
    return camps, task_of


def _rows(setup: tuple[list[int], dict[int, int]], clicks: list[tuple]) -> list[tuple]:
    camps, task_of = setup
    out = []
    for did, day, hour, link, flags in clicks:
        campaign = camps[DELIVERIES[did][0]]
        out.append((_us(day, hour), did, dictionary_id(LINKS[link].encode()), 0, campaign,
                    task_of[did], 2, flags, 0))
    return out


async def _brute_force(conn: asyncpg.Connection, period: Period, campaign: str | None,
                       task: str | None, channel: str | None, bots: bool) -> list[dict]:
    rows = await conn.fetch(
        "SELECT u.url, count(*) AS clicks, count(DISTINCT d.user_id) AS click_users"
        " FROM events e JOIN deliveries d"
        " USING (delivery_id) JOIN campaigns c ON c.id = e.campaign JOIN urls u"
        " ON u.id = e.url_id WHERE e.kind = 2 AND NOT d.is_test AND e.ts >= $1 AND e.ts < $2"
        " AND ($3::text IS NULL OR c.campaign_id = $3) AND ($5::int IS NULL OR d.channel = $5)"
        " AND ($6::text IS NULL OR (SELECT schedule_task_id FROM schedule_tasks"
        "                           WHERE id = e.schedule_task) = $6)"
        " AND ($4 OR ((e.flags >> 1) & 7) IN (0, 2)) GROUP BY 1",
        period.start, period.end, campaign, bots, CHANNELS_BY_NAME.get(channel or ""), task)
    return sorted((dict(r) for r in rows),
                  key=lambda r: (-r["clicks"], -r["click_users"], r["url"]))


#: (campaign, schedule task, channel, time zone) of the rankings checked: the
#: project's, each campaign's and each channel's counters, raw clicks under a schedule
#: task filter or a campaign's channel filter, Asia/Kolkata's half-hour midnights and
#: New York's change to summer time (March 8th); in the counters' zone from counters,
#: in the others from raw clicks
SCOPES = [(None, None, None, "UTC"), ("c0", None, None, "UTC"), ("c1", None, None, "UTC"),
          (None, None, "email", "UTC"), (None, None, "push", "UTC"),
          ("c1", None, "push", "UTC"), (None, "t", None, "UTC"), (None, "u", None, "UTC"),
          ("c1", "t", "email", "Asia/Kolkata"), (None, None, None, "Asia/Kolkata"),
          ("c1", None, None, "Asia/Kolkata"), (None, None, "email", "Asia/Kolkata"),
          (None, None, None, "America/New_York"), ("c0", None, None, "America/New_York")]

#: the zones the counters are kept in, in turn (each refolds them)
COUNTER_ZONES = ["UTC", "Asia/Kolkata", "America/New_York"]


async def _check_every_period(conn: asyncpg.Connection) -> int:
    checked = 0
    for first in BOUNDS:
        for last in (b for b in BOUNDS if b >= first):
            for bots in (False, True):
                for campaign, task, channel, tz in SCOPES:
                    params = {"from": (BASE + timedelta(days=first)).date().isoformat(),
                              "to": (BASE + timedelta(days=last)).date().isoformat(),
                              "include_bots": str(bots).lower(), "links": "100",
                              "schedule_task_id": task, "channel": channel}
                    if campaign is None:
                        opts = options(params, tz)
                        report = await project_report.build(conn, opts)
                    else:
                        opts = options({**params, "campaign_id": campaign}, tz)
                        report = await campaign_report.build(conn, opts)
                    expected = await _brute_force(conn, opts.period, campaign, task, channel,
                                                  bots)
                    assert report["click_ranking"] == expected, (first, last, campaign, task,
                                                                 channel, tz, bots)
                    checked += 1
    return checked


def _extremes_first(rows: list[tuple]) -> list[list[tuple]]:
    by_pair: dict[tuple, list[tuple]] = {}
    for r in rows:
        by_pair.setdefault((r[2], DELIVERIES[r[1]][1]), []).append(r)
    ends = {r for clicks in by_pair.values() for r in (min(clicks), max(clicks))}
    return [sorted(ends), [r for r in rows if r not in ends]]


ORDERS = {
    # the later clicks land first: every pair's first click then moves earlier
    "newest first": lambda rows: [sorted(rows, key=lambda r: -r[0])[i::3] for i in range(3)],
    # each user's first and last click of a link first, then the ones between: the
    # stored gaps between them are split
    "gaps split": lambda rows: _extremes_first(rows),
    "in order": lambda rows: [sorted(rows)],
}


async def _out_of_order(dsn: str, order: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        setup = await _setup(conn)
        urls = {dictionary_id(u.encode()): u.encode() for u in LINKS}
        # each order lands into counters kept in another zone, then they are refolded
        # in the next one
        i = list(ORDERS).index(order)
        zone, next_zone = COUNTER_ZONES[i % 3], COUNTER_ZONES[(i + 1) % 3]
        await align_zone(conn, zone)
        for n, part in enumerate(ORDERS[order](_rows(setup, CLICKS))):
            await land(conn, journal="clicks", segment=n, offset=0, events=part, urls=urls,
                       user_agents={})
        # 55 periods (u1 clicks link A on days -40 and 33: days 2-3 lie between), both bot
        # settings, every scope
        assert await _check_every_period(conn) == 55 * 2 * len(SCOPES)
        tables = ("SELECT * FROM report_link_counts WHERE (clicks, firsts, human_firsts)"
                  " <> (0, 0, 0) ORDER BY scope, slot, url_id",
                  "SELECT * FROM report_link_returns WHERE n <> 0"
                  " ORDER BY scope, bots, \"to\", \"from\", url_id")
        kept = [await conn.fetch(q) for q in tables]
        assert kept[1], "the clicks make returns"
        await rollups.rebuild(conn)
        assert [await conn.fetch(q) for q in tables] == kept
        assert await align_zone(conn, next_zone)
        assert [await conn.fetch(q) for q in tables] != kept, "another zone's days"
        assert await _check_every_period(conn) == 55 * 2 * len(SCOPES)
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERS)
def test_click_users_for_every_period_equal_brute_force(database, order: str) -> None:
    asyncio.run(_out_of_order(database, order))


async def _two_shippers(dsn: str) -> None:
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        setup = await _setup(first)
        camps = setup[0]
        urls = {dictionary_id(u.encode()): u.encode() for u in LINKS}
        await first.execute("INSERT INTO urls (id, url) SELECT * FROM unnest($1::bigint[],"
                            " $2::text[])", list(urls), [u.decode() for u in urls.values()])
        # u1 clicks link A from campaign c0 and, earlier, from c1: one pair of the project
        # (a month apart, so the two batches share no counter row that would make the
        # second wait anyway)
        early, late = _rows(setup, [(1, 33, 9, 0, HUMAN)]), _rows(setup, [(2, 2, 9, 0, HUMAN)])
        for month in (BASE.date(), (BASE + timedelta(days=33)).date()):
            await first.execute("SELECT tracker_ensure_month_partition($1)", month)
        # one shipper holds the new pair uncommitted; another lands the earlier click
        tx = first.transaction()
        await tx.start()
        await first.copy_records_to_table(
            "events", records=[(ts_from_us(r[0]), *r[1:]) for r in early], columns=EVENT_COLUMNS)
        await effects.apply(first, early)
        other = asyncio.create_task(land(second, journal="b", segment=0, offset=0,
                                         events=late, urls={}, user_agents={}))
        await asyncio.sleep(0.5)
        assert not other.done(), "the second shipper must wait for the first one's pairs"
        await tx.commit()
        await other
        counts = await first.fetch("SELECT scope, slot, firsts FROM report_link_counts"
                                   " WHERE firsts <> 0")
        day2, day33 = BASE + timedelta(days=2), BASE + timedelta(days=33)
        march, april = BASE.replace(day=1), day33.replace(day=1)
        expected = [
            (-1, Span.DAY, day2), (-1, Span.MONTH, march),
            (0, Span.DAY, day2), (0, Span.MONTH, march),
            (camps[0], Span.DAY, day33), (camps[0], Span.MONTH, april),
            (camps[1], Span.DAY, day2), (camps[1], Span.MONTH, march)]
        slots = {(scope, await first.fetchval("SELECT tracker_link_slot($1, $2::date)", span,
                                              at.date()))
                 for scope, span, at in expected}
        assert len(slots) == len(expected)
        assert sorted((r["scope"], r["slot"], r["firsts"]) for r in counts) == sorted(
            (scope, slot, 1) for scope, slot in slots)
    finally:
        await first.close()
        await second.close()


def test_two_shippers_landing_one_pair_count_it_once(database) -> None:
    asyncio.run(_two_shippers(database))


def test_spans_cover_a_period_exactly_once_with_the_fewest_counters() -> None:
    for first, end in [(date(2024, 1, 31), date(2024, 3, 2)), (date(2025, 12, 1), date(2026, 1, 1)),
                       (date(2026, 3, 2), date(2026, 3, 3)), (date(2025, 1, 1), date(2026, 1, 1)),
                       (date(2025, 1, 2), date(2025, 12, 31))]:
        ranges = sorted(spans(first, end), key=lambda s: s[1])
        assert ranges[0][1] == first and ranges[-1][2] == end
        assert all(a[2] == b[1] for a, b in zip(ranges, ranges[1:], strict=False))
        for span, a, b in ranges:
            if span == Span.DAY:  # days only where no whole month fits
                assert not any(d.day == 1 and (d.replace(day=28) + timedelta(days=4)).replace(
                    day=1) <= b for d in (a + timedelta(days=i) for i in range((b - a).days)))
            else:
                assert span == Span.MONTH and a.day == b.day == 1
    assert spans(date(2025, 1, 1), date(2026, 1, 1)) == [
        (Span.MONTH, date(2025, 1, 1), date(2026, 1, 1))]
    assert sorted(spans(date(2024, 1, 31), date(2024, 3, 2)), key=lambda s: s[1]) == [
        (Span.DAY, date(2024, 1, 31), date(2024, 2, 1)),
        (Span.MONTH, date(2024, 2, 1), date(2024, 3, 1)),
        (Span.DAY, date(2024, 3, 1), date(2024, 3, 2))]


async def _answered_by(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        setup = await _setup(conn)
        urls = {dictionary_id(u.encode()): u.encode() for u in LINKS}
        await land(conn, journal="clicks", segment=0, offset=0, events=_rows(setup, CLICKS),
                   urls=urls, user_agents={})
        await align_zone(conn, "Asia/Tokyo")
        # a mark only the counters carry: a thousand clicks more on every counter row
        await conn.execute("UPDATE report_link_counts SET clicks = clicks + 1000")

        async def top_clicks(zone: str) -> int:
            opts = options({"from": "2026-01-01", "to": "2026-06-30", "include_bots": "true"},
                           zone)
            report = await project_report.build(conn, opts)
            return int(report["click_ranking"][0]["clicks"])

        assert await top_clicks("Asia/Tokyo") > 1000  # the counters, in their zone
        assert await top_clicks("UTC") < 1000  # raw clicks, in any other
    finally:
        await conn.close()


def test_counters_answer_in_their_zone_and_raw_clicks_in_others(database) -> None:
    asyncio.run(_answered_by(database))
