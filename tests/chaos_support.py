"""Chaos scenarios: load the real service, break something, heal it, count rows.

Shared by ``tests/test_chaos.py`` (short outages, in the suite) and
``loadtests/chaos.py`` (the issue's 20 s outage, prints the table). Every request
uses a token of its own delivery, so a row per delivery is the whole truth: a
missing delivery is a lost event, two rows are a duplicate.

What a request's fate proves:

* ``acked``: a complete 200/302 arrived. The event was journaled (or, only in the
  disk-full scenario, dropped and counted in ``tracker_events_dropped_total``).
* ``in_doubt``: the request was sent and the connection died before the answer
  (SIGKILL). It may or may not have been journaled; either is correct.
* ``refused``: the connection was refused; the server never saw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadtests.minting import mint
from tests.support import SECRET_KEYS, Service, http_client, query, wait_for

OK_STATUSES = (200, 302)


@dataclass
class Fates:
    acked: set[int] = field(default_factory=set)
    in_doubt: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)
    wrong: list[tuple[int, int]] = field(default_factory=list)  # (delivery, status)


class Load:
    """Threads sending one request per delivery (open or click, alternating)."""

    def __init__(self, service: Service, campaign: str, count: int, *,
                 concurrency: int = 8, pace: float = 0.0) -> None:
        minted = asyncio.run(mint(service.dsn, SECRET_KEYS.split(","), campaign, count,
                                  links=1, unsubscribes=False))
        self.campaign = minted.campaign
        self.work = [(d, minted.opens[i] if i % 2 == 0 else minted.clicks[i][0])
                     for i, d in enumerate(minted.delivery_ids)]
        self.service = service
        self.concurrency = concurrency
        self.pace = pace  # seconds each thread waits between requests
        self.fates = Fates()
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []

    @property
    def sent(self) -> int:
        return len(self.fates.acked) + len(self.fates.in_doubt) + len(self.fates.wrong)

    def start(self) -> Load:
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def join(self, timeout: float = 120) -> Fates:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "load did not finish in time"
        return self.fates

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        wait_for(lambda: len(self.fates.acked) >= count or self.done, timeout)

    @property
    def done(self) -> bool:
        return self._next >= len(self.work)

    def _take(self) -> tuple[int, str] | None:
        with self._lock:
            if self._next >= len(self.work):
                return None
            item = self.work[self._next]
            self._next += 1
            return item

    def _run(self) -> None:
        with http_client(follow_redirects=False) as http:
            while (item := self._take()) is not None:
                delivery, path = item
                fate = self._send(http, self.service.base_url + path)
                with self._lock:
                    if fate == "acked":
                        self.fates.acked.add(delivery)
                    elif fate == "in_doubt":
                        self.fates.in_doubt.add(delivery)
                    elif fate == "refused":
                        self.fates.refused.add(delivery)
                    else:
                        self.fates.wrong.append((delivery, fate))
                if self.pace:
                    time.sleep(self.pace)

    @staticmethod
    def _send(http: httpx.Client, url: str, patience: float = 30.0) -> str | int:
        """One request; a refused connection (the server is restarting) never reached
        the server, so the same request is safely tried again for ``patience`` s."""
        deadline = time.monotonic() + patience
        while True:
            try:
                response = http.get(url)
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    return "refused"
                time.sleep(0.05)
                continue
            except httpx.HTTPError:
                return "in_doubt"
            return "acked" if response.status_code in OK_STATUSES else response.status_code


@dataclass
class Landed:
    deliveries: set[int]
    duplicates: int
    rows: int


def landed(dsn: str, campaign: int) -> Landed:
    rows = query(dsn, "SELECT delivery_id, count(*) AS n FROM events WHERE campaign = $1"
                      " GROUP BY delivery_id", campaign)
    return Landed({r["delivery_id"] for r in rows}, sum(r["n"] - 1 for r in rows),
                  sum(r["n"] for r in rows))


def wait_drained(dsn: str, campaign: int, expect: Callable[[Landed], bool],
                 timeout: float = 60) -> tuple[Landed, float]:
    """Poll until ``expect`` holds for what landed; (what landed, seconds it took)."""
    started = time.monotonic()
    result: list[Landed] = []

    def check() -> bool:
        result[:] = [landed(dsn, campaign)]
        return expect(result[0])

    with contextlib.suppress(AssertionError):  # the caller's assertions say what is missing
        wait_for(check, timeout, interval=0.1)
    return result[0], time.monotonic() - started


@dataclass
class Row:
    """One line of the chaos table."""

    scenario: str
    sent: int
    acknowledged: int
    landed: int
    duplicates: int
    drain_seconds: float
    note: str = ""

    HEADER = ("scenario", "sent", "acknowledged", "landed", "duplicates", "time to drain")

    def cells(self) -> tuple[str, ...]:
        return (self.scenario, str(self.sent), str(self.acknowledged), str(self.landed),
                str(self.duplicates), f"{self.drain_seconds:.2f} s")


def table(rows: list[Row]) -> str:
    cells = [Row.HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(Row.HEADER))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.scenario}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + notes)


# -- breaking and healing PostgreSQL ---------------------------------------------------

def stop_postgres(pgdata: Path, mode: str = "fast") -> None:
    from tracker.embedded import pg_ctl_stop

    pg_ctl_stop(pgdata, mode)


def start_postgres(pgdata: Path) -> str:
    """Start the embedded server again and return its DSN.

    In a fresh interpreter: pgserver caches one server object per data directory
    in the process that first started it, and would hand that back without
    starting anything."""
    code = ("import sys; from pathlib import Path; from tracker.embedded import start_embedded;"
            " print(start_embedded(Path(sys.argv[1]), stop_at_exit=False))")
    done = subprocess.run([sys.executable, "-c", code, str(pgdata)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"could not restart PostgreSQL in {pgdata}:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


# -- metrics -------------------------------------------------------------------------

def metric(service: Service, name: str) -> float:
    """One unlabelled sample from /metrics (0 when absent)."""
    with service.api() as http:
        text = http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- the scenarios -------------------------------------------------------------------

@dataclass
class Result:
    row: Row
    fates: Fates
    landed: Landed
    seen: dict[str, float] = field(default_factory=dict)  # figures observed on the way


def _finish(name: str, service: Service, load: Load, healed_at: float, *,
            drain_timeout: float = 60, note: str = "") -> Result:
    fates = load.join()
    expect_all = fates.acked

    def complete(now: Landed) -> bool:
        return expect_all <= now.deliveries

    now, _ = wait_drained(service.dsn, load.campaign, complete, drain_timeout)
    drain = time.monotonic() - healed_at
    row = Row(name, load.sent, len(fates.acked), now.rows, now.duplicates, drain, note)
    return Result(row, fates, now)


def sigkill_restarts(service: Service, *, count: int = 1200, kills: int = 3,
                     concurrency: int = 8) -> Result:
    """Scenario 1: SIGKILL the whole service (every worker) mid-load, restart it on
    the same data directory and database, ``kills`` times."""
    load = Load(service, "chaos-sigkill", count, concurrency=concurrency).start()
    healed_at = time.monotonic()
    for k in range(1, kills + 1):
        load.wait_acked(count * k // (kills + 1))
        service.kill()
        service.start()
        healed_at = time.monotonic()
    result = _finish(f"SIGKILL x{kills}, restart", service, load, healed_at)
    result.row.note = (f"{kills} kills; {len(result.fates.in_doubt)} in doubt (sent, "
                       "connection cut by the kill: may land or not)")
    return result


def postgres_outage(service: Service, pgdata: Path, *, outage: float, count: int,
                    mode: str = "fast", concurrency: int = 8) -> Result:
    """Scenarios 2 and 3: stop PostgreSQL (``fast``: a clean stop; ``immediate``: a
    crash, whatever transaction or COPY is open is cut) for ``outage`` seconds."""
    span = outage + 3.0  # load before, during and after the outage
    pace = concurrency * span / count
    load = Load(service, f"chaos-pg-{mode}", count, concurrency=concurrency, pace=pace).start()
    seen: dict[str, float] = {}
    load.wait_acked(count // 6)
    try:
        stop_postgres(pgdata, mode)
        seen["acked_at_break"] = len(load.fates.acked)
        time.sleep(outage)
        with service.client() as http:
            health = http.get("/healthz").json()
        seen["backlog_bytes_at_heal"] = health["journal_backlog_bytes"]
        seen["database_seen_down"] = float(health["database"] == "unreachable")
        seen["acked_during_outage"] = len(load.fates.acked) - seen["acked_at_break"]
        seen["wrong_during_outage"] = len(load.fates.wrong)
    finally:
        start_postgres(pgdata)
    healed_at = time.monotonic()
    name = ("PostgreSQL stopped %.0f s" if mode == "fast"
            else "PostgreSQL killed (immediate) %.0f s") % outage
    result = _finish(name, service, load, healed_at)
    result.seen = seen
    result.row.note = (f"{seen['acked_during_outage']:.0f} answered during the outage, "
                       f"journal backlog {seen['backlog_bytes_at_heal']:.0f} B at heal")
    return result


def journal_full(service: Service, pgdata: Path, *, outage: float, count: int,
                 after: int = 100, concurrency: int = 8) -> Result:
    """Scenario 4: the journal's cap (TRACKER_JOURNAL_MAX_BYTES) fills while PostgreSQL
    is away; hits keep being answered and the lost ones counted; once the backlog
    drains, events are kept again. Rows are compared with the journaled count."""
    later = Load(service, "chaos-full-after", after, concurrency=concurrency)
    span = outage + 1.0
    load = Load(service, "chaos-full", count, concurrency=concurrency,
                pace=concurrency * span / count).start()
    seen: dict[str, float] = {}
    load.wait_acked(count // 10)
    try:
        stop_postgres(pgdata)
        time.sleep(outage)
        seen["dropped_while_full"] = metric(service, "tracker_events_dropped_total")
    finally:
        start_postgres(pgdata)
    healed_at = time.monotonic()
    load.join()
    # everything journaled lands, and then there is room again
    journaled = metric(service, "tracker_events_journaled_total")
    now, _ = wait_drained(service.dsn, load.campaign, lambda n: n.rows >= journaled, 60)
    drain = time.monotonic() - healed_at
    wait_for(lambda: metric(service, "tracker_journal_backlog_bytes") == 0, 30)
    later.start().join()
    after_landed, _ = wait_drained(service.dsn, later.campaign,
                                   lambda n: later.fates.acked <= n.deliveries, 30)
    seen.update(
        journaled=journaled,
        accepted=metric(service, "tracker_events_accepted_total"),
        dropped=metric(service, "tracker_events_dropped_total"),
        journaled_after=metric(service, "tracker_events_journaled_total") - journaled,
        after_landed=after_landed.rows, after_acked=len(later.fates.acked),
    )
    row = Row("journal full (cap), freed", load.sent, len(load.fates.acked), now.rows,
              now.duplicates, drain,
              f"{seen['dropped']:.0f} dropped and counted, {journaled:.0f} journaled; "
              f"after recovery {after_landed.rows}/{after} landed")
    return Result(row, load.fates, now, seen)


# -- the shipper process -------------------------------------------------------------

def shipper_processes(service: Service) -> list[int]:
    """Live ``tracker ship`` processes of the service's process group."""
    assert service.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # state Z: a dead shipper not yet reaped by its serving process
        shipper = b"\0tracker.shipper\0" in cmdline or b"\0ship\0" in cmdline
        if int(stat[2]) == service.process.pid and stat[0] != "Z" and shipper:
            found.append(int(entry.name))
    return found


def shipper_kills(service: Service, *, count: int = 1200, kills: int = 3,
                  concurrency: int = 8) -> Result:
    """Scenario 5: SIGKILL the shipper process (only it) mid-load, ``kills`` times; a
    serving process starts another within about a second each time."""
    load = Load(service, "chaos-shipper", count, concurrency=concurrency,
                pace=concurrency * 6.0 / count).start()
    killed: list[int] = []
    healed_at = time.monotonic()
    for k in range(1, kills + 1):
        load.wait_acked(count * k // (kills + 1))
        pids = wait_for(lambda: shipper_processes(service), 10)
        assert len(pids) == 1, f"one shipper per data directory, found {pids}"
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])
        wait_for(lambda: [p for p in shipper_processes(service) if p not in killed], 10)
        healed_at = time.monotonic()
    result = _finish(f"shipper SIGKILL x{kills}", service, load, healed_at)
    result.row.note = f"{kills} shippers killed, each replaced by a serving process"
    return result
