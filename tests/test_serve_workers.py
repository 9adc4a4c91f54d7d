"""``tracker serve --workers N`` switches prometheus_client's multiprocess mode on by
itself (issue 7): a scrape, answered by whichever worker, sums every worker's hits,
and counters left by an earlier run are not summed in."""

from __future__ import annotations

from pathlib import Path

from tests.support import Service, mint_url, wait_for
from tests.test_metrics import samples


def test_two_workers_get_an_emptied_metrics_dir_and_scrapes_sum_them(
        start_service, tmp_path: Path) -> None:
    data_dir = tmp_path / "data0"  # where start_service puts its first service
    stale = data_dir / "prometheus" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier run")  # unreadable: a scrape would fail on it
    # "" is unset for both serve and prometheus_client: serve must choose the directory
    service: Service = start_service(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": ""})
    assert service.data_dir == data_dir
    assert not stale.exists()
    urls = [mint_url(service, "open", user=f"w{i}") for i in range(20)]
    for url in urls:
        with service.client() as http:  # a new connection each: both workers get some
            assert http.get(url).status_code == 200
    for _ in range(4):
        now = samples(service)
        assert now['tracker_requests_total{endpoint="open",status="200"}'] == 20
        assert now["tracker_events_journaled_total"] == 20
    wait_for(lambda: samples(service)["tracker_events_landed_total"] == 20, 10)
    assert len(list(stale.parent.glob("*.db"))) >= 2, "both workers write their own counters"
