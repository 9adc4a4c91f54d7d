"""The serving process's side of shipping: keep one shipper process per journal root
running, and read what it publishes.

Why: landing and folding run in a process of their own (tracker/shipper.py), so a
batch never holds the GIL of a process that answers hits. Every serving process
takes part in keeping exactly one shipper alive: at start and about once a second it
tries the flock of the root's ``SHIPPER`` file without blocking. Whoever gets it
starts ``python -m tracker.shipper`` (``tracker ship`` without the rest of the CLI's
imports) with the locked descriptor (``pass_fds``): the child holds the
lock for its life and this process closes its own copy. When the shipper dies
(SIGKILL, a crash) the kernel frees the lock and the next check of any serving
process starts another, which carries on from the positions committed in
PostgreSQL. The shipper exits by itself once no journal under the root is live.

The journal follows the shipped word itself (tracker/journal.py); this class gives
the app ``database_up`` and the backlog of journals the shipper is finishing, and at
shutdown waits for this process's own journal to be shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from tracker.journal import Journal
from tracker.shipper_status import ShipperStatus, open_status, read_status

log = logging.getLogger(__name__)

#: how often a serving process checks that a shipper runs
CHECK_EVERY = 1.0
#: at shutdown: how long to wait for this process's journal to be shipped, and then
#: for the shipper this process started to exit
DRAIN_TIMEOUT = 15.0
EXIT_TIMEOUT = 5.0
#: at start: how long to wait for a shipper to report (Python's start-up and imports)
READY_TIMEOUT = 15.0


class ShipperLink:
    def __init__(self, root: Path, dsn: str, *, log_level: str = "info") -> None:
        self.root = root
        self.dsn = dsn
        self.log_level = log_level
        self.child: subprocess.Popen[bytes] | None = None
        self._status_fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- keeping a shipper alive --------------------------------------------------------
    def start(self) -> None:
        """Start the shipper if none runs, then check again every CHECK_EVERY."""
        self._loop = asyncio.get_running_loop()
        self._status_fd = open_status(self.root)
        self._check()

    def _check(self) -> None:
        try:
            self.ensure_shipper()
        except OSError as exc:  # fork failed, or the like: the next check tries again
            log.error("cannot start the shipper process (%s); events wait in the journal", exc)
        if self._loop is not None:
            self._timer = self._loop.call_later(CHECK_EVERY, self._check)

    def ensure_shipper(self) -> bool:
        """Start a shipper unless one holds the root's lock; True if started."""
        if self.child is not None and self.child.poll() is not None:
            self.child = None  # reaped: a shipper that died
        fd = open_status(self.root)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        env = dict(os.environ, TRACKER_DATABASE_URL=self.dsn)
        # its metrics go through the SHIPPER file, not prometheus_client's files
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "tracker.shipper", "--journal-dir", str(self.root),
                 "--lock-fd", str(fd), "--log-level", self.log_level],
                pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(fd)  # the child's copy keeps the lock
        return True

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Wait until a shipper runs for this root (its status written within the last
        second): a service is up once events it acknowledges get landed, as when the
        shipper was a thread started before serving. False (and serving anyway, the
        journal keeps every event) if none showed up within ``timeout``."""
        deadline = time.monotonic() + timeout
        since = time.time() - 1.0
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and status.heartbeat > since:
                return True
            await asyncio.sleep(0.02)
        log.warning("no shipper process reported within %.0f s; serving anyway, events wait "
                    "in the journal", timeout)
        return False

    # -- what the shipper publishes -------------------------------------------------------
    def status(self) -> ShipperStatus | None:
        if self._status_fd is None:
            return None
        return read_status(self._status_fd)

    @property
    def database_up(self) -> bool:
        """What the shipper last saw (True before any shipper said anything)."""
        status = self.status()
        return status.database_up if status is not None else True

    @property
    def adopted_backlog(self) -> int:
        """Bytes of the stopped journals the shipper is finishing, not yet in PostgreSQL."""
        status = self.status()
        return status.adopted_backlog if status is not None else 0

    def backlog_bytes(self, journal: Journal) -> int:
        """Journal bytes not yet in PostgreSQL: this process's own and those of the
        stopped journals the shipper is finishing."""
        return journal.backlog_bytes + self.adopted_backlog

    # -- shutdown -------------------------------------------------------------------------
    async def stop(self, journal: Journal) -> bool:
        """After the journal is closed and released: wait until the shipper has
        shipped it (True), PostgreSQL is seen down or DRAIN_TIMEOUT passes; then give
        a shipper this process started EXIT_TIMEOUT to exit (it does once no journal
        is live). Keeps starting a shipper meanwhile if none runs."""
        closed_at = time.monotonic()

        def database_down() -> bool:
            status = self.status()
            # a status written after our close, saying the database is down
            return (status is not None and not status.database_up
                    and status.heartbeat > time.time() - (time.monotonic() - closed_at))

        try:
            drained = await journal.wait_shipped(DRAIN_TIMEOUT, database_down)
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            journal.detach()
        child = self.child
        if child is not None:
            deadline = time.monotonic() + EXIT_TIMEOUT
            while child.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self._status_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._status_fd)
            self._status_fd = None
        return drained
