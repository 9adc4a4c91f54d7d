"""``tracker serve --workers N`` switches prometheus_client's multiprocess mode on by
itself (issue 7): a scrape, answered by whichever worker, sums every worker's hits,
and counters left by an earlier run are not summed in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Service
from tests.test_metrics import assert_scrapes_sum_every_worker

pytestmark = pytest.mark.slow  # starts several worker processes


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
    assert_scrapes_sum_every_worker(service, stale.parent, "w")
