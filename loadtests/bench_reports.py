"""Reports at scale: generate a realistic year straight into PostgreSQL with COPY,
then time the reports (issue 5).

    python loadtests/bench_reports.py [--deliveries 1000000] [--events 10000000]
                                      [--campaigns 100] [--queries 200]
                                      [--reuse] [--timezone UTC]

Uses TRACKER_DATABASE_URL (a database it may fill), or a throw-away embedded
PostgreSQL. Data: one year (2025), campaigns with 1-4 schedule tasks each, channel
mix 80/10/10 email/push/LINE, outcomes 90% delivered / 3% bounced / 4% soft /
2% failed / 1% suppressed with F9 error codes, events mostly within days of the
send (opens 65%, clicks 30% over Zipf-distributed links, unsubscribes,
resubscribes, conversions), 12% of opens and clicks by machines or bots.
Events are COPYed without the shipper, then the rollups are rebuilt once
(tracker.store.rollups.rebuild, the same SQL the migration backfills with).

Times, in process (asyncpg + report assembly, no HTTP): the campaign report for
random campaigns and periods (p50/p95), the project report for the whole year,
its CSV export, and the raw-event baseline the rollups replace, all in --timezone
(the deployment's TRACKER_TIMEZONE: the click counters are refolded by its days
first when they are kept in another zone, as ``tracker serve`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg
from benchdb import bench_database

from tracker.events import dictionary_id
from tracker.migrate import migrate
from tracker.reports import campaign as campaign_report
from tracker.reports import clicks
from tracker.reports import project as project_report
from tracker.reports.csv import report_csv
from tracker.reports.options import Options, options
from tracker.reports.scope import Scope
from tracker.store import rollups
from tracker.store.link_rollups import align_zone

YEAR = datetime(2025, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400_000_000
ERRORS = {
    2: [("Permanent:General", ["550 5.1.1 user unknown", "550 no such mailbox"]),
        ("Permanent:Suppressed", ["address on suppression list"])],
    3: [("Transient:MailboxFull", ["552 mailbox full", "452 over quota"]),
        ("Transient:General", ["451 try again later", "421 too many connections"])],
    4: [("messaging/registration-token-not-registered", ["Requested entity was not found."]),
        ("unknown", ["LINE send failed"]), ("RENDERING_FAILURE", ["template error"])],
}


def zipf_cumulative(n: int, s: float = 1.1) -> list[float]:
    weights = [1 / (k ** s) for k in range(1, n + 1)]
    total, acc, out = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


async def generate(conn: asyncpg.Connection, n_deliveries: int, n_events: int,
                   n_campaigns: int) -> None:
    rng = random.Random(5)
    await conn.execute("TRUNCATE campaigns, schedule_tasks, deliveries, events, urls,"
                       " report_event_hours, report_outcome_hours, report_agent_hours CASCADE")
    for m in range(14):
        await conn.execute("SELECT tracker_ensure_month_partition($1)",
                           date(2025 + m // 12, m % 12 + 1, 1))
    channels = []
    tasks: list[tuple[int, int, int, datetime]] = []  # task id, campaign id, channel, send
    for c in range(n_campaigns):
        channel = rng.choices(["email", "push", "line"], [8, 1, 1])[0]
        cid = await conn.fetchval(
            "INSERT INTO campaigns (campaign_id, name, channel, settings) VALUES"
            " ($1, $1, $2, $3::jsonb) RETURNING id", f"campaign-{c:03d}", channel,
            '{"conversion": {}}' if c % 3 == 0 else "{}")
        channels.append(channel)
        for t in range(rng.randint(1, 4)):
            send = YEAR + timedelta(days=rng.uniform(0, 360))
            tid = await conn.fetchval(
                "INSERT INTO schedule_tasks (campaign, schedule_task_id) VALUES ($1, $2)"
                " RETURNING id", cid, f"task-{c:03d}-{t}")
            tasks.append((tid, cid, {"email": 1, "push": 2, "line": 3}[channel], send))
    urls = [f"https://shop.example/item/{i}?utm_source=mail" for i in range(2000)]
    url_ids = [dictionary_id(u.encode()) for u in urls]
    await conn.copy_records_to_table("urls", records=list(zip(url_ids, urls, strict=True)),
                                     columns=("id", "url"))
    link_cdf = zipf_cumulative(len(urls))

    started = time.perf_counter()
    delivered: list[tuple[int, int, int, int]] = []  # id, campaign, task, sent_us
    batch: list[tuple] = []
    statuses = [1, 2, 3, 4, 5]
    status_weights = [90, 3, 4, 2, 1]
    # a send run's deliveries are written together, in send order, as a sender would
    tasks.sort(key=lambda t: t[3])
    for i in range(1, n_deliveries + 1):
        tid, cid, ch, send = tasks[(i - 1) * len(tasks) // n_deliveries]
        sent = send + timedelta(seconds=rng.uniform(0, 3600))
        status = rng.choices(statuses, status_weights)[0]
        code = message = None
        if status in ERRORS:
            code, messages = rng.choice(ERRORS[status])
            message = rng.choice(messages)
        batch.append((i, cid, tid, None if status == 5 else sent, sent, ch, status,
                      ch == 1 and rng.random() < 0.9, False, f"user-{rng.randrange(300_000)}",
                      code, message))
        if status == 1:
            delivered.append((i, cid, tid, (sent - EPOCH) // timedelta(microseconds=1)))
        if len(batch) == 50_000:
            await conn.copy_records_to_table("deliveries", records=batch, columns=(
                "delivery_id", "campaign", "schedule_task", "sent_at", "created_at", "channel",
                "status", "has_html", "is_test", "user_id", "error_code", "error_message"))
            batch = []
    if batch:
        await conn.copy_records_to_table("deliveries", records=batch, columns=(
            "delivery_id", "campaign", "schedule_task", "sent_at", "created_at", "channel",
            "status", "has_html", "is_test", "user_id", "error_code", "error_message"))
    print(f"deliveries: {n_deliveries:,} in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    kinds = [1, 2, 3, 4, 5]
    kind_cdf = list(itertools.accumulate([0.65, 0.30, 0.02, 0.005, 0.025]))
    end_us = (YEAR + timedelta(days=365) - EPOCH) // timedelta(microseconds=1)
    rows: list[tuple] = []
    rand, n_delivered = rng.random, len(delivered)
    for _ in range(n_events):
        did, cid, tid, sent_us = delivered[int(n_delivered * rand())]
        ts = sent_us + int(-math.log(1 - rand()) * US_PER_DAY)  # mean one day after send
        if ts >= end_us:
            ts = sent_us + int(rand() * (end_us - sent_us))
        kind = kinds[bisect.bisect(kind_cdf, rand() * kind_cdf[-1])]
        url_id = url_ids[bisect.bisect(link_cdf, rand() * link_cdf[-1])] if kind == 2 else 0
        verdict_roll = rand()
        flags = 0 if verdict_roll < 0.88 else (2 if kind == 1 else 6)  # machine open / scanner
        rows.append((ts, did, url_id, 0, cid, tid, kind, flags, 0))
    rows.sort()  # the shipper lands events in arrival order
    for first in range(0, len(rows), 200_000):
        chunk = [(EPOCH + timedelta(microseconds=r[0]), *r[1:])
                 for r in rows[first:first + 200_000]]
        await conn.copy_records_to_table("events", records=chunk, columns=(
            "ts", "delivery_id", "url_id", "ua_id", "campaign", "schedule_task", "kind",
            "flags", "link_position"))
    print(f"events: {n_events:,} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    await rollups.rebuild(conn)
    await conn.execute("VACUUM ANALYZE")
    hours = await conn.fetchval("SELECT count(*) FROM report_event_hours")
    print(f"rollups rebuilt ({hours:,} hour rows) and VACUUM ANALYZE in "
          f"{time.perf_counter() - started:.1f} s")


async def timed(coro) -> tuple[float, object]:
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(conn: asyncpg.Connection, queries: int, zone: str) -> None:
    """Every report in ``zone`` (TRACKER_TIMEZONE: the click counters' zone), and the
    project's year in another zone, whose click ranking reads raw clicks."""
    rng = random.Random(9)
    campaigns = [r[0] for r in await conn.fetch("SELECT campaign_id FROM campaigns")]
    times = []
    for _ in range(queries):
        first = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        length = rng.choice([1, 7, 30, 90, 365])
        last = min(first + timedelta(days=length - 1), date(2025, 12, 31))
        opts = options({"from": first.isoformat(), "to": last.isoformat(),
                        "campaign_id": rng.choice(campaigns)}, zone)
        times.append((await timed(campaign_report.build(conn, opts)))[0])
    print(f"campaign report, {queries} random campaigns and periods (1 day to a year): "
          f"p50 {pct(times, 0.5):.1f} ms, p95 {pct(times, 0.95):.1f} ms, "
          f"max {max(times) * 1000:.1f} ms")
    year = options({"from": "2025-01-01", "to": "2025-12-31"}, zone)
    other = "Asia/Tokyo" if zone == "UTC" else "UTC"
    for label, tz in ((zone, zone), (f"{other}, the ranking from raw clicks", other)):
        opts = options({"from": "2025-01-01", "to": "2025-12-31"}, tz)
        runs = [(await timed(project_report.build(conn, opts)))[0] for _ in range(5)]
        print(f"project report, whole year ({label}): median "
              f"{statistics.median(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms")
    scope, _, _ = await __import__("tracker.reports.options").reports.options.resolve(conn, year)
    from tracker.reports.scope import plan_each_time
    # as the reports run them: one read-only transaction planned for its arguments
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await plan_each_time(conn)
        await time_figures(conn, scope, year)
    await time_click_rankings(conn, zone)
    await time_campaign_list(conn)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        text = report_csv(await project_report.build(conn, year))
        runs.append(time.perf_counter() - started)
    print(f"CSV export of the year: median {statistics.median(runs) * 1000:.0f} ms "
          f"({len(text):,} bytes)")
    raw, _ = await timed(conn.fetch(
        "SELECT e.kind, count(*) FROM events e LEFT JOIN deliveries d USING (delivery_id)"
        " WHERE e.ts >= '2025-01-01' AND e.ts < '2026-01-01' AND NOT coalesce(d.is_test, false)"
        " GROUP BY 1"))
    print(f"baseline without rollups: year's event counts from raw events {raw * 1000:.0f} ms")


async def time_click_rankings(conn: asyncpg.Connection, zone: str) -> None:
    """The year's click ranking alone (F5) under each filter: the ones the link
    counters answer in their zone (project, campaign, channel) and the ones raw clicks
    answer (a schedule task, a campaign under a channel filter, the project in another
    zone). Median of five, as the reports run them."""
    from tracker.reports.options import resolve
    from tracker.reports.scope import plan_each_time
    busiest = await conn.fetchrow(
        "SELECT c.campaign_id, st.schedule_task_id FROM events e"
        " JOIN schedule_tasks st ON st.id = e.schedule_task JOIN campaigns c ON c.id = st.campaign"
        " WHERE e.kind = 2 GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1")
    other = "Asia/Kolkata" if zone != "Asia/Kolkata" else "UTC"
    for label, params, tz in (
            ("project", {}, zone), ("email", {"channel": "email"}, zone),
            ("busiest schedule task", {"schedule_task_id": busiest[1]}, zone),
            ("its campaign", {"campaign_id": busiest[0]}, zone),
            ("its campaign, email", {"campaign_id": busiest[0], "channel": "email"}, zone),
            (f"its campaign, {other} (raw clicks)", {"campaign_id": busiest[0]}, other)):
        opts = options({"from": "2025-01-01", "to": "2025-12-31", **params}, tz)
        scope, _, _ = await resolve(conn, opts)
        runs = []
        for _ in range(5):
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await plan_each_time(conn)
                runs.append((await timed(clicks.click_ranking(conn, scope, opts.period,
                                                              False, 100)))[0])
        print(f"click ranking of the year, {label}: median "
              f"{statistics.median(runs) * 1000:.0f} ms")


async def time_campaign_list(conn: asyncpg.Connection) -> None:
    """The campaign list's people per campaign (people.users_by_group "campaign", from
    the counters of sql/055) for 30 days, 90 days and the year, in Asia/Tokyo."""
    from tracker.reports import people
    from tracker.reports.scope import plan_each_time
    for label, first in (("30 days", "2025-12-02"), ("90 days", "2025-10-03"),
                         ("a year", "2025-01-01")):
        period = options({"from": first, "to": "2025-12-31"}, "Asia/Tokyo").period
        runs = []
        for _ in range(5):
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await plan_each_time(conn)
                runs.append((await timed(people.users_by_group(conn, Scope(), period,
                                                               ("campaign",))))[0])
        print(f"campaign list people, {label}: median {statistics.median(runs) * 1000:.0f} ms")


async def time_figures(conn: asyncpg.Connection, scope: Scope, year: Options) -> None:
    """Each figure of the project year's report, timed alone."""
    from tracker.reports import counts, devices, measurable
    for name, coro in (
            ("counts (total and days)", counts.counts_by_group(conn, scope, year.period,
                                                               ("total", "day"))),
            ("outcomes (total and days)", counts.outcomes_by_group(conn, scope, year.period,
                                                                   ("total", "day"))),
            ("click ranking", clicks.click_ranking(conn, scope, year.period, False, 100)),
            ("error codes", counts.error_codes(conn, scope, year.period)),
            ("devices", devices.devices(conn, scope, year.period, opens_ok=True,
                                        include_bots=False)),
            ("opens measurable", measurable.opens_measurable(conn, scope))):
        print(f"  project year, {name}: {(await timed(coro))[0] * 1000:.0f} ms")


async def run(dsn: str, args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if not args.reuse:
            started = time.perf_counter()
            await generate(conn, args.deliveries, args.events, args.campaigns)
            print(f"data set generated in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        if await align_zone(conn, args.timezone):
            print(f"click counters refolded by {args.timezone}'s days in "
                  f"{time.perf_counter() - started:.0f} s")
        await bench(conn, args.queries, args.timezone)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="time the data already loaded")
    parser.add_argument("--timezone", default="UTC",
                        help="TRACKER_TIMEZONE: the reports' and the click counters' zone")
    args = parser.parse_args()
    with bench_database() as (dsn, _):
        asyncio.run(run(dsn, args))


if __name__ == "__main__":
    main()
