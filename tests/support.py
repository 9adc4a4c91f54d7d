"""Test support: a real PostgreSQL, fresh databases, and the real service over HTTP.

Nothing here is a mock. ``Service`` starts ``python -m tracker serve`` as a child
process against its own database and speaks HTTP to it; tests then read the rows
that landed straight from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tracker.migrate import migrate_url

ROOT = Path(__file__).resolve().parent.parent
#: The project's shared folder beside the repository (``../shared``): the upstream email
#: corpus, API.md and seeds. Only this project's own machines have it; a clone alone
#: does not, so tests reach it through ``shared()``, which skips instead of failing.
SHARED = ROOT.parent / "shared"
SECRET_KEYS = "test-key-newest-0123456789,test-key-older-0123456789"
API_KEY = "test-api-key-0123456789"


def shared(*parts: str) -> Path:
    """``../shared/<parts>``, or skip the calling test (or module) saying what is missing.

    Whatever the shared folder adds is checked in addition to what the repository's
    own data (``tests/data/``) checks, so a clone on its own still passes."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing (the shared folder beside the repository, present on "
                    "the project's own machines and in CI)")
    return path


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one SQL statement against ``dsn`` and return its rows (sync, for tests)."""
    return run(fetch(dsn, sql, *args))


def scalar(dsn: str, sql: str, *args: Any) -> Any:
    rows = query(dsn, sql, *args)
    return rows[0][0] if rows else None


async def throwaway_settings(server_dsn: str) -> None:
    """Settings for a server whose data is thrown away after the run: nothing waits
    for the disk (no fsync, no full-page images) and the WAL kept between checkpoints
    stays small. What a query returns is unchanged, and so is what survives a crash of
    PostgreSQL itself (the chaos tests stop it with ``immediate``): a commit still
    writes its WAL before it returns (``synchronous_commit`` stays on), only no longer
    waits for the disk to have it, which matters only if the machine itself crashes."""
    conn = await asyncpg.connect(server_dsn)
    try:
        for setting, value in (("fsync", "off"), ("full_page_writes", "off"),
                               ("max_wal_size", "'256MB'")):
            await conn.execute(f"ALTER SYSTEM SET {setting} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


class Databases:
    """Creates a migrated template once, then one fresh database per request."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.template = f"tracker_tmpl_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        run(self._create(self.template, template=None))
        run(migrate_url(with_database(server_dsn, self.template)))

    async def _create(self, name: str, template: str | None) -> None:
        conn = await asyncpg.connect(self.server_dsn)
        try:
            clause = f" TEMPLATE {template}" if template else ""
            await conn.execute(f"CREATE DATABASE {name}{clause}")
        finally:
            await conn.close()

    def fresh(self) -> str:
        name = f"tracker_t_{uuid.uuid4().hex[:12]}"
        run(self._create(name, self.template))
        self.created.append(name)
        return with_database(self.server_dsn, name)

    def drop_all(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(self.server_dsn)
            try:
                for name in [*self.created, self.template]:
                    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

        run(drop())


#: The one TLS context of the tests' HTTP clients. httpx otherwise makes one for every
#: client, loading the CA bundle each time: ~25 ms of CPU for a client that then speaks
#: plain HTTP to 127.0.0.1 (a few hundred clients a run).
TLS_CONTEXT = ssl.create_default_context()


def http_client(**kwargs: Any) -> httpx.Client:
    """An httpx client for the tests' services (30 s timeout unless told)."""
    kwargs.setdefault("verify", TLS_CONTEXT)
    kwargs.setdefault("timeout", 30)
    return httpx.Client(**kwargs)


def healthz_status(port: int, timeout: float = 1) -> int | None:
    """The status of ``GET /healthz`` on 127.0.0.1:``port``, or None while nothing
    answers there. A bare ``http.client`` request: waiting for a service polls this
    every 20 ms, and an httpx request (a new client each) would cost ~25 ms a poll."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """The real tracker in a child process, on its own port, data dir and database."""

    def __init__(self, dsn: str, data_dir: Path, *, workers: int = 1,
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.dsn = dsn
        self.data_dir = data_dir
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_key = API_KEY
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / f"service-{self.port}.log"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TRACKER_DATABASE_URL": self.dsn,
            "TRACKER_DATA_DIR": str(self.data_dir),
            "TRACKER_SECRET_KEYS": SECRET_KEYS,
            "TRACKER_API_KEY": API_KEY,
            "TRACKER_PUBLIC_URL": self.base_url,
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tracker exited at start:\n{self.log()}")
            if healthz_status(self.port) == 200:
                return self
            time.sleep(0.02)  # a start takes ~0.5 s: a coarse poll would add up to 0.1 s each
        raise RuntimeError(f"tracker did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Signal the whole process group (workers too) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def client(self, **kwargs: Any) -> httpx.Client:
        return http_client(base_url=self.base_url, **kwargs)

    def api(self) -> httpx.Client:
        """An HTTP client that sends the API key."""
        return self.client(headers={"Authorization": f"Bearer {API_KEY}"})

    def cli(self, *args: str, input: str | bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run ``tracker ARGS`` with this service's configuration."""
        result = subprocess.run(
            [sys.executable, "-m", "tracker", *args], env=self.env, capture_output=True,
            input=input.encode() if isinstance(input, str) else input, timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tracker {' '.join(args)} failed:\n{result.stderr.decode()}")
        return result


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


async def _prepare_delivery(dsn: str, campaign_id: str, task: str, user: str,
                            channel: str, is_test: bool) -> tuple[int, int, int]:
    from tracker.store import campaigns, deliveries
    from tracker.tokens import CHANNELS_BY_NAME

    conn = await asyncpg.connect(dsn)
    try:
        campaign = await campaigns.ensure_campaign(conn, campaign_id, channel)
        task_id = await campaigns.ensure_schedule_task(conn, campaign.id, task)
        delivery_id = await campaigns.DeliveryIds().mint(conn)
        await deliveries.record_prepared(conn, [deliveries.PreparedDelivery(
            delivery_id, campaign.id, task_id, CHANNELS_BY_NAME[channel], user, True, is_test)])
        return delivery_id, campaign.id, task_id
    finally:
        await conn.close()


def mint_url(service: Service, purpose: str, *, url: str = "", position: int = 0,
             campaign: str = "c1", task: str = "t1", user: str = "u1", channel: str = "email",
             is_test: bool = False, keys: str = SECRET_KEYS) -> str:
    """Record a delivery in the service's database and return a signed tracking URL
    for it, exactly as the send side would."""
    from tracker.tokens import CHANNELS_BY_NAME, Purpose, TokenCodec, TokenData

    delivery_id, campaign_id, task_id = run(
        _prepare_delivery(service.dsn, campaign, task, user, channel, is_test))
    codec = TokenCodec(keys.split(","))
    kind = {"open": Purpose.OPEN, "click": Purpose.CLICK, "unsubscribe": Purpose.UNSUBSCRIBE}
    token = codec.mint(kind[purpose], TokenData(
        delivery_id, campaign_id, task_id, CHANNELS_BY_NAME[channel], is_test, position, url))
    path = {"open": "o", "click": "c", "unsubscribe": "u"}[purpose]
    return f"{service.base_url}/{path}/{token}"


def event_count(dsn: str, kind: int | None = None) -> int:
    if kind is None:
        return scalar(dsn, "SELECT count(*) FROM events")
    return scalar(dsn, "SELECT count(*) FROM events WHERE kind = $1", kind)
