"""Issue 8 durability, at the seams the chaos tests hit only by chance: a batch
failing inside its transaction, a lost COMMIT answer, torn tails, adoption races,
the bounds on memory and disk, and a shutdown while PostgreSQL is down.

The journal, recorder and shipper here are the real ones, writing real files and
landing in a real (fresh) PostgreSQL database; only the HTTP layer is skipped
where it adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from loadtests.minting import Minted, mint
from tests.chaos_support import landed, start_postgres, stop_postgres
from tests.support import SECRET_KEYS, Service, http_client, scalar, wait_for
from tracker.config import ConfigError, load_settings
from tracker.events import Kind
from tracker.journal import (
    Journal,
    frame,
    segment_name,
    segment_numbers,
)
from tracker.recorder import Recorder
from tracker.shipper import Shipper
from tracker.store import events as event_store
from tracker.tokens import Channel, TokenData

FAIL_EVENTS = """
CREATE FUNCTION durability_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'durability test: this batch is refused'; END $$;
CREATE TRIGGER durability_refuse BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION durability_refuse();
"""
HEAL_EVENTS = "DROP TRIGGER durability_refuse ON events; DROP FUNCTION durability_refuse();"


def execute(dsn: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def minted(dsn: str, campaign: str, count: int) -> Minted:
    return asyncio.run(mint(dsn, SECRET_KEYS.split(","), campaign, count, links=1,
                            unsubscribes=False))


async def record_opens(journal: Journal, m: Minted, ids: list[int] | None = None) -> list[bool]:
    """Journal one open per delivery, concurrently, as the edge would."""
    recorder = Recorder(journal)
    headers = [(b"user-agent", b"Mozilla/5.0 (durability test)")]
    return await asyncio.gather(*(
        recorder.record(headers, "GET", TokenData(d, m.campaign, m.schedule_task, Channel.EMAIL),
                        Kind.OPEN)
        for d in (ids if ids is not None else m.delivery_ids)))


@contextlib.asynccontextmanager
async def shipping(database: str, root: Path, *, started: bool = False,
                   **options: float) -> AsyncIterator[tuple[asyncpg.Pool, Journal, Shipper]]:
    """A real journal under ``root`` and a shipper to ``database`` (its loop running
    when ``started``); closed, stopped and removed afterwards."""
    pool = await asyncpg.create_pool(database, min_size=0, max_size=2)
    journal = Journal(root)
    journal.open()
    shipper = Shipper(pool, root, **options)
    if started:
        shipper.start()
    try:
        yield pool, journal, shipper
    finally:
        await journal.close()
        await shipper.stop()
        journal.release(remove=True)
        await pool.close()


async def drain(shipper: Shipper, journal: Journal | None = None) -> None:
    """Ship until nothing is left; then ``journal`` takes in the shipped word at once
    (its serving loop would within POLL_BUSY)."""
    while await shipper.ship_once():
        pass
    if journal is not None:
        journal.refresh_shipped()


def dead_journal(root: Path, m: Minted, *, torn_tail: bytes = b"") -> Path:
    """A journal left by a process that died: events on disk, lock released,
    optionally a torn frame (a write cut short) at the end of its last segment."""

    async def write() -> Path:
        journal = Journal(root)
        journal.open()
        assert all(await record_opens(journal, m))
        await journal.close()
        journal.release(remove=False)  # what the kernel does when the process dies
        return journal.directory

    directory = asyncio.run(write())
    if torn_tail:
        last = directory / segment_name(segment_numbers(directory)[-1])
        with open(last, "ab") as fh:
            fh.write(torn_tail)
    return directory


def test_a_dead_journal_with_a_torn_tail_is_adopted_drained_and_removed(
        database: str, tmp_path: Path) -> None:
    m = minted(database, "torn", 300)
    torn = frame(b"\x01" + b"x" * 60)[:37]  # a frame whose write was cut short
    directory = dead_journal(tmp_path, m, torn_tail=torn)

    async def adopt() -> None:
        pool = await asyncpg.create_pool(database, min_size=0, max_size=2)
        live = Journal(tmp_path)
        live.open()
        shipper = Shipper(pool, tmp_path)
        shipper.start()
        try:
            for _ in range(200):
                if not directory.exists():
                    break
                await asyncio.sleep(0.05)
        finally:
            await live.close()
            assert await shipper.stop()
            live.release(remove=True)
            await pool.close()

    asyncio.run(adopt())
    result = landed(database, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0
    assert not directory.exists(), "a drained journal must be removed"
    assert scalar(database, "SELECT count(*) FROM journal_positions WHERE journal = $1",
                  directory.name) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_batch_failing_inside_its_transaction_moves_no_position(
        database: str, tmp_path: Path) -> None:
    m = minted(database, "refused", 200)
    execute(database, FAIL_EVENTS)

    async def scenario() -> tuple[int, int]:
        async with shipping(database, tmp_path) as (pool, journal, shipper):
            assert all(await record_opens(journal, m))
            backlog = journal.backlog_bytes
            assert backlog > 0
            with pytest.raises(asyncpg.RaiseError, match="refused"):
                await shipper.ship_once()
            # nothing of the batch, nor its position, nor its dictionary rows
            assert await pool.fetchval("SELECT count(*) FROM events") == 0
            assert await pool.fetchval("SELECT count(*) FROM journal_positions") == 0
            assert await pool.fetchval("SELECT count(*) FROM user_agents") == 0
            journal.refresh_shipped()
            assert journal.backlog_bytes == backlog
            await pool.execute(HEAL_EVENTS)
            await drain(shipper, journal)
            return journal.backlog_bytes, await pool.fetchval(
                "SELECT \"offset\" FROM journal_positions WHERE journal = $1", journal.journal_id)

    backlog, offset = asyncio.run(scenario())
    assert backlog == 0 and offset > 0
    result = landed(database, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0


def test_after_a_failure_positions_come_from_the_database_not_from_memory(
        database: str, tmp_path: Path) -> None:
    """A COMMIT can succeed with its answer lost (the server died just after). The
    shipper's memory then holds a stale position; re-shipping from it would double
    the batch. Here memory is made stale by hand, then a failure happens: the
    shipper must re-read the committed position and ship only what is new."""
    m = minted(database, "stale", 200)
    first, second = m.delivery_ids[:100], m.delivery_ids[100:]

    async def scenario() -> None:
        async with shipping(database, tmp_path) as (pool, journal, shipper):
            assert all(await record_opens(journal, m, first))
            await drain(shipper)
            # memory behind the database, as after a lost answer
            shipper.sources[journal.directory].position = (1, 0)
            assert all(await record_opens(journal, m, second))
            await pool.execute(FAIL_EVENTS)
            with pytest.raises(asyncpg.RaiseError):
                await shipper.ship_once()
            await pool.execute(HEAL_EVENTS)
            await drain(shipper)

    asyncio.run(scenario())
    result = landed(database, m.campaign)
    assert result.duplicates == 0, f"{result.duplicates} events shipped twice"
    assert result.deliveries == set(m.delivery_ids)


def test_a_partition_created_in_a_rolled_back_batch_is_created_again(database: str) -> None:
    """The month cache must not remember a partition whose CREATE was rolled back."""
    month_us = int(datetime(2033, 7, 15, tzinfo=UTC).timestamp() * 1_000_000)
    m = minted(database, "future", 1)
    event = (month_us, m.delivery_ids[0], 0, 0, m.campaign, m.schedule_task, Kind.OPEN, 0, 0)

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(FAIL_EVENTS)
            with pytest.raises(asyncpg.RaiseError):
                await event_store.land(conn, journal="j", segment=1, offset=10, events=[event],
                                       urls={}, user_agents={})
            await conn.execute(HEAL_EVENTS)
            await event_store.land(conn, journal="j", segment=1, offset=10, events=[event],
                                   urls={}, user_agents={})
        finally:
            await conn.close()

    asyncio.run(scenario())
    assert scalar(database, "SELECT count(*) FROM events_y2033m07") == 1


def test_a_journal_being_created_is_never_adopted(tmp_path: Path) -> None:
    """A new journal is prepared under a dot-name and renamed once locked; a scan
    running meanwhile takes nothing of it, and a live journal is shipped as live
    (up to its committed word), never finished and removed as a stopped one."""

    async def scenario() -> None:
        staging = tmp_path / ".new-123-456-abcd"
        staging.mkdir()
        (staging / "LOCK").touch()
        fd = os.open(staging / "LOCK", os.O_RDWR)
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a process half-way through open()
        live = Journal(tmp_path)
        live.open()
        shipper = Shipper(None, tmp_path)  # type: ignore[arg-type]  # a scan needs no database
        try:
            shipper.scan()
            assert list(shipper.sources) == [live.directory]
            assert shipper.sources[live.directory].live
            assert staging.exists(), "a staging directory in use must be left alone"
            os.close(fd)  # that process died before publishing: its directory is litter
            shipper.scan()
            assert not staging.exists()
            assert shipper.sources[live.directory].live
        finally:
            for source in shipper.sources.values():
                source.close()
            await live.close()
            live.release(remove=True)

    asyncio.run(scenario())


def test_pending_bytes_stay_bounded_when_appends_outrun_the_disk(tmp_path: Path) -> None:
    record = frame(b"\x01" + b"p" * 1000)

    async def scenario() -> None:
        journal = Journal(tmp_path, max_pending_bytes=8 * len(record))
        journal.open()
        try:
            waits: list[Awaitable[bool]] = []
            peak = 0
            for _ in range(400):  # no await in between: far faster than any fsync
                waits.append(journal.append(record))
                peak = max(peak, journal.pending_bytes)
            assert peak <= journal.max_pending_bytes
            assert any(not isinstance(w, asyncio.Future) for w in waits), "never had to wait"
            assert all(await asyncio.gather(*waits))
            assert journal.pending_bytes == 0
            # nobody may wait: past the bound a hit is refused at once, not queued
            journal.pending_wait, journal.max_waiting = 0.0, 0
            refused = [journal.append(record) for _ in range(100)]
            results = await asyncio.gather(*refused)
            assert False in results and journal.stats.dropped > 0
        finally:
            await journal.close()
            journal.release(remove=True)

    asyncio.run(scenario())


def test_journal_max_bytes_setting(tmp_path: Path) -> None:
    env = {"TRACKER_DATA_DIR": str(tmp_path), "TRACKER_SECRET_KEYS": SECRET_KEYS}
    assert load_settings(env).journal_max_bytes is None
    assert load_settings({**env, "TRACKER_JOURNAL_MAX_BYTES": "512M"}).journal_max_bytes \
        == 512 * 1024 * 1024
    assert load_settings({**env, "TRACKER_JOURNAL_MAX_BYTES": "4096"}).journal_max_bytes == 4096
    for bad in ("lots", "-5", "0", "12X"):
        with pytest.raises(ConfigError, match="TRACKER_JOURNAL_MAX_BYTES"):
            load_settings({**env, "TRACKER_JOURNAL_MAX_BYTES": bad})


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("TRACKER_TEST_DATABASE_URL")),
                    reason="stops PostgreSQL: only the suite's embedded server may be stopped")
def test_sigterm_while_postgres_is_down_keeps_the_journal_for_the_next_start(
        start_service, pg_data_dir: Path) -> None:
    service: Service = start_service()
    m = minted(service.dsn, "shutdown", 60)
    paths = m.opens

    def hit(some: list[str]) -> None:
        with service.client() as http:
            for path in some:
                assert http.get(path).status_code == 200

    hit(paths[:30])
    wait_for(lambda: len(landed(service.dsn, m.campaign).deliveries) == 30)
    try:
        stop_postgres(pg_data_dir)
        hit(paths[30:])  # acknowledged while the database is away
        code = service.stop(signal.SIGTERM, timeout=40)
        assert code is not None
        assert "stopped with events still in the journal" in service.log()
        left = [d for d in (service.data_dir / "journal").iterdir() if d.is_dir()]
        assert len(left) == 1 and segment_numbers(left[0])
    finally:
        start_postgres(pg_data_dir)
    service.start()
    wait_for(lambda: landed(service.dsn, m.campaign).rows >= 60, 20)
    result = landed(service.dsn, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0
    with http_client(base_url=service.base_url, timeout=5) as http:
        wait_for(lambda: http.get("/healthz").json()["journal_backlog_bytes"] == 0, 10)


def test_an_unforeseen_error_does_not_end_the_shipper(database: str, tmp_path: Path,
                                                     monkeypatch) -> None:
    """CI once saw asyncpg raise InternalClientError ("another operation is in
    progress") on a connection a shutting-down server had left mid-operation; it is
    no database error, so it ended the shipper's loop and nothing shipped until a
    restart. Any failure now backs off and retries, on a new connection."""
    m = minted(database, "unforeseen", 50)
    real_land = event_store.land
    failures = []

    async def land_failing_once(conn, **batch):
        if not failures:
            failures.append(conn)
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress")
        return await real_land(conn, **batch)

    monkeypatch.setattr(event_store, "land", land_failing_once)

    async def scenario() -> None:
        async with shipping(database, tmp_path, started=True, interval=0.01) as (
                _, journal, shipper):
            assert all(await record_opens(journal, m))
            for _ in range(300):
                if shipper.landed == len(m.delivery_ids):
                    break
                await asyncio.sleep(0.02)
            assert failures, "the failure was never raised: the test proves nothing"
            assert shipper.landed == len(m.delivery_ids), "the shipper stopped after it"
            assert shipper.database_up
            assert shipper._conn is not failures[0], "the connection it failed on is reused"

    asyncio.run(scenario())
    result = landed(database, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0


def test_tracker_ship_by_hand_lands_what_a_stopped_service_left(database: str,
                                                                tmp_path: Path) -> None:
    """``tracker ship``: the shipper process run by hand (a service normally starts it
    itself) lands every journal under the data directory, removes them and exits."""
    m = minted(database, "by-hand", 50)
    service = Service(database, tmp_path / "data")  # its configuration; never started
    directory = dead_journal(service.data_dir / "journal", m)
    done = service.cli("ship")
    assert done.returncode == 0, done.stderr
    result = landed(database, m.campaign)
    assert result.deliveries == set(m.delivery_ids) and result.duplicates == 0
    assert not directory.exists()
