"""Observability: Prometheus metrics (prometheus_client: the reference client, well
kept) and the one-line log format.

Counters live in module globals because the hot path must not look them up. The
per-hit ones are ``Tally`` objects, plain integers bumped with ``.value += 1`` and
read by a collector at scrape time: prometheus_client's ``Counter.inc`` takes a lock,
and at three or four per hit that was a measurable share of the hot path.

Several workers: each uvicorn worker is its own process with its own counters, and a
scrape reaches whichever worker accepts it. We chose prometheus_client's standard
multiprocess mode, switched on by its own variable: set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory before ``tracker serve --workers N`` and every worker's
counters are summed at each scrape (gauges: the live workers' sum); ``tracker serve
--workers N`` (N > 1) sets it to an emptied directory under the data directory by
itself. In that mode each tally forwards every bump to a file-backed counter at once
(a scrape must see other workers' hits without delay). Unset (one worker, the
default), metrics stay in memory and cost nothing extra on the hot path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tracker.shipper_status import StatusCollector

#: prometheus_client's multiprocess mode (its own variable), fixed at import as it is
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Tally:
    """A counter for the hot path: ``tally.value += 1``, no lock (one event loop
    bumps it), read by ``_TallyCollector`` at scrape time."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class _ForwardingTally:
    """Multiprocess mode: the same ``.value += 1`` interface, every bump passed on to
    prometheus_client's file-backed counter, which the scraping worker reads."""

    __slots__ = ("_child", "_value")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, new: int) -> None:
        self._child.inc(new - self._value)
        self._value = new


#: (name, help, label names, {label values: tally}) of every tally, for the collector
_TALLIES: list[tuple[str, str, list[str], dict[tuple[str, ...], Tally]]] = []


def _tally(name: str, documentation: str, labelnames: tuple[str, ...] = (),
           *labelsets: tuple[str, ...]) -> list[Tally | _ForwardingTally]:
    """Tallies for ``name`` (one per label set, or one without labels)."""
    labelsets = labelsets or ((),)
    if MULTIPROCESS:
        counter = Counter(name, documentation, list(labelnames))
        return [_ForwardingTally(counter.labels(*ls) if ls else counter) for ls in labelsets]
    tallies = {ls: Tally() for ls in labelsets}
    _TALLIES.append((name, documentation, list(labelnames), tallies))
    return list(tallies.values())


class _TallyCollector:
    """Exposes the tallies as counters, under the names they always had."""

    def collect(self) -> Iterator[CounterMetricFamily]:  # prometheus_client's protocol
        for name, documentation, labelnames, tallies in _TALLIES:
            family = CounterMetricFamily(name.removesuffix("_total"), documentation,
                                         labels=labelnames)
            for labels, tally in tallies.items():
                family.add_metric(list(labels), tally.value)
            yield family


if not MULTIPROCESS:
    REGISTRY.register(_TallyCollector())

OPEN_OK, CLICK_OK, CLICK_BAD = _tally(
    "tracker_requests_total", "Tracking requests by endpoint and status", ("endpoint", "status"),
    ("open", "200"), ("click", "302"), ("click", "404"))
(EVENTS_ACCEPTED,) = _tally("tracker_events_accepted_total", "Hits with a valid token to record")
(EVENTS_JOURNALED,) = _tally("tracker_events_journaled_total", "Events durable in the journal")
(EVENTS_DROPPED,) = _tally("tracker_events_dropped_total",
                           "Events that could not be journaled (disk full, I/O error)")
(HITS_HELD_BACK,) = _tally("tracker_hits_held_back_total",
                          "Hits that first waited for PostgreSQL to catch up (F18)")
(UNKNOWN_HOST,) = _tally("tracker_unknown_host_hits_total",
                         "Open and click hits (served all the same) whose Host is neither "
                         "TRACKER_PUBLIC_URL's nor a configured tracking domain")
JOURNAL_BACKLOG_NAME = "tracker_journal_backlog_bytes"
JOURNAL_BACKLOG = Gauge(JOURNAL_BACKLOG_NAME,
                        "Journal bytes on disk not yet in PostgreSQL (own and adopted journals)",
                        multiprocess_mode="livesum")
JOURNAL_PENDING = Gauge("tracker_journal_pending_bytes",
                        "Bytes appended but not yet fsynced (bounded; hits wait past the bound)",
                        multiprocess_mode="livesum")
#: the shipper process's metrics (events landed, batch sizes and seconds, database up
#: and errors, journals adopted), read from its SHIPPER file at each scrape: it serves
#: no HTTP itself (tracker/shipper_status.py). Set by follow_shipper().
_shipper: StatusCollector | None = None


def follow_shipper(root: Path) -> None:
    """Export the metrics of the shipper of the journal root ``root`` (once per
    process: the one shipper's numbers, never summed over workers)."""
    global _shipper
    if _shipper is not None:
        _shipper.root = root  # a later app in the same process (tests): its root
        return
    _shipper = StatusCollector(root)
    if not MULTIPROCESS:
        REGISTRY.register(_shipper)


def set_journal_gauges(own_backlog: int, adopted_backlog: int, pending: int) -> None:
    """This process's journal gauges. The backlog of the journals the shipper adopted
    (stopped processes') belongs to no worker: with several workers it is added once
    at each scrape (``render``), since every worker's gauge would count it again."""
    JOURNAL_BACKLOG.set(own_backlog if MULTIPROCESS else own_backlog + adopted_backlog)
    JOURNAL_PENDING.set(pending)


class _AdoptedBacklogOnce:
    """The workers' summed journal backlogs plus the adopted journals', once."""

    def __init__(self, workers: Collector, adopted_backlog: int) -> None:
        self.workers = workers
        self.adopted_backlog = adopted_backlog

    def collect(self) -> Iterator[Metric]:
        for family in self.workers.collect():
            if family.name == JOURNAL_BACKLOG_NAME:
                family.samples = [s._replace(value=s.value + self.adopted_backlog)
                                  for s in family.samples]
            yield family


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: all workers' in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        status = _shipper.read() if _shipper is not None else None
        # prometheus_client leaves this constructor unannotated
        workers = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        registry.register(_AdoptedBacklogOnce(workers, status.adopted_backlog if status else 0))
        if _shipper is not None:
            registry.register(_shipper)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..."``: one line per record, greppable and
    parseable by log shippers (logfmt), a traceback folded into ``exc="..."``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} msg={_quote(record.getMessage())}")
        if record.exc_info:
            line += f" exc={_quote(self.formatException(record.exc_info))}"
        return line


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def configure_logging() -> None:
    """Give the ``tracker`` loggers their one-line format on stderr, at uvicorn's level
    (``tracker serve --log-level``), unless someone configured them already."""
    logger = logging.getLogger("tracker")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.getLogger("uvicorn.error").getEffectiveLevel())
    logger.propagate = False
