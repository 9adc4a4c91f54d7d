"""A short headless locust run of loadtests/locustfile.py against the real service.

Locust runs as a subprocess (it monkey-patches sockets with gevent, which must
not leak into this test process), on loopback only, for a few seconds. Every
successful hit the locustfile counts as recorded must be exactly one row in
PostgreSQL: opens, clicks, HEAD scans and unsubscribes alike, no more, no less.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support import ROOT, SECRET_KEYS, event_count, query, wait_for

pytestmark = pytest.mark.slow  # a locust load run

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# the same names as loadtests/locustfile.RECORDED (not imported: importing locust
# would monkey-patch this process)
OPENS = ("open", "open (image proxy)")
CLICKS = ("click", "scan HEAD", "scan GET")
UNSUBSCRIBES = ("unsubscribe POST",)


def run_locust(base_url: str, dsn: str, seconds: int = 4) -> dict[str, dict]:
    env = dict(os.environ, TRACKER_DATABASE_URL=dsn, TRACKER_SECRET_KEYS=SECRET_KEYS,
               LOAD_DELIVERIES="200", LOAD_CAMPAIGN="locust-test")
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "20",
         "-r", "20", "-t", f"{seconds}s", "--stop-timeout", "5", "--host", base_url,
         "--json", "--skip-log", "--only-summary"],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.stdout.strip(), f"locust printed no stats:\n{result.stderr[-3000:]}"
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def hits(stats: dict[str, dict], names: tuple[str, ...]) -> int:
    return sum(stats[n]["num_requests"] - stats[n]["num_failures"] for n in names if n in stats)


def test_headless_locust_run_lands_one_row_per_hit(start_service) -> None:
    service = start_service()
    stats = run_locust(service.base_url, service.dsn)

    failures = {name: s["num_failures"] for name, s in stats.items() if s["num_failures"]}
    assert not failures, f"locust saw failures: {failures}"
    for name in (*OPENS, *CLICKS):
        assert stats.get(name, {}).get("num_requests", 0) > 0, f"no {name!r} requests were made"

    served = hits(stats, OPENS + CLICKS + UNSUBSCRIBES)
    wait_for(lambda: event_count(service.dsn) >= served, timeout=15)
    time.sleep(0.5)  # anything beyond `served` would have landed by now too
    assert event_count(service.dsn) == served

    by_kind = {r["kind"]: r["n"] for r in query(
        service.dsn, "SELECT kind, count(*) AS n FROM events GROUP BY kind")}
    assert by_kind.get(1, 0) == hits(stats, OPENS)
    assert by_kind.get(2, 0) == hits(stats, CLICKS)
    assert by_kind.get(3, 0) == hits(stats, UNSUBSCRIBES)
    head_rows = query(service.dsn, "SELECT count(*) AS n FROM events WHERE flags & 1 = 1")
    assert head_rows[0]["n"] == hits(stats, ("scan HEAD",))
