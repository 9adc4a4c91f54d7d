"""The local Citus cluster (``tracker cluster``): built, started, used and torn down.

The build-heavy tests are ``slow``: the first run on a machine builds Citus (about
half a minute on 2 cores, cached after); later runs start and stop clusters in a
couple of seconds each. Without Citus's source or a compiler they skip, saying why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cluster_support import (  # noqa: F401
    citus_cluster,
    cluster_folder,
    skip_unless_available,
)
from tests.support import query, scalar
from tracker.cli import main
from tracker.cluster import node, nodes
from tracker.cluster.errors import ClusterError
from tracker.cluster.nodes import Cluster
from tracker.cluster.source import SOURCE_VARIABLE


def _processes_mentioning(folder: Path) -> list[int]:
    """Pids of live processes whose command line names ``folder`` (a node's postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in cmdline and node.alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _tracker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracker", *args], capture_output=True,
                          text=True, timeout=600)


def test_up_without_source_says_where_to_put_it(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    result = CliRunner().invoke(main, ["cluster", "up", "--dir", str(folder)],
                                env={SOURCE_VARIABLE: str(tmp_path / "no-such-citus.tar.gz")})
    assert result.exit_code == 1
    assert SOURCE_VARIABLE in result.output and "tar.gz" in result.output
    assert not folder.exists()


def test_status_without_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["cluster", "status", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "tracker cluster up" in result.output


@pytest.mark.slow
def test_up_then_down_through_the_cli_leaves_nothing_running() -> None:
    skip_unless_available()
    with cluster_folder() as folder:
        try:
            started = _tracker("cluster", "up", "--dir", str(folder))
            assert started.returncode == 0, started.stderr
            name, dsn = started.stdout.strip().split("=", 1)
            assert name == "TRACKER_DATABASE_URL"
            workers = query(dsn, "SELECT nodeport FROM pg_dist_node "
                                 "WHERE groupid <> 0 AND isactive AND noderole = 'primary'")
            assert len(workers) == 2
            status = _tracker("cluster", "status", "--dir", str(folder))
            assert status.returncode == 0, status.stdout + status.stderr
            assert "active: 2" in status.stdout
            cluster = nodes.read(folder)
            assert cluster is not None and cluster.dsn == dsn
            pids = [pid for pid in cluster.pids().values() if pid is not None]
            assert len(pids) == 3
            stopped = _tracker("cluster", "down", "--dir", str(folder))
            assert stopped.returncode == 0, stopped.stderr
            assert [pid for pid in pids if node.alive(pid)] == []
            assert _processes_mentioning(folder) == []
            assert not folder.exists()
        finally:
            nodes.down(folder)


@pytest.mark.slow
def test_a_distributed_table_lands_rows_on_both_workers(citus_cluster: Cluster) -> None:  # noqa: F811
    dsn = citus_cluster.dsn
    query(dsn, "CREATE TABLE cluster_probe (campaign_id bigint, n int)")
    try:
        query(dsn, "SELECT create_distributed_table('cluster_probe', 'campaign_id')")
        query(dsn, "INSERT INTO cluster_probe SELECT g % 50, g FROM generate_series(1, 1000) g")
        assert scalar(dsn, "SELECT count(*) FROM cluster_probe") == 1000
        assert scalar(dsn, "SELECT count(*) FROM cluster_probe WHERE campaign_id = 7") == 20
        shards = query(dsn, "SELECT shard_name, nodeport FROM citus_shards "
                            "WHERE table_name = 'cluster_probe'::regclass")
        by_port: dict[int, list[str]] = {}
        for row in shards:
            by_port.setdefault(row["nodeport"], []).append(row["shard_name"])
        assert sorted(by_port) == sorted(worker.port for worker in citus_cluster.workers)
        landed = {}
        for worker in citus_cluster.workers:
            counts = " + ".join(f"(SELECT count(*) FROM {shard})" for shard in by_port[worker.port])
            landed[worker.name] = scalar(worker.dsn, f"SELECT {counts}")
        assert sum(landed.values()) == 1000
        assert all(count > 0 for count in landed.values()), landed
    finally:
        query(dsn, "DROP TABLE cluster_probe")


@pytest.mark.slow
def test_up_failing_halfway_leaves_nothing_running(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_unless_available()
    seen: list[int] = []

    async def refuse(cluster: Cluster) -> None:
        seen.extend(pid for pid in cluster.pids().values() if pid is not None)
        raise ClusterError("refused by the test")

    monkeypatch.setattr(nodes, "_join", refuse)
    with cluster_folder() as folder:
        with pytest.raises(ClusterError, match="refused by the test"):
            nodes.up(folder)
        assert len(seen) == 3
        assert [pid for pid in seen if node.alive(pid)] == []
        assert _processes_mentioning(folder) == []
        assert not folder.exists()

