"""Bytes per recorded open or click after a realistic read of a real send (issue 17).

    python loadtests/bytes_per_event.py [--deliveries 30000]
    TRACKER_DATABASE_URL=... python loadtests/bytes_per_event.py --tables-only --events N

Starts the real service (``python -m tracker serve``) on a throw-away embedded
PostgreSQL (or TRACKER_DATABASE_URL, which it fills), mints the deliveries through
bulk ``POST /v1/messages`` (10,000 recipients a request, five links each), marks
them delivered through ``POST /v1/outcomes``, then reads the send as people do: two
thirds of the deliveries open (a third of those twice), a third of the openers
click one or two links. It waits until every answered hit has landed, VACUUMs, and
prints the database's growth per recorded open or click (deliveries and their
outcomes excluded: measured before the hits), then a table of every table and index
with its bytes per event and the report that reads it.

``--tables-only`` prints just that table for the database as it is, dividing by
``--events`` (or by the rows of ``events``): what ``bench_reports.py`` data costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent

#: who reads each table (prefix match, longest first): every byte must be earned by a
#: query that needs it
READERS: dict[str, str] = {
    "events": "the log (message_event_log); raw reads at partial-hour edges",
    "deliveries": "user figures with their firsts (sql/064), outcomes, click users (F4, F6, F12)",
    "report_event_hours": "count figures and day series (F4)",
    "report_outcome_hours": "outcome figures and error codes (F6, F9)",
    "report_click_hours": "(dropped by sql/065)",
    "report_click_users": "(dropped by sql/065)",
    "report_link_": "click ranking: project, one campaign or one channel, by local day (F5,"
                    " sql/079)",
    "report_agent_hours": "devices (F22)",
    "report_delivery_cells": "campaign list's people (sql/055)",
    "report_campaign_repeats": "campaign list's people, users reached twice (sql/055)",
    "outcome_history": "outcome history (superseded outcomes)",
    "urls": "link texts (dictionary)",
    "user_agents": "devices' client/OS/class (dictionary)",
    "journal_positions": "exactly-once shipping",
    "suppressions": "send-time suppression (F14)",
    "conversions": "conversions (F16)",
}

SIZES = """
SELECT coalesce(p.relname, c.relname) AS owner, c.relname, c.relkind::text AS relkind,
       pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
       + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init') AS bytes,
       coalesce(t.reltoastrelid, 0) AS toast
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
LEFT JOIN pg_inherits h ON h.inhrelid = t.oid
LEFT JOIN pg_class p ON p.oid = coalesce(h.inhparent, t.oid)
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'm')
"""


#: readers of the event log's indexes (partition index names, normalised)
INDEX_READERS: dict[str, str] = {
    "events_schedule_task": "F3 filter of message_event_log; click ranking under a"
                            " schedule task filter or a campaign's channel filter",
    "events_delivery_id_url_id": "conversions' attribution, scanner bursts, the click"
                                 " ranking's fold (sql/063)",
    "events_ts_idx": "BRIN: raw events at a period's partial-hour edges",
    "events_campaign_ts": "(dropped by sql/061)",
    "events_ts_url_id": "(dropped by sql/061)",
    "events_delivery_id_ts": "(replaced by sql/063)",
}


def reader(name: str, part: str = "heap") -> str:
    for prefix, text in INDEX_READERS.items():
        if part.startswith(prefix):
            return text
    for prefix in sorted(READERS, key=len, reverse=True):
        if name.startswith(prefix):
            return READERS[prefix]
    return "?"


async def table_sizes(conn: asyncpg.Connection) -> list[tuple[str, str, int]]:
    """(table, 'heap' or the index's name, bytes) for every table and index of the
    schema, event partitions summed under ``events`` (TOAST counted with its heap)."""
    out: dict[tuple[str, str], int] = {}
    for r in await conn.fetch(SIZES):
        part = "heap" if r["relkind"] != "i" else re.sub(r"^events_y\d{4}m\d{2}_", "events_",
                                                          r["relname"])
        size = r["bytes"]
        if r["relkind"] != "i" and r["toast"]:
            size += await conn.fetchval("SELECT pg_total_relation_size($1::oid)", r["toast"])
        out[(r["owner"], part)] = out.get((r["owner"], part), 0) + size
    return sorted(((t, p, b) for (t, p), b in out.items()), key=lambda x: (-x[2], x[0], x[1]))


def print_table(sizes: list[tuple[str, str, int]], events: int,
                before: dict[tuple[str, str], int] | None = None) -> None:
    """Markdown table of bytes per event; with ``before``, of the growth since then."""
    rows = [(t, p, b - (before or {}).get((t, p), 0)) for t, p, b in sizes]
    rows = [r for r in rows if r[2] > 0]
    rows.sort(key=lambda r: -r[2])
    print("| table | heap or index | MB | bytes an event | read by |")
    print("| --- | --- | --- | --- | --- |")
    for table, part, size in rows:
        print(f"| {table} | {part} | {size / 2**20:.1f} | {size / events:.1f}"
              f" | {reader(table, part)} |")
    total = sum(r[2] for r in rows)
    print(f"| total | | {total / 2**20:.1f} | {total / events:.1f} | |")


async def vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def snapshot(dsn: str) -> tuple[int, dict[tuple[str, str], int], list]:
    await vacuum(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        sizes = await table_sizes(conn)
        return (await conn.fetchval("SELECT pg_database_size(current_database())"),
                {(t, p): b for t, p, b in sizes}, sizes)
    finally:
        await conn.close()


HTML = ("<html><body><p>Spring sale</p>"
        + "".join(f'<a href="https://shop.example/item/{i}?src=mail">item {i}</a>'
                  for i in range(5))
        + "</body></html>")
LINK = re.compile(r'href="(https?://[^"]+/c/[^"]+)"')
PIXEL = re.compile(r'src="(https?://[^"]+/o/[^"]+)"')


async def send(api: httpx.AsyncClient, deliveries: int) -> list[tuple[int, str, list[str]]]:
    """Mint ``deliveries`` through bulk POST /v1/messages and mark them delivered;
    (delivery id, open URL, click URLs) for each."""
    await api.put("/v1/campaigns/size-spring", json={"name": "Size", "channel": "email"})
    minted: list[tuple[int, str, list[str]]] = []
    for first in range(0, deliveries, 10_000):
        recipients = [{"user_id": f"user-{i}"} for i in range(first, min(first + 10_000,
                                                                         deliveries))]
        r = await api.post("/v1/messages", json={
            "campaign_id": "size-spring", "schedule_task_id": "run1", "channel": "email",
            "html": HTML, "recipients": recipients}, timeout=600)
        r.raise_for_status()
        for m in r.json():
            minted.append((m["delivery_id"], PIXEL.search(m["html"])[1],
                           LINK.findall(m["html"])))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    outcomes = [{"delivery_id": d, "campaign_id": "size-spring", "schedule_task_id": "run1",
                 "user_id": f"user-{i}", "channel": "email", "status": "delivered",
                 "sent_at": now} for i, (d, _, _) in enumerate(minted)]
    r = await api.post("/v1/outcomes", content="\n".join(json.dumps(o) for o in outcomes),
                       headers={"Content-Type": "application/x-ndjson"}, timeout=600)
    r.raise_for_status()
    return minted


async def read_send(client: httpx.AsyncClient, minted: list, seed: int = 17) -> tuple[int, int]:
    """Two thirds open (a third of them twice), a third of openers click one or two
    links (the first more often); (opens, clicks) answered."""
    rng = random.Random(seed)
    hits: list[str] = []
    opens = clicks = 0
    for _, pixel, links in minted:
        if rng.random() >= 2 / 3:
            continue
        hits.append(pixel)
        opens += 1
        if rng.random() < 1 / 3:
            hits.append(pixel)
            opens += 1
        if rng.random() < 1 / 3:
            for _ in range(rng.choice((1, 1, 2))):
                hits.append(links[min(int(rng.expovariate(1.0)), len(links) - 1)])
                clicks += 1
    rng.shuffle(hits)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for h in hits:
        queue.put_nowait(h)
    headers = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
                             " (KHTML, like Gecko) Chrome/124.0 Safari/537.36"}

    async def worker() -> None:
        while not queue.empty():
            url = queue.get_nowait()
            r = await client.get(url, headers=headers)
            assert r.status_code in (200, 302), (url, r.status_code)

    await asyncio.gather(*(worker() for _ in range(16)))
    return opens, clicks


async def landed(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM events WHERE kind IN (1, 2)")
    finally:
        await conn.close()


async def realistic(dsn: str, deliveries: int, data_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from support import Service  # the tests' own way of running the real service

    service = Service(dsn, data_dir).start()
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60, headers={
                "Authorization": f"Bearer {service.api_key}"}) as api:
            started = time.perf_counter()
            minted = await send(api, deliveries)
            print(f"minted and delivered {len(minted):,} deliveries in "
                  f"{time.perf_counter() - started:.1f} s")
        db_before, before, _ = await snapshot(dsn)
        async with httpx.AsyncClient(timeout=60) as client:
            started = time.perf_counter()
            opens, clicks = await read_send(client, minted)
            print(f"answered {opens:,} opens and {clicks:,} clicks in "
                  f"{time.perf_counter() - started:.1f} s")
        deadline = time.monotonic() + 60
        while (n := await landed(dsn)) < opens + clicks:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {n} of {opens + clicks} events landed")
            await asyncio.sleep(0.2)
    finally:
        service.stop()
    db_after, _, sizes = await snapshot(dsn)
    events = opens + clicks
    print(f"database growth: {(db_after - db_before) / 2**20:.1f} MB for {events:,} opens and"
          f" clicks = {(db_after - db_before) / events:.0f} bytes per recorded open or click"
          " (pg_database_size, after VACUUM)")
    print()
    print_table(sizes, events, before)


async def tables_only(dsn: str, events: int | None) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        events = events or await conn.fetchval("SELECT count(*) FROM events")
        db = await conn.fetchval("SELECT pg_database_size(current_database())")
        print(f"whole database {db / 2**20:.1f} MB, {events:,} events:"
              f" {db / events:.0f} bytes an event, deliveries included")
        print()
        print_table(await table_sizes(conn), events)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=30_000)
    parser.add_argument("--tables-only", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    dsn = os.environ.get("TRACKER_DATABASE_URL")
    if args.tables_only:
        if not dsn:
            raise SystemExit("--tables-only measures TRACKER_DATABASE_URL; set it")
        asyncio.run(tables_only(dsn, args.events))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if dsn:
            asyncio.run(realistic(dsn, args.deliveries, Path(tmp) / "data"))
            return
        from tracker.embedded import pg_ctl_stop, start_embedded

        pgdata = Path(tmp) / "pgdata"
        dsn = start_embedded(pgdata)
        try:
            subprocess.run([sys.executable, "-m", "tracker", "migrate"], check=True,
                           env={**os.environ, "TRACKER_DATABASE_URL": dsn})
            asyncio.run(realistic(dsn, args.deliveries, Path(tmp) / "data"))
        finally:
            pg_ctl_stop(pgdata)


if __name__ == "__main__":
    main()
