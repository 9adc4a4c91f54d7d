"""What the shipper process tells the serving processes: the ``SHIPPER`` file.

One file per journal root (``<data>/journal/SHIPPER``) with two jobs:

* its ``flock`` says a shipper runs for this root (one at most: nothing is folded
  twice, whatever the number of workers; see tracker/shipping.py);
* its bytes carry the shipper's status and counters, which only a serving process
  can show (the shipper serves no HTTP): ``database_up`` for /healthz, the backlog
  of journals it adopted, and the metrics it used to export itself
  (``tracker_events_landed_total``, ``tracker_ship_batch_events``,
  ``tracker_ship_seconds``, ``tracker_database_errors_total``,
  ``tracker_database_up``, ``tracker_journals_adopted``), under the same names.

Counters carry over a shipper's restart (a new shipper starts from the numbers its
predecessor left), so they only ever grow for Prometheus. The shipper rewrites the
whole record with ``pwrite`` at most a few dozen times a second; a reader checks
the CRC at its end and reads again when it caught a write half-done.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

STATUS_NAME = "SHIPPER"
MAGIC = 0x53484950  # "SHIP"
#: upper bounds of the two histograms' buckets (+Inf implied), as they always were
BATCH_BUCKETS = (1, 10, 100, 1000, 5000, 20000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                   7.5, 10.0)
_HEAD = struct.Struct("<IIdQQQQQ")  # magic, pid, heartbeat, up, adopted, backlog, landed, errors
_BATCH = struct.Struct(f"<{len(BATCH_BUCKETS) + 1}QQ")  # bucket counts, sum of events
_SECONDS = struct.Struct(f"<{len(SECONDS_BUCKETS) + 1}Qd")  # bucket counts, sum of seconds
_CRC = struct.Struct("<I")
SIZE = _HEAD.size + _BATCH.size + _SECONDS.size + _CRC.size


@dataclass
class ShipperStatus:
    pid: int = 0
    heartbeat: float = 0.0  # time.time() of the last write
    database_up: bool = True
    adopted: int = 0  # journals of stopped processes being drained
    adopted_backlog: int = 0  # their bytes not yet in PostgreSQL
    landed: int = 0
    database_errors: int = 0
    batch_counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    batch_sum: int = 0
    seconds_counts: list[int] = field(
        default_factory=lambda: [0] * (len(SECONDS_BUCKETS) + 1))
    seconds_sum: float = 0.0

    def observe_batch(self, events: int, seconds: float) -> None:
        self.landed += events
        self.batch_counts[_bucket(BATCH_BUCKETS, events)] += 1
        self.batch_sum += events
        self.seconds_counts[_bucket(SECONDS_BUCKETS, seconds)] += 1
        self.seconds_sum += seconds

    def pack(self) -> bytes:
        body = (_HEAD.pack(MAGIC, self.pid, self.heartbeat, int(self.database_up),
                           self.adopted, self.adopted_backlog, self.landed,
                           self.database_errors)
                + _BATCH.pack(*self.batch_counts, self.batch_sum)
                + _SECONDS.pack(*self.seconds_counts, self.seconds_sum))
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def unpack(cls, data: bytes) -> ShipperStatus | None:
        if len(data) < SIZE:
            return None
        body, (crc,) = data[:SIZE - _CRC.size], _CRC.unpack_from(data, SIZE - _CRC.size)
        if zlib.crc32(body) != crc:
            return None
        magic, pid, beat, up, adopted, backlog, landed, errors = _HEAD.unpack_from(body)
        if magic != MAGIC:
            return None
        batch = _BATCH.unpack_from(body, _HEAD.size)
        seconds = _SECONDS.unpack_from(body, _HEAD.size + _BATCH.size)
        return cls(pid, beat, bool(up), adopted, backlog, landed, errors,
                   list(batch[:-1]), batch[-1], list(seconds[:-1]), seconds[-1])


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def open_status(root: Path) -> int:
    """The root's SHIPPER file, opened (created if need be) read-write."""
    root.mkdir(parents=True, exist_ok=True)
    return os.open(root / STATUS_NAME, os.O_RDWR | os.O_CREAT, 0o600)


def read_status(fd: int) -> ShipperStatus | None:
    """The last status written, or None (no shipper wrote one yet)."""
    for _ in range(8):
        data = os.pread(fd, SIZE, 0)
        if len(data) < SIZE:
            return None
        status = ShipperStatus.unpack(data)
        if status is not None:
            return status
        time.sleep(0.0001)  # a write half-done: read again
    return None


def write_status(fd: int, status: ShipperStatus) -> None:
    status.heartbeat = time.time()
    os.pwrite(fd, status.pack(), 0)


class StatusCollector:
    """The shipper's metrics, read from its SHIPPER file at each scrape (a serving
    process registers one; prometheus_client's collector protocol)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self) -> ShipperStatus | None:
        try:
            fd = os.open(self.root / STATUS_NAME, os.O_RDONLY)
        except OSError:
            return None
        try:
            return read_status(fd)
        finally:
            os.close(fd)

    def collect(self) -> Iterator[Metric]:
        s = self.read() or ShipperStatus()
        yield _counter("tracker_events_landed", "Events committed to PostgreSQL", s.landed)
        yield _counter("tracker_database_errors", "Failed attempts to reach PostgreSQL",
                       s.database_errors)
        up = GaugeMetricFamily("tracker_database_up", "1 while the shipper reaches PostgreSQL")
        up.add_metric([], float(s.database_up))
        yield up
        adopted = GaugeMetricFamily("tracker_journals_adopted",
                                    "Journals of stopped processes being drained")
        adopted.add_metric([], float(s.adopted))
        yield adopted
        yield _histogram("tracker_ship_batch_events", "Events per shipped batch",
                         BATCH_BUCKETS, s.batch_counts, float(s.batch_sum))
        yield _histogram("tracker_ship_seconds", "Time to land one batch (COPY and commit)",
                         SECONDS_BUCKETS, s.seconds_counts, s.seconds_sum)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _histogram(name: str, documentation: str, bounds: tuple[float, ...], counts: list[int],
               total: float) -> HistogramMetricFamily:
    cumulative, running = [], 0
    for bound, count in zip([*map(_le, bounds), "+Inf"], counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], cumulative, sum_value=total)
    return family


def _le(bound: float) -> str:
    return str(float(bound))
