"""F18 under load: when PostgreSQL takes events more slowly than hits arrive, hits wait
for the shipper instead of the reports falling behind, and every hit still lands once.

PostgreSQL is slowed for real by a trigger that sleeps 20 ms per landed event (about
50 events a second), and clients send opens at RATE a second (three times that; even
a loaded machine's test client keeps up with it) for SENDING seconds: enough to get
0.5 s ahead of such a database whatever the machine, and few enough hits to land
them all within seconds."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.support import Service, event_count, mint_url, query, wait_for
from tests.test_metrics import samples

pytestmark = pytest.mark.slow  # load: hits at a fixed rate against a slowed database

RATE = 150
SENDING = 1.5
CLIENTS = 32


async def _open_paced(url: str) -> list[int]:
    """Open ``url`` RATE times a second for SENDING seconds (hit i is due at i / RATE;
    a held-back hit delays its client, not the schedule); every answer's status."""
    statuses: list[int] = []
    due = iter(range(int(RATE * SENDING)))
    start = time.monotonic()

    async def client(http: httpx.AsyncClient) -> None:
        for i in due:
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            statuses.append((await http.get(url)).status_code)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return statuses


def test_hits_wait_for_a_slow_database_and_all_land(start_service) -> None:
    service: Service = start_service()
    # the shipper process is up and landing (it starts beside the service, a second or
    # more on a busy machine): only a shipper seen landing holds hits back
    with service.client() as http:
        assert http.get(mint_url(service, "open", user="warm-up")).status_code == 200
    wait_for(lambda: event_count(service.dsn) == 1, timeout=30)
    url = mint_url(service, "open")
    query(service.dsn, """
        CREATE FUNCTION slow_landing() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$""")
    query(service.dsn, "CREATE TRIGGER slow_landing AFTER INSERT ON events"
                       " FOR EACH ROW EXECUTE FUNCTION slow_landing()")
    before = samples(service).get("tracker_hits_held_back_total", 0)
    statuses = asyncio.run(_open_paced(url))
    assert statuses == [200] * int(RATE * SENDING)
    held_back = samples(service)["tracker_hits_held_back_total"] - before
    assert held_back > 0, (f"{len(statuses)} hits in {SENDING} s to a database landing 50"
                           " a second lag it by more than 0.5 s: hits must have waited")
    wait_for(lambda: event_count(service.dsn) == len(statuses) + 1, timeout=60)
    assert event_count(service.dsn) == len(statuses) + 1


async def _refused_batches(dsn: str, journal_dir) -> None:
    from tracker.events import encode_event
    from tracker.journal import Journal, frame
    from tracker.shipper import Shipper

    conn = await asyncpg.connect(dsn)
    name = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    await conn.close()
    journal = Journal(journal_dir)
    journal.open()
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=1)
    shipper = Shipper(pool, journal_dir)  # on this loop: its words are read as across processes
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
        journal.release(remove=True)
        await pool.close()


def test_a_database_refusing_every_batch_holds_nothing_back(database, tmp_path) -> None:
    """PostgreSQL reachable but refusing writes (read-only after a failover, disk full):
    the shipper re-reads its position after each failure, which is no progress, so
    hits are not held back; the journal absorbs it as it does an outage."""
    asyncio.run(_refused_batches(database, tmp_path / "journal"))
