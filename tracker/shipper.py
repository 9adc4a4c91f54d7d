"""Ships committed journal records to PostgreSQL with COPY, exactly once, in a process
of its own: ``tracker ship``, started by the serving processes (tracker/shipping.py).

Why a process: a batch's Python (decoding records, the rollups' aggregation, the
round trips) needs the GIL; in a thread of the serving process it held the GIL that
answers hits. In its own process it holds none of theirs, and with ``--workers N``
one shipper lands every worker's journal (nothing is folded twice, and batches are
N times larger).

One shipper runs per journal root (``<data>/journal``), proven by the flock of the
root's ``SHIPPER`` file, where it also publishes its status and counters
(tracker/shipper_status.py). It ships every journal under the root, at a steady
cadence (every ``interval``, 25 ms: an event is in the reports well within a
second, docs/figures.md#f18, and at load a batch holds hundreds of events instead
of one group commit's handful):

* a *live* journal (its ``LOCK`` held by its serving process) up to the committed
  word its writer publishes in ``POSITION`` after each group commit, never a frame
  past it (never one not yet acknowledged); after each batch the shipper publishes
  its shipped word there, from which the serving process counts its backlog;
* a *stopped* one (its ``LOCK`` free: the process ended, cleanly or killed) to the
  last intact frame, after which its directory is removed.

It keeps one connection of its own. While PostgreSQL is down it retries with
backoff; the edge never waits for it. It exits once no journal under the root is
live and everything is shipped (or, with PostgreSQL down, after EXIT_GRACE).

Exactly once rests on three rules: a batch's rows and its journal position commit in
one transaction (a failure anywhere rolls back both, and the in-memory position only
moves after the commit); a segment file is deleted only after the position past
its end has committed; and a stopped process's directory is deleted (segments
first, its position row last) only once everything in it has landed. A shipper
killed at any point leaves positions that PostgreSQL alone holds, and the next one
starts from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tracker.events import RECORD_DEFINITION, RECORD_EVENT, Dictionary, decode_record
from tracker.journal import (
    LOCK_NAME,
    POSITION_NAME,
    PositionWords,
    read_frames,
    remove_journal_dir,
    remove_stale_staging,
    segment_name,
    segment_numbers,
)
from tracker.shipper_status import ShipperStatus, read_status, write_status
from tracker.store import events as event_store

log = logging.getLogger("tracker.shipper")  # the same name when run as __main__

BATCH_EVENTS = 20_000
#: a batch holds at most what PostgreSQL lands in BATCH_SECONDS at the rate measured on
#: the previous batch (never fewer than MIN_BATCH_EVENTS): see Shipper.batch_events
BATCH_SECONDS = 0.2
MIN_BATCH_EVENTS = 20
#: what one ship_once found: nothing, something, or a batch cut short (ship again at once)
IDLE, SHIPPED, FULL = 0, 1, 2
READ_BYTES = 4 * 1024 * 1024
#: with no live journal left and PostgreSQL down, the shipper gives up after this
#: many seconds (the journals wait for the next start); after SIGTERM it stops
#: after STOP_GRACE seconds whatever is left
EXIT_GRACE = 3.0
STOP_GRACE = 30.0
#: the status file is rewritten at most this often while nothing changes
STATUS_EVERY = 0.5
#: what a failed attempt to reach or write PostgreSQL can raise
DATABASE_FAILURES = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: errors PostgreSQL reports as it ends the session (a shutdown, a crash, a lost
#: connection): the connection is unusable even if it does not look closed yet
_CONNECTION_GONE = (asyncpg.exceptions.OperatorInterventionError,
                    asyncpg.exceptions.PostgresConnectionError)


@dataclass
class _Source:
    """One journal directory being shipped: live (its writer runs) or stopped, in
    which case ``lock_fd`` holds its LOCK for us."""

    directory: Path
    words: PositionWords | None = None
    lock_fd: int | None = None
    probe_fd: int | None = None  # the LOCK opened, to try it while live
    position: tuple[int, int] | None = None  # (segment, offset) shipped so far
    known_urls: set[int] = field(default_factory=set)
    known_uas: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def live(self) -> bool:
        return self.lock_fd is None

    def committed(self) -> tuple[int, int] | None:
        """How far a live journal is durable (None: stopped, ship every intact frame)."""
        if not self.live:
            return None
        assert self.words is not None, "a live source has its words"
        return self.words.read(PositionWords.COMMITTED)

    def try_lock(self) -> bool:
        """True once the writer has let go of the journal (now ours to finish)."""
        if self.probe_fd is None:
            return False
        try:
            fcntl.flock(self.probe_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.lock_fd, self.probe_fd = self.probe_fd, None
        return True

    def close(self) -> None:
        for fd in (self.lock_fd, self.probe_fd):
            if fd is not None:
                os.close(fd)
        self.lock_fd = self.probe_fd = None
        if self.words is not None:
            self.words.close()
            self.words = None


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
    """Ships every journal under ``root``. ``ship_once`` is one round; ``start`` and
    ``stop`` run rounds on the current loop (what ``run_process`` and tests use)."""

    def __init__(self, pool: asyncpg.Pool, root: Path, *, interval: float = 0.025,
                 scan_every: float = 0.2, status_fd: int | None = None) -> None:
        self.pool = pool
        self.root = root
        self.interval = interval
        self.scan_every = scan_every
        self.status_fd = status_fd
        self.sources: dict[Path, _Source] = {}
        self.status = ShipperStatus(pid=os.getpid())
        previous = read_status(status_fd) if status_fd is not None else None
        if previous is not None:  # counters carry on from the last shipper's
            self.status = previous
            self.status.pid = os.getpid()
            self.status.database_up = True  # until this shipper finds otherwise
        self._status_written = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_scan = 0.0
        self._conn: asyncpg.Connection | None = None
        self.batch_events = BATCH_EVENTS

    @property
    def landed(self) -> int:
        return self.status.landed

    @property
    def database_up(self) -> bool:
        return self.status.database_up

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
                    self.status.database_errors += 1
                    log.warning("final drain failed (%s); the journal keeps the rest for the "
                                "next start", str(exc) or type(exc).__name__)
                    return False
            return False
        finally:
            await self._drop_connection(terminate=False)
            for source in self.sources.values():
                source.close()
            self.sources.clear()

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
        left = 0
        for source in self.sources.values():
            if not source.live or source.position is None or self._read_batch(source):
                left += 1
        return left

    def live_sources(self) -> int:
        return sum(1 for source in self.sources.values() if source.live)

    def backlog_bytes(self) -> int:
        """Bytes of stopped journals not yet in PostgreSQL (live journals count their
        own, in their serving process)."""
        total = 0
        for source in list(self.sources.values()):
            if source.live:
                continue
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

    def publish_status(self, *, force: bool = False) -> None:
        """Rewrite the SHIPPER file (after a batch, a change, or every STATUS_EVERY)."""
        if self.status_fd is None:
            return
        now = time.monotonic()
        if not force and now - self._status_written < STATUS_EVERY:
            return
        self._status_written = now
        self.status.adopted = sum(1 for s in self.sources.values() if not s.live)
        self.status.adopted_backlog = self.backlog_bytes() if self.status.adopted else 0
        with contextlib.suppress(OSError):
            write_status(self.status_fd, self.status)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                busy = await self.ship_once()
                if not self.status.database_up:
                    log.warning("database reachable again; shipping the journal backlog "
                                "(%d bytes)", self.backlog_bytes())
                    self.status.database_up = True
                    self.publish_status(force=True)
                else:
                    self.publish_status(force=busy != IDLE)
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
                # rather than end the loop and ship nothing until a restart
                self.status.database_errors += 1
                if self.status.database_up:  # once per run of failures, not per retry
                    if isinstance(exc, DATABASE_FAILURES):
                        log.error("cannot ship events to PostgreSQL (%s); they wait in the"
                                  " journal", exc or type(exc).__name__)
                    else:
                        log.exception("unexpected error while shipping events; they wait"
                                      " in the journal, retrying")
                self.status.database_up = False
                self.publish_status(force=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 2.0)

    def scan(self) -> None:
        """Take in every journal directory under the root not yet known."""
        self._last_scan = time.monotonic()
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.iterdir()):
            if directory in self.sources or not directory.is_dir():
                continue
            if directory.name.startswith("."):
                remove_stale_staging(directory)
                continue
            source = _open_source(directory)
            if source is not None:
                if not source.live:
                    log.warning("adopting journal %s left by a stopped process",
                                directory.name)
                self.sources[directory] = source

    async def ship_once(self) -> int:
        """Ship one batch from each journal: IDLE (0) if none had anything, SHIPPED
        (true) if some had, FULL if some batch was cut short (more waits).

        After any failure every position is forgotten and re-read from PostgreSQL:
        a COMMIT whose answer was lost (the server died just after it) may or may
        not have happened, and only the database knows which. The connection is kept
        after an error PostgreSQL reported about a statement (its transaction was
        rolled back), and dropped after anything else, a shutdown or a lost
        connection reported by the server included."""
        if time.monotonic() - self._last_scan >= self.scan_every:
            self.scan()
        busy = IDLE
        try:
            for source in list(self.sources.values()):
                busy = max(busy, await self._ship_source(source))
        except BaseException as exc:
            for source in self.sources.values():
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
            self._publish_shipped(source)
        batch = self._read_batch(source)
        if batch is None:
            if not source.live:
                await self._finish(conn, source)
            elif source.try_lock():
                # its writer stopped (cleanly or not): finish it to its last intact
                # frame, from the next round on
                log.info("journal %s stopped; shipping the rest of it", source.name)
                return SHIPPED
            return IDLE
        if batch.events or batch.urls or batch.user_agents:
            started = time.perf_counter()
            await event_store.land(
                conn, journal=source.name, segment=batch.segment, offset=batch.end,
                events=batch.events, urls=batch.urls, user_agents=batch.user_agents,
            )
            took = time.perf_counter() - started
            self._pace(len(batch.events), took)
            self.status.observe_batch(len(batch.events), took)
        source.position = (batch.segment, batch.end)
        source.known_urls.update(batch.urls)
        source.known_uas.update(batch.user_agents)
        if batch.segment_done:
            (source.directory / segment_name(batch.segment)).unlink(missing_ok=True)
            source.position = (batch.segment + 1, 0)
        self._publish_shipped(source)
        return FULL if batch.full else SHIPPED

    @staticmethod
    def _publish_shipped(source: _Source) -> None:
        if source.words is not None and source.position is not None:
            source.words.publish(PositionWords.SHIPPED, *source.position)

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
        numbers = segment_numbers(source.directory)
        pending = [n for n in numbers if n >= seg]
        committed = source.committed()
        if source.live and committed is None:
            return None  # its word caught half-written: next round
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
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                want = READ_BYTES if limit is None else min(READ_BYTES, limit - offset)
                data = fh.read(max(want, 0))
        except FileNotFoundError:
            return None  # a segment the writer has not created yet
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
        if committed is not None:  # a live journal
            # a segment is done once its writer has moved past it
            batch.segment_done = number < committed[0] and batch.end >= path.stat().st_size
        else:
            # a stopped journal's segment is done at its end; what follows the last
            # intact frame there is a torn write that was never acknowledged
            batch.segment_done = at_eof and not full
        if batch.end == offset and not batch.segment_done:
            return None
        batch.full = full or not at_eof  # cut by batch_events or READ_BYTES
        return batch

    async def _finish(self, conn: asyncpg.Connection, source: _Source) -> None:
        """Everything of a stopped process's journal has landed: remove it.

        Files go first, the position row last: a crash in between leaves a stale row
        (harmless), never a directory whose position was forgotten (reshipped)."""
        remove_journal_dir(source.directory)
        await event_store.forget_journal(conn, source.name)
        source.close()
        del self.sources[source.directory]
        self.publish_status(force=True)
        log.info("journal %s shipped and removed", source.name)


def _open_source(directory: Path) -> _Source | None:
    """A journal directory to ship, or None (being removed, or not ours to read).

    The LOCK file is never created here: every published journal has one from
    birth, and creating one could race with a directory being removed."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        if not segment_numbers(directory):
            with contextlib.suppress(OSError):
                directory.rmdir()  # the empty remains of a removal cut short
        return None
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        stopped = True
    except BlockingIOError:
        stopped = False
    words: PositionWords | None = None
    with contextlib.suppress(FileNotFoundError):
        words = PositionWords(directory / POSITION_NAME)
    if not directory.exists() or (not stopped and words is None):
        # removed meanwhile, or written by a version without position words
        os.close(fd)
        if words is not None:
            words.close()
        return None
    if stopped:
        return _Source(directory, words=words, lock_fd=fd)
    return _Source(directory, words=words, probe_fd=fd)


async def run_process(dsn: str, root: Path, status_fd: int) -> int:
    """``tracker ship``'s main: ship until no journal under ``root`` is live and
    everything is shipped (see the module docstring). ``status_fd`` is the root's
    SHIPPER file, flocked by the caller (or its parent) for this process's life."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # the serving processes got the same signal: they close their journals,
        # which this process then finishes; it stops once none is left
        loop.add_signal_handler(signum, stopping.set)
    # min_size=0: it starts, and keeps trying, with PostgreSQL down
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=1,
                                     max_inactive_connection_lifetime=60)
    shipper = Shipper(pool, root, status_fd=status_fd)
    shipper.scan()
    shipper.publish_status(force=True)
    shipper.start()
    stop_deadline: float | None = None
    down_since: float | None = None
    try:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if stopping.is_set() and stop_deadline is None:
                stop_deadline = now + STOP_GRACE
            if stop_deadline is not None and now >= stop_deadline:
                return 1  # asked to stop, and a serving process still holds on
            if shipper.live_sources():
                down_since = None
                continue
            # no serving process left: finish the stopped journals, then exit
            if not shipper.sources:
                return 0
            if shipper.database_up:
                down_since = None
                continue
            down_since = down_since or now
            if now - down_since > EXIT_GRACE:
                return 1
    finally:
        drained = await shipper.stop(drain_timeout=1.0 if shipper.sources else 0.1)
        if not drained:
            log.warning("shipper stopped with events still in the journals under %s; they "
                        "ship at the next start", root)
        shipper.publish_status(force=True)
        try:
            await asyncio.wait_for(pool.close(), 5)
        except (*DATABASE_FAILURES, asyncpg.exceptions.InternalClientError):
            pool.terminate()


def main(argv: list[str] | None = None) -> int:
    """``python -m tracker.shipper``: what a serving process starts (tracker/shipping.py).

    The same as ``tracker ship --lock-fd``, without importing every other command of
    the ``tracker`` CLI first: half a second less before the first batch lands."""
    import argparse

    from tracker import metrics

    parser = argparse.ArgumentParser(prog="python -m tracker.shipper")
    parser.add_argument("--journal-dir", type=Path, required=True)
    parser.add_argument("--lock-fd", type=int, required=True,
                        help="the root's SHIPPER file, flocked by the parent")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    dsn = os.environ.get("TRACKER_DATABASE_URL")
    if not dsn:
        parser.error("TRACKER_DATABASE_URL must be set")
    logging.getLogger("uvicorn.error").setLevel(args.log_level.upper())
    metrics.configure_logging()
    import uvloop  # the server's loop, a dependency of it

    return uvloop.run(run_process(dsn, args.journal_dir, args.lock_fd))


if __name__ == "__main__":
    import sys

    sys.exit(main())
