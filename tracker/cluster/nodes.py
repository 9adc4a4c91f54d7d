"""The local cluster: a coordinator and two workers in one directory.

``up`` makes and starts the three nodes, creates the citus extension on each and
registers the workers with the coordinator; ``down`` stops every node found in the
directory and removes it; ``status`` says what runs. The directory holds one data
directory per node and ``cluster.json`` (the nodes' ports), written before any node
is made, so that ``down`` can clean up after an ``up`` that failed or was killed
halfway. ``up`` itself stops and removes what it made when it fails.

Citus keeps its extension per database, so the cluster serves the ``postgres``
database of each node: the coordinator's DSN is the TRACKER_DATABASE_URL to use.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg

from tracker.cluster import install, node
from tracker.cluster.build import Progress
from tracker.cluster.errors import ClusterError
from tracker.cluster.node import Node

STATE_FILE = "cluster.json"
COORDINATOR = "coordinator"
WORKERS = ("worker1", "worker2")
NAMES = (COORDINATOR, *WORKERS)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Cluster:
    directory: Path
    nodes: tuple[Node, ...]

    @property
    def coordinator(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> tuple[Node, ...]:
        return self.nodes[1:]

    @property
    def dsn(self) -> str:
        return self.coordinator.dsn

    def pids(self) -> dict[str, int | None]:
        return {each.name: node.postmaster_pid(each) for each in self.nodes}


def read(directory: Path) -> Cluster | None:
    """The cluster described in ``directory``, if one was made there."""
    try:
        ports = json.loads((directory / STATE_FILE).read_text())["ports"]
    except (OSError, ValueError, KeyError):
        return None
    return Cluster(directory, tuple(Node(name, directory / name, int(ports[name]))
                                    for name in NAMES))


def up(directory: Path, *, progress: Progress = lambda _: None) -> Cluster:
    """Start the cluster in ``directory`` (building Citus first if needed), or return
    it if it already runs there."""
    directory = directory.resolve()
    existing = read(directory)
    if existing is not None:
        if all(existing.pids().values()):
            progress(f"the cluster in {directory} is already up")
            return existing
        raise ClusterError(
            f"{directory} holds a cluster that is not wholly running; remove it with "
            f"`tracker cluster down --dir {directory}`, then start again"
        )
    if directory.exists() and any(directory.iterdir()):
        raise ClusterError(
            f"{directory} is not empty and holds no cluster; give an empty or new folder "
            "with --dir"
        )
    install.prepare(progress=progress)
    cluster = _plan(directory)
    try:
        progress(f"starting a coordinator and two workers in {directory}")
        _each(node.init, cluster.nodes)
        _each(node.start, cluster.nodes)
        asyncio.run(_join(cluster))
    except BaseException:
        down(directory)
        raise
    return cluster


def down(directory: Path) -> list[int]:
    """Stop every node in ``directory`` and remove it; the pids stopped."""
    directory = directory.resolve()
    found = [Node(path.name, path, 0) for path in _data_dirs(directory)]
    pids = [pid for pid in _each(node.stop, found) if pid is not None]
    for each in found:
        shutil.rmtree(each.data_dir, ignore_errors=True)
    (directory / STATE_FILE).unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    return pids


async def registered_workers(cluster: Cluster) -> list[tuple[str, int, bool]]:
    """(host, port, active) of each worker the coordinator knows."""
    conn = await asyncpg.connect(cluster.dsn)
    try:
        rows = await conn.fetch("SELECT nodename, nodeport, isactive FROM pg_dist_node "
                                "WHERE groupid <> 0 ORDER BY nodeport")
    finally:
        await conn.close()
    return [(row["nodename"], row["nodeport"], row["isactive"]) for row in rows]


def _plan(directory: Path) -> Cluster:
    """Make the folder and choose the ports; written down before any node is made."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    node.make_reachable(directory)
    ports: list[int] = []
    while len(ports) < len(NAMES):
        port = node.free_port()
        if port not in ports:
            ports.append(port)
    state = {"ports": dict(zip(NAMES, ports, strict=True))}
    (directory / STATE_FILE).write_text(json.dumps(state) + "\n")
    cluster = read(directory)
    assert cluster is not None
    return cluster


async def _join(cluster: Cluster) -> None:
    """Create the extension on every node, then register the coordinator and workers."""
    await asyncio.gather(*(_execute(each, "CREATE EXTENSION IF NOT EXISTS citus")
                           for each in cluster.nodes))
    await _execute(cluster.coordinator, "SELECT citus_set_coordinator_host($1, $2)",
                   node.HOST, cluster.coordinator.port)
    for worker in cluster.workers:
        await _execute(cluster.coordinator, "SELECT citus_add_node($1, $2)",
                       node.HOST, worker.port)


async def _execute(target: Node, statement: str, *args: object) -> None:
    try:
        conn = await asyncpg.connect(target.dsn)
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise ClusterError(
            f"{statement} failed on {target.name} ({exc}); its log ends:\n{node.tail(target)}"
        ) from exc


def _data_dirs(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if (path / "PG_VERSION").is_file())


def _each(action: Callable[[T], R], items: tuple[T, ...] | list[T]) -> list[R]:
    """``action`` on every item at once (initdb, start and stop wait mostly on the
    servers), raising the first failure after all have finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(action, item) for item in items]
    return [future.result() for future in futures]
