"""A local Citus cluster for tests: a coordinator and two workers, torn down after.

``local_cluster()`` starts one in a folder of its own (in memory when /dev/shm has
room, as the embedded server's data is; under TMPDIR when that is set) and always
stops it; ``citus_cluster`` is the session fixture made of it, and ``citus_dsn`` its
coordinator's DSN. A test module uses them with::

    from tests.cluster_support import citus_cluster, citus_dsn  # noqa: F401

Without Citus's source (``../shared/citus/`` or TRACKER_CITUS_SOURCE), or without a
compiler to build it when no build is cached, they skip and say what is missing.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import server_folder
from tracker.cluster import build, nodes
from tracker.cluster.errors import ClusterError
from tracker.cluster.nodes import Cluster
from tracker.cluster.source import find_source


def unavailable() -> str | None:
    """Why no cluster can be started here (None when one can)."""
    try:
        source = find_source()
    except ClusterError as exc:
        return str(exc)
    if build.cached(source) is None:
        missing = [tool for tool in build.BUILD_TOOLS if shutil.which(tool) is None]
        if missing:
            return (f"Citus is not built yet and building it needs {', '.join(missing)} "
                    "(Debian: apt-get install -y build-essential)")
    return None


def skip_unless_available() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


@contextlib.contextmanager
def cluster_folder() -> Iterator[Path]:
    """An empty folder for a cluster, readable by the unprivileged user the nodes run
    as under root (pytest's own temp dirs are private to their owner); removed after."""
    with server_folder("tracker-test-cluster-") as root:
        yield root / "cluster"


@contextlib.contextmanager
def local_cluster() -> Iterator[Cluster]:
    """A running cluster (Citus built first if no build is cached), stopped and
    removed when the block ends, however it ends."""
    with cluster_folder() as folder:
        try:
            yield nodes.up(folder)
        finally:
            nodes.down(folder)


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[Cluster]:
    skip_unless_available()
    with local_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def citus_dsn(citus_cluster: Cluster) -> str:
    """The coordinator's DSN: what TRACKER_DATABASE_URL is for a tracker on the cluster."""
    return citus_cluster.dsn
