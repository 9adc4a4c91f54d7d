"""The durable journal: an event is acknowledged only once it is on disk.

Why: a hit's response promises the sender that the event counts. PostgreSQL may be
down or slow; the process may be killed. So the edge appends each event to a local
append-only file and awaits its *group commit*: a background thread writes and
fsyncs whatever accumulated since its last fsync, then wakes every request of that
group at once (PostgreSQL's group commit, in miniature). Throughput thus does not
depend on how many fsyncs the disk can do, and an idle service answers a hit one
fsync after it arrives.

Under load the thread waits ``COMMIT_DELAY`` before it takes a group, the way
PostgreSQL's ``commit_delay`` does, so more hits share each fsync: an fsync costs
the kernel ~0.1-0.2 ms of CPU on the serving core whatever it carries. "Under load"
is ``commit_siblings`` in PostgreSQL; here, the previous group carried at least
``COMMIT_SIBLINGS`` appends, so a lone hit never waits for company that is not coming.

Layout: one directory per process (``<data>/journal/<id>/``) holding numbered
segment files, a ``LOCK`` file flocked for the process's life, and a ``POSITION``
file (see ``PositionWords``) through which this process and the shipper process
(tracker/shipper.py) tell each other how far the journal is committed and shipped:
the only thing the two processes share besides the segment files. A directory
whose lock can be taken belongs to a dead (or stopped) process; the shipper ships
all of it and removes it.

A frame is ``<u32 length><u32 crc32(body)><body>``; a torn frame at the tail (a
write that was never acknowledged) fails its length or CRC check and ends reading.

Bounds (memory and disk):

* Memory: bytes appended but not yet committed are capped at ``max_pending_bytes``
  (default 32 MiB, ~200,000 events). Past it, an append waits (asynchronously, up to
  ``pending_wait`` seconds) for the commit thread to catch up; when it cannot, the
  event is refused (dropped and counted) rather than held. At most
  ``max_waiting`` hits may wait at once; more are refused at once. So the journal
  never holds more than ``max_pending_bytes`` of events plus one small record per
  waiting request, whatever the load.
* Reports in real time (docs/figures.md#f18): when PostgreSQL is up but takes events more slowly
  than they arrive, committed events would wait longer and longer to be shipped. So
  while the oldest unshipped event is older than ``SHIP_LAG_TARGET`` and the shipper
  is landing batches, a new hit first waits (up to ``SHIP_LAG_MAX_WAIT``) for the
  shipper to catch up: traffic slows to what the database takes instead of the
  reports falling behind. A shipper that lands nothing (PostgreSQL down) holds
  nothing back: the journal is there to absorb outages.
* Disk: with ``max_bytes`` (``TRACKER_JOURNAL_MAX_BYTES``), committed but unshipped
  bytes are capped; a group that would exceed it is dropped, counted and logged,
  exactly as a real ENOSPC is. Writing resumes by itself once the shipper has freed
  space.

A new journal directory is prepared under a dot-name, locked, and only then renamed
into place, so a live process's directory can never be mistaken for a dead one's
by another process scanning for journals to adopt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import mmap
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FRAME_HEAD = struct.Struct("<II")
SEGMENT_BYTES = 16 * 1024 * 1024
MAX_RECORD = 1 << 20
LOCK_NAME = "LOCK"
POSITION_NAME = "POSITION"
MAX_PENDING_BYTES = 32 * 1024 * 1024
PENDING_WAIT_SECONDS = 5.0
MAX_WAITING = 10_000
#: the oldest unshipped event may be this old (seconds) before new hits wait for the
#: shipper, at most SHIP_LAG_MAX_WAIT each; only while the shipper landed a batch
#: within SHIPPER_ALIVE (see the module docstring)
SHIP_LAG_TARGET = 0.5
SHIP_LAG_MAX_WAIT = 1.0
SHIPPER_ALIVE = 1.0
#: commit times are remembered at most every MARK_SPACING seconds, at most MAX_MARKS
MARK_SPACING = 0.05
MAX_MARKS = 10_000
#: under load (the previous group carried at least COMMIT_SIBLINGS appends) the commit
#: thread waits this long (seconds) before taking a group: more hits per fsync. Short
#: beside an fsync, since every hit of the group waits it too (loadtests/README.md)
COMMIT_DELAY = 0.0002
COMMIT_SIBLINGS = 4
#: a disk-full or write error is logged at most this often (with the count since)
LOUD_LOG_EVERY = 5.0
#: how often the serving loop reads the shipper's shipped word: often while events
#: wait (hits held back by F18 wake within this), seldom when all is shipped
POLL_BUSY = 0.01
POLL_IDLE = 0.05


def frame(body: bytes) -> bytes:
    return FRAME_HEAD.pack(len(body), zlib.crc32(body)) + body


def segment_name(number: int) -> str:
    return f"{number:010d}.seg"


def segment_numbers(directory: Path) -> list[int]:
    return sorted(int(p.stem) for p in directory.glob("*.seg") if p.stem.isdigit())


def read_frames(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield (end offset, body) for each intact frame from ``start``; stop at the
    first torn or corrupt one, which can only be an unacknowledged tail."""
    pos = start
    size = len(data)
    head = FRAME_HEAD.size
    while pos + head <= size:
        length, crc = FRAME_HEAD.unpack_from(data, pos)
        end = pos + head + length
        if length == 0 or length > MAX_RECORD or end > size:
            return
        body = data[pos + head : end]
        if zlib.crc32(body) != crc:
            return
        yield end, body
        pos = end


class PositionWords:
    """Two positions in a small shared file, each written by one process only.

    ``COMMITTED``: written by the journal's commit thread after each group commit,
    the end of what is durable (the shipper of a live journal ships no further: past
    it lie frames never acknowledged). ``SHIPPED``: written by the shipper after each
    batch has committed in PostgreSQL (the serving process turns it into its backlog,
    the disk cap and F18's hold-back). Mapped into memory, so a write or read is a
    copy of 16 bytes, no system call, at every group commit.

    A slot is ``<u64 segment << 40 | offset><u32 crc32 of those 8 bytes><u32 0>``.
    Nothing in Python makes a 16-byte copy atomic, so a reader checks the CRC and
    reads again when it caught a write half-done (a torn pair that passes is a
    2**-32 chance per torn read, and torn reads take a write landing within the same
    few nanoseconds).
    """

    COMMITTED = 0
    SHIPPED = 16
    SIZE = 32
    _SLOT = struct.Struct("<QI4x")
    _VALUE = struct.Struct("<Q")

    def __init__(self, path: Path, *, create: bool = False) -> None:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                if not create:
                    raise FileNotFoundError(f"{path} is not a position file yet")
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def publish(self, slot: int, segment: int, offset: int) -> None:
        value = segment << 40 | offset
        self._map[slot:slot + 16] = self._SLOT.pack(
            value, zlib.crc32(self._VALUE.pack(value)))

    def read(self, slot: int) -> tuple[int, int] | None:
        """The position in ``slot``; (0, 0) if never written, None if every read
        caught a write half-done (the caller tries again later)."""
        for _ in range(8):
            value, crc = self._SLOT.unpack(self._map[slot:slot + 16])
            if crc == zlib.crc32(self._VALUE.pack(value)):
                return value >> 40, value & ((1 << 40) - 1)
            if value == 0 and crc == 0:
                return 0, 0
        return None

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()


@dataclass
class _Group:
    """Records that share one write and one fsync, and one future to wake them."""

    segment: int
    future: asyncio.Future[bool]
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class JournalStats:
    journaled: int = 0  # events on disk and acknowledged
    dropped: int = 0  # events that could not be written (disk full, I/O error)
    fsyncs: int = 0
    write_errors: int = 0
    delayed: int = 0  # group commits that waited COMMIT_DELAY for more appends


class Journal:
    """This process's journal: append from the event loop, commit in a thread."""

    def __init__(self, root: Path, *, segment_bytes: int = SEGMENT_BYTES,
                 max_bytes: int | None = None, max_pending_bytes: int = MAX_PENDING_BYTES,
                 pending_wait: float = PENDING_WAIT_SECONDS,
                 max_waiting: int = MAX_WAITING, commit_delay: float = COMMIT_DELAY,
                 commit_siblings: int = COMMIT_SIBLINGS) -> None:
        self.root = root
        self.journal_id = f"{int(time.time())}-{os.getpid()}-{secrets.token_hex(4)}"
        self.directory = root / self.journal_id
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes  # a cap on unshipped bytes on disk (None: the disk's size)
        self.max_pending_bytes = max_pending_bytes
        self.pending_wait = pending_wait
        self.max_waiting = max_waiting
        self.commit_delay = commit_delay
        self.commit_siblings = commit_siblings
        self.stats = JournalStats()
        self._pending_bytes = 0  # appended, not yet committed (or dropped)
        self._waiting = 0
        self._space: asyncio.Event | None = None
        self._failing_since: float | None = None  # monotonic time of the first failure
        self._failed_bytes = 0
        self._failed_groups = 0
        self._last_loud = 0.0
        self._lock = threading.Lock()
        # a binary semaphore: released (in C, ~0.1 µs) to wake the commit thread. A
        # threading.Event's set() runs a Condition in Python: 5% of the hot path at load
        self._wake = threading.Lock()
        self._wake.acquire()
        self._ready: list[_Group] = []
        self._current: _Group | None = None
        self._segment = 1
        self._segment_fill = 0
        self._committed = (1, 0)  # (segment, end offset) durable on disk
        # backlog accounting from positions, not from deltas, so it can never drift:
        # bytes ever committed, bytes shipped, and where each segment began in that count
        self._committed_total = 0
        self._shipped_total = 0
        self._segment_base: dict[int, int] = {}
        # (bytes ever committed after a group, monotonic time of its commit) for the
        # groups not yet shipped: the first one tells how old the shipper's lag is
        self._commit_marks: collections.deque[tuple[int, float]] = collections.deque()
        self._last_shipped_at = 0.0
        self._shipped = asyncio.Event()
        self._accounting = threading.Lock()
        self._closing = False
        self._closed = False  # the commit thread has ended: nothing more can be kept
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._fd_segment = 0
        self.committed_event = asyncio.Event()
        self._words: PositionWords | None = None
        self._shipped_word = (0, 0)
        self._poll: asyncio.TimerHandle | None = None

    # -- life cycle ---------------------------------------------------------------
    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".new-{self.journal_id}"
        staging.mkdir()
        self._lock_fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._words = PositionWords(staging / POSITION_NAME, create=True)
        self._words.publish(PositionWords.COMMITTED, *self._committed)
        _fsync_dir(staging)
        os.rename(staging, self.directory)  # published only once locked
        _fsync_dir(self.root)
        self._loop = asyncio.get_running_loop()
        self.committed_event = asyncio.Event()
        self._space = asyncio.Event()
        self._shipped = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="journal-commit", daemon=True)
        self._thread.start()
        self._poll = self._loop.call_later(POLL_IDLE, self._poll_shipped)

    async def close(self) -> None:
        """Commit everything appended so far and stop the commit thread."""
        self._closing = True
        self._signal()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._closed = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self, remove: bool = False) -> None:
        """Give up ownership (after close()): from now on the shipper treats the
        directory as a stopped process's, ships the rest of it and removes it. The
        shipped word is still followed until detach(). ``remove`` deletes the
        directory at once instead (no shipper: tests, tools)."""
        if remove:
            self.detach()
            remove_journal_dir(self.directory)
            _fsync_dir(self.root)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def detach(self) -> None:
        """Stop following the shipper's word (the last step of a shutdown)."""
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if self._words is not None:
            self._words.close()
            self._words = None

    async def wait_shipped(self, timeout: float, give_up: Callable[[], bool]) -> bool:
        """After close(): wait until everything committed is shipped (True), at most
        ``timeout`` seconds and no longer than ``give_up()`` stays false."""
        deadline = time.monotonic() + timeout
        while self.backlog_bytes > 0:
            if time.monotonic() > deadline or give_up():
                return False
            self._shipped.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._shipped.wait(), 0.1)
        return True

    # -- the hot path (event loop thread) -----------------------------------------
    def append(self, records: bytes) -> Awaitable[bool]:
        """Queue framed records; the returned awaitable gives True once they are
        durable, False if they could not be kept. Never blocks the event loop; past
        ``max_pending_bytes`` the caller waits for room (see the module docstring)."""
        if self._pending_bytes + len(records) > self.max_pending_bytes and self._pending_bytes:
            return self._append_when_room(records)
        return self._enqueue(records)

    async def _append_when_room(self, records: bytes) -> bool:
        if self._waiting >= self.max_waiting:
            self._note_failure(len(records), "too many hits waiting for the journal")
            return False
        space = self._space
        assert space is not None, "open() made it"
        self._waiting += 1
        try:
            deadline = time.monotonic() + self.pending_wait
            while (self._pending_bytes + len(records) > self.max_pending_bytes
                   and self._pending_bytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    self._note_failure(len(records), "the journal's commit thread is too far "
                                       "behind (disk too slow)")
                    return False
                space.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(space.wait(), left)
        finally:
            self._waiting -= 1
        return await self._enqueue(records)

    def _enqueue(self, records: bytes) -> asyncio.Future[bool]:
        loop = self._loop
        assert loop is not None, "open() set it"
        if self._closed:  # a hit that outlived the shutdown: refuse, never hang
            self._note_failure(len(records), "the journal is closed (shutting down)")
            future = loop.create_future()
            future.set_result(False)
            return future
        with self._lock:
            self._pending_bytes += len(records)
            group = self._current
            if group is None:
                group = self._current = _Group(self._segment, loop.create_future())
                self._signal()
            group.chunks.append(records)
            group.size += len(records)
            self._segment_fill += len(records)
            if self._segment_fill >= self.segment_bytes:
                self._ready.append(group)
                self._current = None
                self._segment += 1
                self._segment_fill = 0
        return group.future

    @property
    def committed(self) -> tuple[int, int]:
        return self._committed

    @property
    def backlog_bytes(self) -> int:
        """Committed bytes not yet in PostgreSQL (what TRACKER_JOURNAL_MAX_BYTES caps)."""
        return max(0, self._committed_total - self._shipped_total)

    @property
    def pending_bytes(self) -> int:
        """Appended but not yet committed: bounded by ``max_pending_bytes``."""
        return self._pending_bytes

    def _poll_shipped(self) -> None:
        """On the serving loop, every POLL_BUSY or POLL_IDLE seconds."""
        self.refresh_shipped()
        if self._loop is not None and self._words is not None:
            self._poll = self._loop.call_later(
                POLL_BUSY if self._commit_marks else POLL_IDLE, self._poll_shipped)

    def refresh_shipped(self) -> None:
        """Take in the shipped word the shipper published (a 16-byte read when
        unchanged). On the serving loop."""
        words = self._words
        if words is None:
            return
        shipped = words.read(PositionWords.SHIPPED)
        if shipped is not None and shipped != self._shipped_word:
            self._shipped_word = shipped
            self.shipped_to(*shipped)

    def shipped_to(self, segment: int, offset: int) -> None:
        """The shipper's position (as committed in PostgreSQL) is now ``(segment, offset)``.
        Called on the serving loop."""
        with self._accounting:
            base = self._segment_base.get(segment)
            if base is not None:
                shipped = base + offset
            elif not self._segment_base or segment > max(self._segment_base):
                # a segment not begun yet: everything committed so far lies before it
                shipped = self._committed_total if self._segment_base else 0
            else:
                shipped = 0  # before our first segment
            if shipped > self._shipped_total:
                # only progress proves the shipper alive: a re-read position after a
                # batch PostgreSQL refused (read-only, disk full) is no progress
                self._shipped_total = shipped
                self._last_shipped_at = time.monotonic()
            for number in [n for n in self._segment_base if n < segment]:
                del self._segment_base[number]
            marks = self._commit_marks
            while marks and marks[0][0] <= self._shipped_total:
                marks.popleft()
        self._shipped.set()  # wake hits waiting for the shipper

    def lagging(self) -> bool:
        """The shipper is landing batches but the oldest unshipped event is older
        than SHIP_LAG_TARGET: a new hit should wait_for_shipper() first."""
        marks = self._commit_marks
        if not marks:
            return False
        try:
            oldest = marks[0][1]
        except IndexError:  # shipped meanwhile, on the commit thread's accounting
            return False
        now = time.monotonic()
        return now - oldest > SHIP_LAG_TARGET and now - self._last_shipped_at < SHIPPER_ALIVE

    async def wait_for_shipper(self) -> None:
        """Wait while lagging(), at most SHIP_LAG_MAX_WAIT, and never past the moment
        the shipper stops counting as alive (no progress for SHIPPER_ALIVE)."""
        deadline = time.monotonic() + SHIP_LAG_MAX_WAIT
        while self.lagging():
            now = time.monotonic()
            remaining = min(deadline, self._last_shipped_at + SHIPPER_ALIVE) - now
            if remaining <= 0:
                return
            self._shipped.clear()
            try:
                await asyncio.wait_for(self._shipped.wait(), remaining)
            except TimeoutError:
                return

    def _signal(self) -> None:
        """Wake the commit thread (a no-op when a wake is pending). Only the event loop
        thread releases and only the commit thread acquires, so locked() cannot go stale
        between the test and the release."""
        if self._wake.locked():
            self._wake.release()

    # -- the commit thread ----------------------------------------------------------
    def _run(self) -> None:
        loop = self._loop
        assert loop is not None, "open() set it before starting this thread"
        siblings = 0  # appends the previous group commit carried
        while True:
            self._wake.acquire()  # until _signal(); a signal sent meanwhile is kept
            if siblings >= self.commit_siblings and not self._closing:
                # under load: let the hits in flight join this group (module docstring)
                time.sleep(self.commit_delay)
                self.stats.delayed += 1
            with self._lock:
                groups = self._ready
                if self._current is not None:
                    groups.append(self._current)
                self._ready = []
                self._current = None
            siblings = sum(len(group.chunks) for group in groups)
            for group in groups:
                ok = self._commit(group)
                loop.call_soon_threadsafe(self._resolve, group, ok)
            if self._closing and not groups:
                with self._lock:
                    if self._current is None and not self._ready:
                        return

    def _commit(self, group: _Group) -> bool:
        data = b"".join(group.chunks)
        if self.max_bytes is not None and self.backlog_bytes + len(data) > self.max_bytes:
            self.stats.write_errors += 1
            self._note_failure(len(data), f"journal full: {self.backlog_bytes} bytes wait for "
                               f"PostgreSQL and TRACKER_JOURNAL_MAX_BYTES is {self.max_bytes}")
            return False
        try:
            if self._fd is None or self._fd_segment != group.segment:
                self._switch_segment(group.segment)
            fd = self._fd
            assert fd is not None, "_switch_segment opened it"
            start = self._committed[1] if self._committed[0] == group.segment else 0
            try:
                written = 0
                view = memoryview(data)
                while written < len(data):
                    written += os.write(fd, view[written:])
                os.fdatasync(fd)
            except OSError:
                # leave no half-written group behind: the next group starts clean
                os.ftruncate(fd, start)
                os.lseek(fd, start, os.SEEK_SET)
                raise
        except OSError as exc:
            self.stats.write_errors += 1
            self._note_failure(len(data), f"journal write failed ({exc})")
            return False
        self._note_success()
        self.stats.fsyncs += 1
        with self._accounting:
            self._committed = (group.segment, start + len(data))
            self._committed_total += len(data)
            self._mark_commit(time.monotonic())
        self._publish_committed()
        return True

    def _publish_committed(self) -> None:
        """Tell the shipper (commit thread only, after the fsync)."""
        words = self._words
        if words is not None:
            words.publish(PositionWords.COMMITTED, *self._committed)

    def _mark_commit(self, now: float) -> None:
        """Remember when bytes up to _committed_total were committed (under
        _accounting). Marks closer than MARK_SPACING, or past MAX_MARKS (PostgreSQL
        away for long), are merged into the last one, which keeps the older time: the
        lag is never underestimated and memory stays bounded through any outage."""
        marks = self._commit_marks
        if marks and (now - marks[-1][1] < MARK_SPACING or len(marks) >= MAX_MARKS):
            marks[-1] = (self._committed_total, marks[-1][1])
        else:
            marks.append((self._committed_total, now))

    def _switch_segment(self, number: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / segment_name(number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fd_segment = number
        with self._accounting:
            if self._committed[0] != number:
                self._committed = (number, 0)
            self._segment_base.setdefault(number, self._committed_total)
        _fsync_dir(self.directory)
        self._publish_committed()  # the last segment is complete: the shipper may finish it

    def _resolve(self, group: _Group, ok: bool) -> None:
        self._pending_bytes -= group.size
        if not group.future.done():
            group.future.set_result(ok)
        self.committed_event.set()
        if self._space is not None:
            self._space.set()

    # -- loud but bounded logging of lost events -------------------------------------
    def _note_failure(self, size: int, why: str) -> None:
        """Count bytes that could not be kept; log at once, then every few seconds."""
        now = time.monotonic()
        self.stats.dropped += 1
        if self._failing_since is None:
            self._failing_since = now
        self._failed_bytes += size
        self._failed_groups += 1
        if now - self._last_loud >= LOUD_LOG_EVERY:
            self._last_loud = now
            log.error("EVENTS DROPPED: %s; %d writes (%d bytes) refused so far; the service "
                      "keeps answering, tracker_events_dropped_total counts the lost events",
                      why, self._failed_groups, self._failed_bytes)

    def _note_success(self) -> None:
        if self._failing_since is not None:
            log.warning("journal writing again after %.1f s: %d writes (%d bytes) were dropped",
                        time.monotonic() - self._failing_since, self._failed_groups,
                        self._failed_bytes)
            self._failing_since = None
            self._failed_bytes = 0
            self._failed_groups = 0
            self._last_loud = 0.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_journal_dir(directory: Path) -> None:
    """Delete a fully shipped journal: segments first (oldest first), the LOCK last,
    so a crash half-way leaves either a lockable directory or an empty one."""
    for number in segment_numbers(directory):
        (directory / segment_name(number)).unlink(missing_ok=True)
    for path in directory.iterdir():
        if path.name != LOCK_NAME:
            path.unlink(missing_ok=True)
    (directory / LOCK_NAME).unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


def remove_stale_staging(directory: Path) -> None:
    """A ``.new-*`` directory left by a process killed while opening its journal
    holds no events (segments are only written after the rename)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except OSError:
        with contextlib.suppress(OSError):
            directory.rmdir()
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # being opened right now by a live process
    finally:
        os.close(fd)
    if not segment_numbers(directory):
        remove_journal_dir(directory)
