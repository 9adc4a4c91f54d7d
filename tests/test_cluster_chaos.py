"""Chaos on a Citus cluster (issue 20): the real service lands through the coordinator
while the tracker is SIGKILLed or a worker node is stopped and started again; every
acknowledged hit lands, none twice (the scenarios of tests/test_chaos.py).

Slow; they share the session's cluster (tests/cluster_support.py), migrated once, and
skip saying why when Citus cannot be built here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.chaos_support import Load, Result, Row, sigkill_restarts, wait_drained
from tests.cluster_support import citus_cluster  # noqa: F401
from tests.support import Service, run, scalar
from tests.test_chaos import assert_exactly_once
from tracker.cluster import node
from tracker.cluster.nodes import Cluster
from tracker.migrate import migrate_url

pytestmark = pytest.mark.slow  # a cluster, a service under load, nodes stopped


@pytest.fixture(scope="module")
def dsn(citus_cluster: Cluster) -> str:  # noqa: F811
    run(migrate_url(citus_cluster.dsn))
    return citus_cluster.dsn


def test_sigkill_of_the_tracker_on_the_cluster_loses_and_duplicates_nothing(
        dsn: str, tmp_path: Path) -> None:
    service = Service(dsn, tmp_path / "data", workers=2).start()
    try:
        result = sigkill_restarts(service, count=600, kills=2)
    finally:
        service.stop()
    assert_exactly_once(result, in_doubt_allowed=True)
    assert len(result.fates.acked) >= 600 * 2 // 3


def _crash(worker: node.Node) -> None:
    """An immediate shutdown (SIGQUIT to the postmaster): a crash, whatever was open
    or prepared for two-phase commit is left to recovery."""
    pid = node.postmaster_pid(worker)
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 30
    while node.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not node.alive(pid)


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "crashed"])
def test_a_worker_down_mid_load_loses_and_duplicates_nothing(
        citus_cluster: Cluster, dsn: str, tmp_path: Path, crash: bool) -> None:  # noqa: F811
    """The worker holding the campaign's events stopped (or crashed) for 3 s under load:
    the hits are still answered (journaled), the shipper's batches fail while the shard
    is away and land once it is back. A crash may leave a batch prepared on the worker
    and committed on the coordinator: Citus commits it there when it recovers its
    two-phase commits (every citus.recover_2pc_interval, 60 s by default), and the
    journal's position, committed on the coordinator, keeps it from being shipped
    again."""
    service = Service(dsn, tmp_path / "data").start()
    count, outage, concurrency = 600, 3.0, 8
    try:
        load = Load(service, f"cluster-worker-{'crash' if crash else 'stop'}", count,
                    concurrency=concurrency, pace=concurrency * (outage + 3.0) / count)
        port = scalar(dsn, "SELECT nodeport FROM citus_shards WHERE shardid ="
                           " get_shard_id_for_distribution_column('events', $1::int)",
                      load.campaign)
        worker = next(w for w in citus_cluster.workers if w.port == port)
        load.start().wait_acked(count // 6)
        try:
            _crash(worker) if crash else node.stop(worker)
            acked_at_break = len(load.fates.acked)
            time.sleep(outage)
            acked_during = len(load.fates.acked) - acked_at_break
        finally:
            node.start(worker)
        healed_at = time.monotonic()
        fates = load.join()
        landed, _ = wait_drained(dsn, load.campaign,
                                 lambda now: fates.acked <= now.deliveries, 90)
        drain = time.monotonic() - healed_at
    finally:
        service.stop()
    name = f"Citus worker {'crashed' if crash else 'stopped'} {outage:.0f} s"
    result = Result(Row(name, load.sent, len(fates.acked), landed.rows, landed.duplicates, drain,
                        f"{acked_during} answered during the outage"), fates, landed)
    assert_exactly_once(result, in_doubt_allowed=False)
    assert acked_during > 20, "hits stalled while a worker was down"
    assert "cannot ship events to PostgreSQL" in service.log(), "the outage was not seen"
