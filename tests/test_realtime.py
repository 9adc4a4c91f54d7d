"""F18 under load: when PostgreSQL takes events more slowly than hits arrive, hits wait
for the shipper instead of the reports falling behind, and every hit still lands once.

PostgreSQL is slowed for real by a trigger that sleeps 10 ms per landed event (about
100 events a second, well below what even a loaded machine's test client sends), and
64 clients send opens as fast as the service answers."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.support import Service, event_count, mint_url, query, wait_for
from tests.test_metrics import samples

HITS = 600
CLIENTS = 64


async def _open_many(url: str, hits: int) -> list[int]:
    statuses: list[int] = []
    queue = list(range(hits))

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            statuses.append((await http.get(url)).status_code)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return statuses


def test_hits_wait_for_a_slow_database_and_all_land(start_service) -> None:
    service: Service = start_service()
    url = mint_url(service, "open")
    query(service.dsn, """
        CREATE FUNCTION slow_landing() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(0.01); RETURN NULL; END $$""")
    query(service.dsn, "CREATE TRIGGER slow_landing AFTER INSERT ON events"
                       " FOR EACH ROW EXECUTE FUNCTION slow_landing()")
    before = samples(service).get("tracker_hits_held_back_total", 0)
    statuses = asyncio.run(_open_many(url, HITS))
    assert statuses == [200] * HITS
    held_back = samples(service)["tracker_hits_held_back_total"] - before
    assert held_back > 0, "the database lagged by more than 0.5 s, so hits must have waited"
    wait_for(lambda: event_count(service.dsn) == HITS, timeout=60)
    assert event_count(service.dsn) == HITS


async def _refused_batches(dsn: str, journal_dir) -> None:
    from tracker.events import encode_event
    from tracker.journal import Journal, frame
    from tracker.shipper import ShipperThread

    conn = await asyncpg.connect(dsn)
    name = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    await conn.close()
    journal = Journal(journal_dir)
    journal.open()
    shipper = ShipperThread(dsn, journal)
    shipper.start()
    try:
        waits = []
        finish = time.monotonic() + 4
        while time.monotonic() < finish:
            started = time.monotonic()
            if journal.lagging():
                await journal.wait_for_shipper()
            waits.append(time.monotonic() - started)
            await journal.append(frame(encode_event(time.time_ns() // 1000, 1, 0, 0, 1, 1,
                                                    1, 0, 0)))
            await asyncio.sleep(0.02)
        assert shipper.landed == 0, "a read-only database takes nothing"
        assert max(waits) < 0.1, "hits held back although nothing lands"
        assert len(journal._commit_marks) <= 4 / 0.05 + 1, "commit marks are merged"
    finally:
        await shipper.stop(drain_timeout=1)
        await journal.close()


def test_a_database_refusing_every_batch_holds_nothing_back(database, tmp_path) -> None:
    """PostgreSQL reachable but refusing writes (read-only after a failover, disk full):
    the shipper re-reads its position after each failure, which is no progress, so
    hits are not held back; the journal absorbs it as it does an outage."""
    asyncio.run(_refused_batches(database, tmp_path / "journal"))
