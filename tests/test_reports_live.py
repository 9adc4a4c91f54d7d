"""End to end: real hits through the running service appear in the JSON report
within a second (F18), also while other hits keep arriving; and the CLI shows the
same figures as the API."""

from __future__ import annotations

import json
import statistics
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.support import Service, mint_url

pytestmark = pytest.mark.slow  # load: hits keep arriving while reports are read

#: a person's mail client, so the classifier counts the hits among people
BROWSER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) "
                         "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"}


def report(http, campaign: str) -> dict:
    today = datetime.now(UTC).date().isoformat()
    response = http.get(f"/v1/reports/campaigns/{campaign}", params={"from": today, "to": today})
    assert response.status_code == 200, response.text
    return response.json()


def test_f18_hits_are_in_the_report_within_a_second_under_load(start_service) -> None:
    service: Service = start_service()
    opens = [mint_url(service, "open", campaign="live", user=f"u{i}") for i in range(15)]
    clicks = [mint_url(service, "click", campaign="live", user=f"u{i}",
                       url=f"https://shop.example/{i % 3}") for i in range(15)]
    background = [mint_url(service, "open", campaign="noise", user=f"n{i}") for i in range(20)]
    stop = threading.Event()
    sent = [0]

    def noise() -> None:
        with service.client() as http:
            while not stop.is_set():
                http.get(background[sent[0] % len(background)])
                sent[0] += 1

    threads = [threading.Thread(target=noise) for _ in range(2)]
    for t in threads:
        t.start()
    latencies = []
    try:
        with service.api() as api, service.client(headers=BROWSER) as http:
            before = report(api, "live")
            for i, (open_url, click_url) in enumerate(zip(opens, clicks, strict=True)):
                assert http.get(open_url).status_code == 200
                assert http.get(click_url).status_code == 302
                answered = time.monotonic()
                while True:
                    r = report(api, "live")
                    if r["opens"] == (before["opens"] or 0) + i + 1 and r["clicks"] == i + 1:
                        break
                    assert time.monotonic() - answered < 1.0, f"not in the report within 1 s: {r}"
                    time.sleep(0.005)
                latencies.append(time.monotonic() - answered)
    finally:
        stop.set()
        for t in threads:
            t.join()
    ranking = report(service.api(), "live")["click_ranking"]
    assert sorted(r["url"] for r in ranking) == [f"https://shop.example/{i}" for i in range(3)]
    assert sum(r["clicks"] for r in ranking) == 15
    print(f"\nF18 event->report latency over {len(latencies)} hits with {sent[0]} background "
          f"hits: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    assert sent[0] > 0


def test_cli_report_matches_the_api(start_service) -> None:
    service: Service = start_service()
    with service.client(headers=BROWSER) as http:
        for i in range(3):
            assert http.get(mint_url(service, "click", campaign="cli", user=f"u{i}",
                                     url="https://=evil.example/")).status_code == 302
    today = datetime.now(UTC).date().isoformat()
    with service.api() as api:
        deadline = time.monotonic() + 5
        while report(api, "cli")["clicks"] != 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        api_report = report(api, "cli")
    out = service.cli("report", "campaign", "cli", "--from", today, "--to", today,
                      "--format", "json")
    assert json.loads(out.stdout) == api_report
    table = service.cli("report", "campaign", "cli", "--from", today, "--to", today).stdout
    assert b"clicks" in table and b"https://=evil.example/" in table
    csv_out = service.cli("report", "project", "--from", today, "--to", today, "--campaign",
                          "cli", "--format", "csv").stdout.decode()
    assert "clicks,3" in csv_out.replace("\r", "")
    bad = service.cli("report", "campaign", "cli", "--from", today, "--to", "2000-01-01",
                      check=False)
    assert bad.returncode != 0 and b"after" in bad.stderr
    missing = service.cli("report", "campaign", "nope", "--from", today, "--to", today,
                          check=False)
    assert missing.returncode != 0 and b"no campaign" in missing.stderr
