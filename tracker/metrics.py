"""Prometheus metrics (prometheus_client: the reference client, well kept).

Counters live in module globals because the hot path must not look them up.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("tracker_requests_total", "Tracking requests by endpoint and status",
                   ["endpoint", "status"])
EVENTS_ACCEPTED = Counter("tracker_events_accepted_total", "Hits with a valid token to record")
EVENTS_JOURNALED = Counter("tracker_events_journaled_total", "Events durable in the journal")
EVENTS_DROPPED = Counter("tracker_events_dropped_total",
                         "Events that could not be journaled (disk full, I/O error)")
EVENTS_LANDED = Counter("tracker_events_landed_total", "Events committed to PostgreSQL")
JOURNAL_BACKLOG = Gauge("tracker_journal_backlog_bytes", "Journal bytes not yet shipped")
BATCH_SIZE = Histogram("tracker_ship_batch_events", "Events per shipped batch",
                       buckets=(1, 10, 100, 1000, 5000, 20000))
COPY_SECONDS = Histogram("tracker_ship_seconds", "Time to land one batch (COPY and commit)")
DATABASE_ERRORS = Counter("tracker_database_errors_total", "Failed attempts to reach PostgreSQL")

OPEN_OK = REQUESTS.labels("open", "200")
CLICK_OK = REQUESTS.labels("click", "302")
CLICK_BAD = REQUESTS.labels("click", "404")
