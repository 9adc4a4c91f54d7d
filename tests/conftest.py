"""Fixtures: one PostgreSQL per test run (embedded, or TRACKER_TEST_DATABASE_URL),
a fresh database per test or module, and the real service over HTTP."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def pg_data_dir() -> Iterator[Path | None]:
    """Where the run's embedded PostgreSQL keeps its data (None for an external server).

    A directory of its own (see ``pg_data_parent``), readable by the unprivileged
    ``pgserver`` user that runs PostgreSQL when tests run as root (pytest's own
    temp dirs are private to their owner, which initdb cannot enter)."""
    if os.environ.get("TRACKER_TEST_DATABASE_URL"):
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="tracker-test-pg-", dir=pg_data_parent()))
    root.chmod(0o755)
    try:
        yield root / "pgdata"
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
        if pg_data_dir is None:
            dbs.drop_all()


@pytest.fixture
def database(databases: Databases) -> str:
    """A fresh, migrated database for one test.

    The landing code remembers which month partitions exist (one database per
    process in production); a test process lands into many databases, so each
    fresh one starts with nothing remembered."""
    from tracker.store import events

    events._known_months.clear()
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

