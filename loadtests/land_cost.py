"""CPU time of landing opens and clicks, the shipper's side and PostgreSQL's (issue 17).

    python loadtests/land_cost.py [--deliveries 20000] [--events 60000] [--batch 500]

Drives ``tracker.store.events.land`` directly, as the shipper does, with batches of
journal tuples: a send of ``--deliveries`` e-mail deliveries, read over a few hours
(opens, a third of them repeated, and clicks over five links, some repeated). Prints
the CPU time a landed event costs this process (Python: building rows, rollups'
aggregation, asyncpg encoding) and PostgreSQL's backend (its /proc stat), for opens
and for clicks apart. CPU time, not wall time: steadier on a shared machine.
Uses TRACKER_DATABASE_URL (which it fills) or a throw-away embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from pathlib import Path

import asyncpg
from benchdb import bench_database

from tracker.events import Kind, dictionary_id
from tracker.migrate import migrate
from tracker.store.events import land

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of one local PostgreSQL backend."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def measure(dsn: str, deliveries: int, events: int, batch: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        cid = await conn.fetchval(
            "INSERT INTO campaigns (campaign_id, channel) VALUES ($1, 'email')"
            " ON CONFLICT (campaign_id) DO UPDATE SET channel = 'email' RETURNING id",
            f"land-cost-{time.time_ns()}")
        task = await conn.fetchval("INSERT INTO schedule_tasks (campaign, schedule_task_id)"
                                   " VALUES ($1, 'run') RETURNING id", cid)
        first_id = await conn.fetchval("SELECT coalesce(max(delivery_id), 0) + 1 FROM deliveries")
        now_us = time.time_ns() // 1000
        sent = now_us - 6 * 3_600_000_000
        await conn.copy_records_to_table("deliveries", records=[
            (first_id + i, cid, task, 1, 1, True, False, f"user-{i}") for i in range(deliveries)],
            columns=("delivery_id", "campaign", "schedule_task", "channel", "status",
                     "has_html", "is_test", "user_id"))
        await conn.execute("UPDATE deliveries SET sent_at = now() - interval '6 hours'"
                           " WHERE campaign = $1", cid)
        links = [f"https://shop.example/item/{i}".encode() for i in range(5)]
        urls = {dictionary_id(u): u for u in links}
        url_ids = list(urls)
        ua = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36"
        ua_id = dictionary_id(ua)
        rng = random.Random(17)
        opens, clicks = [], []
        for _ in range(events):
            did = first_id + rng.randrange(deliveries)
            ts = sent + rng.randrange(6 * 3_600_000_000)
            if rng.random() < 0.7:
                opens.append((ts, did, 0, ua_id, cid, task, int(Kind.OPEN), 0, 0))
            else:
                pos = min(int(rng.expovariate(1.0)), 4)
                clicks.append((ts, did, url_ids[pos], ua_id, cid, task, int(Kind.CLICK), 0,
                               pos + 1))
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        offset = 0
        first = True
        for label, rows in (("open", sorted(opens)), ("click", sorted(clicks))):
            # as autovacuum would have by then: plans made on statistics, not on none
            await conn.execute("ANALYZE deliveries, events")
            cpu, db = time.process_time(), backend_cpu(pid)
            wall = time.perf_counter()
            for i in range(0, len(rows), batch):
                offset += 1
                await land(conn, journal="land-cost", segment=1, offset=offset,
                           events=rows[i:i + batch], urls=urls if first else {},
                           user_agents={ua_id: ua} if first else {})
                first = False
            n = len(rows)
            print(f"{label}: {n:,} landed in {batch}-event batches; a {label} costs "
                  f"{(time.process_time() - cpu) / n * 1e6:.1f} us here + "
                  f"{(backend_cpu(pid) - db) / n * 1e6:.1f} us in PostgreSQL "
                  f"({(time.perf_counter() - wall) / n * 1e6:.0f} us wall)")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with bench_database() as (dsn, _):
        asyncio.run(measure(dsn, args.deliveries, args.events, args.batch))


if __name__ == "__main__":
    main()
