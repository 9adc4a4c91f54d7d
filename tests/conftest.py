"""Fixtures: one PostgreSQL per test run (embedded, or TRACKER_TEST_DATABASE_URL),
a fresh database per test or module, and the real service over HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Databases, Service, run, throwaway_settings

#: Room the embedded server's data needs on a memory file system for it to be used:
#: a full run creates a few hundred small databases (about 1 GB with their WAL).
PG_MEMORY_NEEDED = 4 << 30


def pg_data_parent() -> str | None:
    """Where the run's embedded PostgreSQL data goes: ``/dev/shm`` when it exists and
    has room, unless TMPDIR names a temp dir; otherwise the system temp dir (None).

    In memory because the run creates and throws away a few hundred databases: on a
    disk (especially one mounted with ``discard``) initdb's sync, each CREATE DATABASE
    and removing the directory at the end cost far more than the tests themselves.
    TMPDIR wins so a caller that confines a run to one folder (.ci/run's newcomer
    check) keeps it there."""
    if os.environ.get("TMPDIR"):
        return None
    shm = Path("/dev/shm")
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    if os.access(shm, os.W_OK) and stat.f_bavail * stat.f_frsize >= PG_MEMORY_NEEDED:
        return str(shm)
    return None


@contextlib.contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A new folder for PostgreSQL data (see ``pg_data_parent``), readable by the
    unprivileged ``pgserver`` user that runs PostgreSQL when tests run as root
    (pytest's own temp dirs are private to their owner, which initdb cannot enter);
    removed after."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=pg_data_parent()))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_data_dir() -> Iterator[Path | None]:
    """Where the run's embedded PostgreSQL keeps its data (None for an external server).

    A directory of its own (see ``pg_data_parent``), readable by the unprivileged
    ``pgserver`` user that runs PostgreSQL when tests run as root (pytest's own
    temp dirs are private to their owner, which initdb cannot enter)."""
    if os.environ.get("TRACKER_TEST_DATABASE_URL"):
        yield None
        return
    with server_folder("tracker-test-pg-") as root:
        yield root / "pgdata"


@pytest.fixture(scope="session")
def pg_server(pg_data_dir: Path | None) -> Iterator[str]:
    """DSN of a PostgreSQL server for the whole run; the embedded one is stopped after."""
    if pg_data_dir is None:
        yield os.environ["TRACKER_TEST_DATABASE_URL"]
        return
    from tracker.embedded import pg_ctl_stop, start_embedded

    dsn = start_embedded(pg_data_dir)
    run(throwaway_settings(dsn))
    try:
        yield dsn
    finally:
        # "immediate": no shutdown checkpoint writing out every database the run
        # created (a minute at the end of a run), since the directory is removed next.
        pg_ctl_stop(pg_data_dir, mode="immediate")


@pytest.fixture(scope="session")
def databases(pg_server: str, pg_data_dir: Path | None) -> Iterator[Databases]:
    dbs = Databases(pg_server)
    try:
        yield dbs
    finally:
        # An embedded server's data directory is removed whole after it stops: dropping
        # its hundreds of databases one by one first would only cost time.
        if pg_data_dir is None and not os.environ.get(SERVER_OF_THE_RUN):
            dbs.drop_all()


@pytest.fixture(autouse=True)
def forget_known_partitions() -> None:
    """The landing code remembers which month partitions exist (one database per
    process in production); a test process lands into many databases (a fresh one per
    test, one per module), so every test starts with nothing remembered: a month
    another test's database has must not be taken for one this test's has."""
    from tracker.store import events

    events._known_months.clear()


@pytest.fixture
def database(databases: Databases) -> str:
    """A fresh, migrated database for one test."""
    return databases.fresh()


@pytest.fixture
def start_service(databases: Databases, tmp_path: Path) -> Iterator:
    """Start real services; every one is stopped at the end of the test."""
    started: list[Service] = []

    def start(dsn: str | None = None, **kwargs) -> Service:
        service = Service(dsn or databases.fresh(), tmp_path / f"data{len(started)}", **kwargs)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def module_service(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One real service (and database) shared by the tests of a module."""
    service = Service(databases.fresh(), tmp_path_factory.mktemp("svc")).start()
    try:
        yield service
    finally:
        service.stop()




# -- the fast loop on every core --------------------------------------------------------

#: Set (to the data directory) in the environment of pytest-xdist's workers when the
#: controller started the run's embedded PostgreSQL for them.
SERVER_OF_THE_RUN = "TRACKER_TEST_EMBEDDED_OF_THE_RUN"
_embedded_root = pytest.StashKey[Path]()


def workers_for_the_fast_loop(config: pytest.Config) -> int:
    """How many pytest-xdist workers ``pytest -m "not slow"`` runs on: one more than
    the cores (at most four), or 0 (one process) on one core, when xdist is missing,
    -n was given, or the run needs a single process (--pdb, --collect-only).

    One more than the cores because a test often waits: for a service it started to
    answer, for PostgreSQL, for a subprocess; the extra worker fills those waits.

    Only the fast loop: the full suite runs in one process, since its chaos tests stop
    and restart the one PostgreSQL every other test would be using."""
    option = config.option
    if hasattr(config, "workerinput") or os.environ.get("PYTEST_XDIST_WORKER"):
        return 0  # a worker runs its share in its own process, never workers of its own
    if (getattr(option, "markexpr", "") != "not slow" or not config.pluginmanager.hasplugin("xdist")
            or getattr(option, "numprocesses", None) is not None or option.usepdb
            or option.collectonly):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min((cores or 1) + 1, 4) if (cores or 1) > 1 else 0


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns -n into workers
def pytest_cmdline_main(config: pytest.Config) -> None:
    workers = workers_for_the_fast_loop(config)
    if workers:
        # Whole files per worker: a module's shared service starts once.
        config.option.numprocesses = workers
        config.option.dist = "loadfile"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the controller starts the run's one embedded PostgreSQL and
    its workers (which inherit the environment) use it as an external server, each
    with its own template and databases; the controller stops it at the end."""
    if (hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)
            or os.environ.get("TRACKER_TEST_DATABASE_URL")):
        return
    from tracker.embedded import start_embedded

    root = Path(tempfile.mkdtemp(prefix="tracker-test-pg-", dir=pg_data_parent()))
    root.chmod(0o755)
    config.stash[_embedded_root] = root
    dsn = start_embedded(root / "pgdata")
    run(throwaway_settings(dsn))
    os.environ["TRACKER_TEST_DATABASE_URL"] = dsn
    os.environ[SERVER_OF_THE_RUN] = str(root / "pgdata")


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_embedded_root, None)
    if root is None:
        return
    from tracker.embedded import pg_ctl_stop

    os.environ.pop("TRACKER_TEST_DATABASE_URL", None)
    os.environ.pop(SERVER_OF_THE_RUN, None)
    pg_ctl_stop(root / "pgdata", mode="immediate")
    shutil.rmtree(root, ignore_errors=True)
