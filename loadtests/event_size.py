"""Bytes per event on disk: land N events the way the shipper does, then measure.

    python loadtests/event_size.py [--events 1000000]

Uses TRACKER_DATABASE_URL, or a throw-away embedded PostgreSQL. Reports heap,
indexes and total per event, summed over the event partitions (VACUUM'd first so
the visibility map and free space map are counted as in steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import asyncpg

from tracker.events import Kind, dictionary_id
from tracker.migrate import migrate
from tracker.store.events import land


async def measure(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("TRUNCATE events")
        rng = random.Random(1)
        urls = {dictionary_id(f"https://shop.example/item/{i}".encode()):
                f"https://shop.example/item/{i}".encode() for i in range(500)}
        url_ids = list(urls)
        uas = {dictionary_id(f"Mozilla/5.0 agent {i}".encode()):
               f"Mozilla/5.0 agent {i}".encode() for i in range(200)}
        ua_ids = list(uas)
        now_us = time.time_ns() // 1000
        batch = 50_000
        started = time.perf_counter()
        for first in range(0, count, batch):
            events = []
            for i in range(first, min(first + batch, count)):
                click = rng.random() < 0.3
                events.append((
                    now_us - rng.randrange(0, 20 * 86_400_000_000),
                    1_000_000 + i // 4, rng.choice(url_ids) if click else 0, rng.choice(ua_ids),
                    rng.randrange(1, 100), rng.randrange(1, 1000),
                    Kind.CLICK if click else Kind.OPEN, 0, rng.randrange(0, 50) if click else 0,
                ))
            await land(conn, journal="event-size", segment=1, offset=first, events=events,
                       urls=urls if first == 0 else {}, user_agents=uas if first == 0 else {})
        elapsed = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE events")
        rows = await conn.fetch(
            "SELECT sum(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')"
            " + pg_relation_size(c.oid, 'vm')) AS heap, sum(pg_indexes_size(c.oid)) AS idx"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass")
        heap, idx = rows[0]["heap"], rows[0]["idx"]
        rate = count / elapsed
        print(f"events landed: {count:,} in {elapsed:.1f} s ({rate:,.0f} rows/s via land())")
        print(f"heap:    {heap / count:6.1f} bytes/event ({heap / 2**20:,.1f} MiB)")
        print(f"indexes: {idx / count:6.1f} bytes/event ({idx / 2**20:,.1f} MiB)")
        print(f"total:   {(heap + idx) / count:6.1f} bytes/event")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    dsn = os.environ.get("TRACKER_DATABASE_URL")
    if dsn:
        asyncio.run(measure(dsn, args.events))
        return
    from tracker.embedded import pg_ctl_stop, start_embedded

    with tempfile.TemporaryDirectory() as tmp:
        pgdata = Path(tmp) / "pgdata"
        dsn = start_embedded(pgdata)
        try:
            asyncio.run(measure(dsn, args.events))
        finally:
            pg_ctl_stop(pgdata)


if __name__ == "__main__":
    main()
