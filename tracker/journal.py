"""The durable journal: an event is acknowledged only once it is on disk.

Why: a hit's response promises the sender that the event counts. PostgreSQL may be
down or slow; the process may be killed. So the edge appends each event to a local
append-only file and awaits its *group commit*: a background thread writes and
fsyncs whatever accumulated since its last fsync, then wakes every request of that
group at once (PostgreSQL's group commit, in miniature). At ~0.25 ms an fsync, the
groups stay small and the latency low, and throughput does not depend on the disk.

Layout: one directory per process (``<data>/journal/<id>/``) holding numbered
segment files and a ``LOCK`` file flocked for the process's life. A directory whose
lock can be taken belongs to a dead process and is adopted by a live one.

A frame is ``<u32 length><u32 crc32(body)><body>``; a torn frame at the tail (a
write that was never acknowledged) fails its length or CRC check and ends reading.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FRAME_HEAD = struct.Struct("<II")
SEGMENT_BYTES = 16 * 1024 * 1024
MAX_RECORD = 1 << 20
LOCK_NAME = "LOCK"


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


@dataclass
class _Group:
    """Records that share one write and one fsync, and one future to wake them."""

    segment: int
    future: asyncio.Future
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class JournalStats:
    journaled: int = 0  # events on disk and acknowledged
    dropped: int = 0  # events that could not be written (disk full, I/O error)
    fsyncs: int = 0
    write_errors: int = 0


class Journal:
    """This process's journal: append from the event loop, commit in a thread."""

    def __init__(self, root: Path, *, segment_bytes: int = SEGMENT_BYTES,
                 max_bytes: int | None = None) -> None:
        self.root = root
        self.journal_id = f"{int(time.time())}-{os.getpid()}-{secrets.token_hex(4)}"
        self.directory = root / self.journal_id
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes  # a cap on unshipped bytes on disk (None: the disk's size)
        self.stats = JournalStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ready: list[_Group] = []
        self._current: _Group | None = None
        self._segment = 1
        self._segment_fill = 0
        self._committed = (1, 0)  # (segment, end offset) durable on disk
        self._on_disk_bytes = 0  # committed bytes not yet deleted by the shipper
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._fd_segment = 0
        self.committed_event = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------
    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=False)
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_dir(self.root)
        self._loop = asyncio.get_running_loop()
        self.committed_event = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="journal-commit", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Commit everything appended so far and stop the commit thread."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self, remove: bool) -> None:
        """Give up ownership; remove the directory if everything was shipped."""
        if remove:
            for path in self.directory.iterdir():
                path.unlink(missing_ok=True)
            self.directory.rmdir()
            _fsync_dir(self.root)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the hot path (event loop thread) -----------------------------------------
    def append(self, records: bytes) -> asyncio.Future:
        """Queue framed records; the returned future becomes True once they are
        durable, False if they could not be written. Never blocks."""
        with self._lock:
            group = self._current
            if group is None:
                group = self._current = _Group(self._segment, self._loop.create_future())
                self._wake.set()
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
        return self._on_disk_bytes

    def shipped(self, freed_bytes: int) -> None:
        """The shipper deleted or passed ``freed_bytes`` of committed data."""
        self._on_disk_bytes = max(0, self._on_disk_bytes - freed_bytes)

    # -- the commit thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                groups = self._ready
                if self._current is not None:
                    groups.append(self._current)
                self._ready = []
                self._current = None
            for group in groups:
                ok = self._commit(group)
                self._loop.call_soon_threadsafe(self._resolve, group, ok)
            if self._closing and not groups:
                with self._lock:
                    if self._current is None and not self._ready:
                        return

    def _commit(self, group: _Group) -> bool:
        data = b"".join(group.chunks)
        if self.max_bytes is not None and self._on_disk_bytes + len(data) > self.max_bytes:
            self.stats.write_errors += 1
            return False
        try:
            if self._fd is None or self._fd_segment != group.segment:
                self._switch_segment(group.segment)
            start = self._committed[1] if self._committed[0] == group.segment else 0
            try:
                written = 0
                view = memoryview(data)
                while written < len(data):
                    written += os.write(self._fd, view[written:])
                os.fdatasync(self._fd)
            except OSError:
                # leave no half-written group behind: the next group starts clean
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
                raise
        except OSError as exc:
            self.stats.write_errors += 1
            log.error("journal write failed (%s): %d bytes of events not kept", exc, len(data))
            return False
        self.stats.fsyncs += 1
        self._committed = (group.segment, start + len(data))
        self._on_disk_bytes += len(data)
        return True

    def _switch_segment(self, number: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / segment_name(number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fd_segment = number
        if self._committed[0] != number:
            self._committed = (number, 0)
        _fsync_dir(self.directory)

    def _resolve(self, group: _Group, ok: bool) -> None:
        if not group.future.done():
            group.future.set_result(ok)
        self.committed_event.set()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def adoptable_journals(root: Path, own: Path | None) -> list[tuple[Path, int]]:
    """Journal directories whose owner is dead, each with the flock fd that now
    proves this process owns them (keep it open while draining)."""
    found: list[tuple[Path, int]] = []
    if not root.is_dir():
        return found
    for directory in sorted(root.iterdir()):
        if not directory.is_dir() or directory == own:
            continue
        lock_path = directory / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        found.append((directory, fd))
    return found
