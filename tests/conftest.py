"""Fixtures: one PostgreSQL per test run (embedded, or TRACKER_TEST_DATABASE_URL),
a fresh database per test or module, and the real service over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Databases, Service


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a PostgreSQL server for the whole run; the embedded one is stopped after."""
    external = os.environ.get("TRACKER_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from tracker.embedded import pg_ctl_stop, start_embedded

    pgdata = tmp_path_factory.mktemp("pg") / "pgdata"
    dsn = start_embedded(pgdata)
    try:
        yield dsn
    finally:
        pg_ctl_stop(pgdata)


@pytest.fixture(scope="session")
def databases(pg_server: str) -> Iterator[Databases]:
    dbs = Databases(pg_server)
    try:
        yield dbs
    finally:
        dbs.drop_all()


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
