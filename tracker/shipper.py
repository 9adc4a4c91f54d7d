"""Ships committed journal records to PostgreSQL with COPY, exactly once.

It ships this process's own journal at a steady cadence (every ``interval``, 25 ms:
an event is in the reports well within a second, docs/figures.md#f18, and at load a batch holds
hundreds of events instead of one group commit's handful; 25 rather than 50 ms keeps
each batch's Python, which holds the GIL the serving thread needs, shorter, at no
CPU cost measured) and drains the journals of dead processes it adopts. It keeps one
connection of its own for that (no pool acquire and reset per batch). While
PostgreSQL is down it retries with backoff; the edge never waits for it.

Exactly once rests on three rules: a batch's rows and its journal position commit in
one transaction (a failure anywhere rolls back both, and the in-memory position only
moves after the commit); a segment file is deleted only after the position past
its end has committed; and a dead process's directory is deleted (segments first,
its position row last) only once everything in it has landed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tracker import metrics
from tracker.events import RECORD_DEFINITION, RECORD_EVENT, Dictionary, decode_record
from tracker.journal import (
    Journal,
    adoptable_journals,
    read_frames,
    remove_journal_dir,
    segment_name,
    segment_numbers,
)
from tracker.store import events as event_store

log = logging.getLogger(__name__)

BATCH_EVENTS = 20_000
#: a batch holds at most what PostgreSQL lands in BATCH_SECONDS at the rate measured on
#: the previous batch (never fewer than MIN_BATCH_EVENTS): see Shipper.batch_events
BATCH_SECONDS = 0.2
MIN_BATCH_EVENTS = 20
#: what one ship_once found: nothing, something, or a batch cut short (ship again at once)
IDLE, SHIPPED, FULL = 0, 1, 2
READ_BYTES = 4 * 1024 * 1024
#: what a failed attempt to reach or write PostgreSQL can raise
DATABASE_FAILURES = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: errors PostgreSQL reports as it ends the session (a shutdown, a crash, a lost
#: connection): the connection is unusable even if it does not look closed yet
_CONNECTION_GONE = (asyncpg.exceptions.OperatorInterventionError,
                    asyncpg.exceptions.PostgresConnectionError)


@dataclass
class _Source:
    """One journal directory being shipped: ours (``live``) or an adopted one."""

    directory: Path
    live: Journal | None = None
    lock_fd: int | None = None
    position: tuple[int, int] | None = None  # (segment, offset) shipped so far
    known_urls: set[int] = field(default_factory=set)
    known_uas: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.directory.name


@dataclass
class _Batch:
    segment: int
    end: int
    start: int = 0
    events: list[tuple[Any, ...]] = field(default_factory=list)
    urls: dict[int, bytes] = field(default_factory=dict)
    user_agents: dict[int, bytes] = field(default_factory=dict)
    segment_done: bool = False
    full: bool = False  # cut short by a size limit: more records follow


class Shipper:
    def __init__(self, pool: asyncpg.Pool, journal: Journal, *, interval: float = 0.025,
                 adopt_every: float = 5.0) -> None:
        self.pool = pool
        self.journal = journal
        self.interval = interval
        self.adopt_every = adopt_every
        self.own = _Source(journal.directory, live=journal)
        self.adopted: list[_Source] = []
        self.landed = 0
        self.database_up = True
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_adopt = 0.0
        self._conn: asyncpg.Connection | None = None
        self.batch_events = BATCH_EVENTS

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shipper")

    async def stop(self, drain_timeout: float = 15.0) -> bool:
        """Stop the loop, then ship what is committed; True if nothing is left."""
        self._stop.set()
        if self._task is not None:
            await self._task
        try:
            deadline = time.monotonic() + drain_timeout
            while time.monotonic() < deadline:
                try:
                    left = max(0.1, deadline - time.monotonic())
                    if not await asyncio.wait_for(self.ship_once(), left):
                        return self.pending_sources() == 0
                except Exception as exc:  # noqa: BLE001 - whatever it was, the journal keeps it
                    metrics.DATABASE_ERRORS.inc()
                    log.warning("final drain failed (%s); the journal keeps the rest for the "
                                "next start", str(exc) or type(exc).__name__)
                    return False
            return False
        finally:
            await self._drop_connection(terminate=False)

    async def _connection(self) -> asyncpg.Connection:
        """The shipper's own connection, taken from the pool once and kept: a pool
        acquire and release per batch costs a RESET round trip each time."""
        if self._conn is not None and not self._reusable():
            await self._drop_connection(terminate=True)  # lost while idle
        if self._conn is None:
            self._conn = await self.pool.acquire(timeout=5)
        return self._conn

    def _reusable(self) -> bool:
        conn = self._conn
        try:
            return conn is not None and not conn.is_closed() and not conn.is_in_transaction()
        except asyncpg.InterfaceError:  # detached from the pool: lost
            return False

    async def _drop_connection(self, *, terminate: bool) -> None:
        """Give the connection back; ``terminate`` when its state is unknown (a lost
        server, a cancelled query), so that nobody reuses it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if terminate:
                conn.terminate()
            await asyncio.wait_for(self.pool.release(conn), 5)
        except (*DATABASE_FAILURES, asyncpg.exceptions.InternalClientError):
            # a lost connection is detached from the pool by asyncpg itself
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()

    def pending_sources(self) -> int:
        """Journals with events not yet in PostgreSQL (0 means all landed)."""
        own_left = self.own.position is None or self._read_batch(self.own) is not None
        return len(self.adopted) + (1 if own_left else 0)

    def backlog_bytes(self) -> int:
        """Journal bytes on disk not yet in PostgreSQL: ours and adopted ones."""
        total = self.journal.backlog_bytes
        for source in list(self.adopted):
            seg, offset = source.position or (0, 0)
            for number in segment_numbers(source.directory):
                if number < seg:
                    continue
                try:
                    size = (source.directory / segment_name(number)).stat().st_size
                except FileNotFoundError:
                    continue
                total += max(0, size - offset) if number == seg else size
        return total

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_adopt > self.adopt_every:
                    self._adopt()
                busy = await self.ship_once()
                if not self.database_up:
                    log.warning("database reachable again; shipping the journal backlog "
                                "(%d bytes)", self.backlog_bytes())
                self.database_up = True
                metrics.DATABASE_UP.set(1)
                backoff = 0.1
                if busy == FULL:
                    continue  # a backlog: ship the next batch at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any failure
                # a database failure, or anything unforeseen (asyncpg's protocol left
                # mid-operation by a server shutting down raised InternalClientError):
                # the journal keeps every event, so log it, back off and try again
                # rather than end the thread and ship nothing until a restart
                metrics.DATABASE_ERRORS.inc()
                if self.database_up:  # once per run of failures, not per retry
                    if isinstance(exc, DATABASE_FAILURES):
                        log.error("cannot ship events to PostgreSQL (%s); they wait in the"
                                  " journal", exc or type(exc).__name__)
                    else:
                        log.exception("unexpected error while shipping events; they wait"
                                      " in the journal, retrying")
                self.database_up = False
                metrics.DATABASE_UP.set(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 2.0)

    def _adopt(self) -> None:
        self._last_adopt = time.monotonic()
        taken = {s.directory for s in self.adopted}
        for directory, fd in adoptable_journals(self.journal.root, self.journal.directory):
            if directory in taken:
                os.close(fd)
                continue
            log.warning("adopting journal %s left by a stopped process", directory.name)
            self.adopted.append(_Source(directory, lock_fd=fd))
        metrics.JOURNALS_ADOPTED.set(len(self.adopted))

    async def ship_once(self) -> int:
        """Ship one batch from each source: IDLE (0) if none had anything, SHIPPED
        (true) if some had, FULL if some batch was cut short (more waits).

        After any failure every position is forgotten and re-read from PostgreSQL:
        a COMMIT whose answer was lost (the server died just after it) may or may
        not have happened, and only the database knows which. The connection is kept
        after an error PostgreSQL reported about a statement (its transaction was
        rolled back), and dropped after anything else, a shutdown or a lost
        connection reported by the server included."""
        busy = IDLE
        try:
            for source in [*self.adopted, self.own]:
                busy = max(busy, await self._ship_source(source))
        except BaseException as exc:
            for source in [*self.adopted, self.own]:
                source.position = None
            if not (isinstance(exc, asyncpg.PostgresError)
                    and not isinstance(exc, _CONNECTION_GONE) and self._reusable()):
                await self._drop_connection(terminate=True)
            raise
        return busy

    async def _ship_source(self, source: _Source) -> int:
        conn = await self._connection()
        if source.position is None:
            source.position = await event_store.shipped_position(conn, source.name)
            if source.live is not None:
                source.live.shipped_to(*source.position)
        batch = self._read_batch(source)
        if batch is None:
            if source.live is None:
                await self._finish_adopted(conn, source)
            return IDLE
        if batch.events or batch.urls or batch.user_agents:
            started = time.perf_counter()
            await event_store.land(
                conn, journal=source.name, segment=batch.segment, offset=batch.end,
                events=batch.events, urls=batch.urls, user_agents=batch.user_agents,
            )
            took = time.perf_counter() - started
            metrics.COPY_SECONDS.observe(took)
            self._pace(len(batch.events), took)
            metrics.BATCH_SIZE.observe(len(batch.events))
            metrics.EVENTS_LANDED.inc(len(batch.events))
            self.landed += len(batch.events)
        source.position = (batch.segment, batch.end)
        source.known_urls.update(batch.urls)
        source.known_uas.update(batch.user_agents)
        if batch.segment_done:
            (source.directory / segment_name(batch.segment)).unlink(missing_ok=True)
            source.position = (batch.segment + 1, 0)
        if source.live is not None:
            source.live.shipped_to(*source.position)
        return FULL if batch.full else SHIPPED

    def _pace(self, events: int, took: float) -> None:
        """Size the next batch to what PostgreSQL landed in BATCH_SECONDS just now.

        Why: progress is what the hot path watches (Journal.lagging holds hits back only
        while batches land, and the reports see nothing of a batch until it commits).
        At 20,000 events a batch and a PostgreSQL slowed to 500 events/s (a busy
        server, a slow trigger) one batch would take 40 s: the reports would fall that
        far behind and the shipper would look dead. Larger batches land faster per
        event, so from a small batch the size grows within a few batches."""
        if events and took > 0:
            fits = int(events / took * BATCH_SECONDS)
            self.batch_events = max(MIN_BATCH_EVENTS, min(BATCH_EVENTS, fits))

    def _read_batch(self, source: _Source) -> _Batch | None:
        """The next batch of records after the shipped position, or None when
        everything committed has been shipped."""
        assert source.position is not None, "_ship_source reads it first"
        seg, offset = source.position
        live = source.live
        numbers = segment_numbers(source.directory)
        pending = [n for n in numbers if n >= seg]
        committed = live.committed if live is not None else None
        if committed is not None:
            pending = [n for n in pending if n <= committed[0]]
        if not pending:
            return None
        number = pending[0]
        if number != seg:
            offset = 0
        path = source.directory / segment_name(number)
        limit: int | None = None
        if committed is not None and number == committed[0]:
            limit = committed[1]
        with open(path, "rb") as fh:
            fh.seek(offset)
            want = READ_BYTES if limit is None else min(READ_BYTES, limit - offset)
            data = fh.read(max(want, 0))
        batch = _Batch(segment=number, end=offset, start=offset)
        full = False
        for end, body in read_frames(data):
            rtype, fields = decode_record(body)
            if rtype == RECORD_EVENT:
                batch.events.append(fields)
            elif rtype == RECORD_DEFINITION:
                dictionary, ident, value = fields
                if dictionary == Dictionary.URL and ident not in source.known_urls:
                    batch.urls[ident] = value
                elif dictionary == Dictionary.USER_AGENT and ident not in source.known_uas:
                    batch.user_agents[ident] = value
            batch.end = offset + end
            if len(batch.events) >= self.batch_events:
                full = True
                break
        at_eof = len(data) < READ_BYTES
        if committed is not None:  # our own journal
            # our own segment is done once the journal has moved past it
            batch.segment_done = number < committed[0] and batch.end >= path.stat().st_size
        else:
            # an adopted segment is done at its end; what follows the last intact
            # frame there is a torn write that was never acknowledged
            batch.segment_done = at_eof and not full
        if batch.end == offset and not batch.segment_done:
            return None
        batch.full = full or not at_eof  # cut by batch_events or READ_BYTES
        return batch

    async def _finish_adopted(self, conn: asyncpg.Connection, source: _Source) -> None:
        """Everything of a dead process's journal has landed: remove it.

        Files go first, the position row last: a crash in between leaves a stale row
        (harmless), never a directory whose position was forgotten (reshipped)."""
        remove_journal_dir(source.directory)
        await event_store.forget_journal(conn, source.name)
        if source.lock_fd is not None:
            os.close(source.lock_fd)
        self.adopted.remove(source)
        metrics.JOURNALS_ADOPTED.set(len(self.adopted))
        log.warning("journal %s drained and removed", source.name)


class ShipperThread:
    """A Shipper on an event loop of its own, in a thread, with its own connection.

    Why: on the serving loop a batch (decode, COPY, the rollups' aggregation and
    round trips) held the loop for milliseconds at a time, every 50 ms, and every
    response waiting behind it took that as latency (p99 3-8x the bare app's). In a
    thread the batch's Python still needs the GIL, but the interpreter hands the GIL
    back to the serving thread every switch interval, and the batch's round trips
    to PostgreSQL no longer run on the loop that answers hits. On a machine with a
    core to spare, the shipper's waits also overlap the serving loop's work.

    The journal is the only thing the two threads share: ``committed`` (a tuple,
    replaced whole) and ``shipped_to`` (under the journal's accounting lock).
    Exactly-once is the Shipper's own, unchanged. The interface is the Shipper's as
    the app uses it: ``start``, ``stop`` (awaitable from the serving loop),
    ``database_up``, ``landed`` and ``backlog_bytes``.
    """

    def __init__(self, dsn: str, journal: Journal, **options: float) -> None:
        self.dsn = dsn
        self.journal = journal
        self.options = options
        self.shipper: Shipper | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._drained = False
        self._error: BaseException | None = None

    @property
    def database_up(self) -> bool:
        return self.shipper.database_up if self.shipper else False

    @property
    def landed(self) -> int:
        return self.shipper.landed if self.shipper else 0

    def backlog_bytes(self) -> int:
        return self.shipper.backlog_bytes() if self.shipper else self.journal.backlog_bytes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="shipper", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError("the shipper thread failed to start") from self._error

    async def stop(self, drain_timeout: float = 15.0) -> bool:
        """Stop shipping, drain what is committed; True if nothing is left."""
        if self._thread is None:
            return False
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(self._thread.join)
        return self._drained

    def _main(self) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency of the server
            loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._drained = loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start() or logged
            self._error = exc
            log.exception("the shipper thread ended with an error; the journal keeps "
                          "every event for the next start")
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> bool:
        # min_size=0: it starts, and keeps trying, with PostgreSQL down
        pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=1,
                                         max_inactive_connection_lifetime=60)
        self._stopping = asyncio.Event()
        self.shipper = Shipper(pool, self.journal, **self.options)
        self.shipper.start()
        self._ready.set()
        try:
            await self._stopping.wait()
            return await self.shipper.stop()
        finally:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (*DATABASE_FAILURES, asyncpg.exceptions.InternalClientError):
                pool.terminate()
