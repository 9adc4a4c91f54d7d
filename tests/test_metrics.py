"""Issue 8 observability over HTTP: /metrics counts what happened, /healthz answers
while the database is down, /readyz does not, and log lines are one logfmt line each."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.chaos_support import start_postgres, stop_postgres
from tests.support import Service, mint_url, wait_for

NAMES = (
    "tracker_requests_total", "tracker_events_accepted_total", "tracker_events_journaled_total",
    "tracker_events_dropped_total", "tracker_events_landed_total",
    "tracker_journal_backlog_bytes", "tracker_journal_pending_bytes", "tracker_journals_adopted",
    "tracker_ship_batch_events_bucket", "tracker_ship_seconds_bucket",
    "tracker_database_errors_total", "tracker_database_up",
)
LOGFMT = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) logger=([\w.]+) '
                    r'msg="((?:[^"\\]|\\.)*)"( exc="(?:[^"\\]|\\.)*")?$')


def samples(service: Service) -> dict[str, float]:
    with service.api() as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_metrics_count_hits_journaled_and_landed(module_service: Service) -> None:
    before = samples(module_service)
    for name in NAMES:
        assert any(k.startswith(name) for k in before), f"{name} missing from /metrics"
    opens = [mint_url(module_service, "open", user=f"m{i}") for i in range(5)]
    click = mint_url(module_service, "click", url="https://example.com/m")
    with module_service.client() as http:
        for url in opens:
            assert http.get(url).status_code == 200
        assert http.get(click).status_code == 302
        assert http.get("/c/forged.token").status_code == 404

    def grew(name: str) -> float:
        return samples(module_service).get(name, 0) - before.get(name, 0)

    assert grew('tracker_requests_total{endpoint="open",status="200"}') == 5
    assert grew('tracker_requests_total{endpoint="click",status="302"}') == 1
    assert grew('tracker_requests_total{endpoint="click",status="404"}') == 1
    assert grew("tracker_events_accepted_total") == 6
    assert grew("tracker_events_journaled_total") == 6
    wait_for(lambda: grew("tracker_events_landed_total") == 6, 10)
    after = samples(module_service)
    assert after["tracker_events_dropped_total"] == 0
    assert after["tracker_ship_batch_events_sum"] - before.get(
        "tracker_ship_batch_events_sum", 0) == 6
    assert after["tracker_ship_seconds_count"] > before.get("tracker_ship_seconds_count", 0)
    assert after["tracker_database_up"] == 1
    wait_for(lambda: samples(module_service)["tracker_journal_backlog_bytes"] == 0, 10)


def test_healthz_and_readyz_need_no_key_and_report_the_backlog(module_service: Service) -> None:
    with module_service.client() as http:
        health = http.get("/healthz")
        ready = http.get("/readyz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["database"] == "reachable"
    assert ready.json()["journal_backlog_limit"] > 0


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("TRACKER_TEST_DATABASE_URL")),
                    reason="stops PostgreSQL: only the suite's embedded server may be stopped")
def test_database_down_alive_but_not_ready_counted_and_logged(
        start_service, pg_data_dir: Path) -> None:
    service: Service = start_service()
    url = mint_url(service, "open", user="while-down")
    errors_before = samples(service)["tracker_database_errors_total"]
    try:
        stop_postgres(pg_data_dir)
        with service.client() as http:
            assert http.get(url).status_code == 200  # journaled, shipped later
            started = time.monotonic()
            health = http.get("/healthz")
            assert health.status_code == 200 and time.monotonic() - started < 1
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {**ready.json(), "status": "not_ready",
                                    "database": "unreachable"}
            wait_for(lambda: http.get("/healthz").json()["database"] == "unreachable", 10)
        now = samples(service)
        assert now["tracker_database_errors_total"] > errors_before
        assert now["tracker_database_up"] == 0
        assert now["tracker_journal_backlog_bytes"] > 0
    finally:
        start_postgres(pg_data_dir)
    with service.client() as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, 20)
    wait_for(lambda: samples(service)["tracker_journal_backlog_bytes"] == 0, 20)
    service.stop()
    lines = [line for line in service.log().splitlines() if line.startswith("ts=")]
    parsed = [LOGFMT.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    messages = [(m.group(1), m.group(3)) for m in parsed]
    assert any(level == "error" and msg.startswith("cannot ship events to PostgreSQL")
               for level, msg in messages), messages
    assert any(level == "warning" and msg.startswith("database reachable again")
               for level, msg in messages), messages


@pytest.mark.slow
def test_multiprocess_mode_sums_every_workers_counters(start_service, tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, a scrape (answered by whichever worker)
    reports the hits of all workers."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    service: Service = start_service(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    assert_scrapes_sum_every_worker(service, metrics_dir, "mp")


def assert_scrapes_sum_every_worker(service: Service, metrics_dir: Path, prefix: str) -> None:
    """20 hits on fresh connections (so both workers get some); every scrape,
    whichever worker answers it, counts all 20, and each worker keeps its own file."""
    urls = [mint_url(service, "open", user=f"{prefix}{i}") for i in range(20)]
    for url in urls:
        with service.client() as http:  # a new connection each: both workers get some
            assert http.get(url).status_code == 200
    for _ in range(4):
        now = samples(service)
        assert now['tracker_requests_total{endpoint="open",status="200"}'] == 20
        assert now["tracker_events_journaled_total"] == 20
    wait_for(lambda: samples(service)["tracker_events_landed_total"] == 20, 10)
    assert len(list(metrics_dir.glob("*.db"))) >= 2, "both workers write their own counters"


@pytest.mark.slow  # stops PostgreSQL
def test_an_adopted_journals_backlog_counts_once_over_every_worker(
        start_service, pg_data_dir: Path, tmp_path: Path) -> None:
    """A journal left by a killed process and adopted by the data directory's shipper
    while PostgreSQL is down, beside a service of two workers: whichever worker
    answers the scrape, and after both have, tracker_journal_backlog_bytes counts its
    bytes once (as each worker's /healthz does), not once per worker."""
    first: Service = start_service()
    urls = [mint_url(first, "open", user=f"adopted{i}") for i in range(5)]
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    # the same data directory: its workers and the first one's share one shipper
    second = Service(first.dsn, first.data_dir, workers=2,
                     env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}).start()
    try:
        try:
            stop_postgres(pg_data_dir)
            with first.client() as http:
                assert all(http.get(url).status_code == 200 for url in urls)
            first.kill()  # its worker, and the shipper if it was the one that started it

            def adopted() -> int:
                with second.client() as http:
                    return int(http.get("/healthz").json()["journal_backlog_bytes"])

            backlog = wait_for(adopted, 20)
            scraped = {samples(second)["tracker_journal_backlog_bytes"]
                       for _ in range(8)}  # fresh connections: both workers answer some
            assert scraped == {backlog}
        finally:
            start_postgres(pg_data_dir)
        wait_for(lambda: samples(second)["tracker_journal_backlog_bytes"] == 0, 20)
    finally:
        second.stop()  # started by hand: start_service stops only its own
