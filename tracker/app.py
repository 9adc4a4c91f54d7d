"""Assembles the service: the edge in front, Starlette behind it, and the runtime
(pool, journal, the link to the shipper process) started and stopped by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from tracker import classify, memory, metrics
from tracker.api import campaigns, messages, openapi
from tracker.api import conversions as conversion_api
from tracker.api import outcomes as outcome_api
from tracker.api import reports as report_api
from tracker.api import ses as ses_api
from tracker.api import suppressions as suppression_api
from tracker.api import tracking_domains as tracking_domain_api
from tracker.api.auth import RequireAPIKey
from tracker.config import Settings, load_settings
from tracker.domains import TrackingDomains
from tracker.edge import Edge
from tracker.journal import Journal
from tracker.recorder import Recorder
from tracker.shipping import ShipperLink
from tracker.tokens import TokenCodec
from tracker.web import pages, unsubscribe

log = logging.getLogger("tracker")

#: /readyz fails once this many journal bytes wait for the database.
READY_BACKLOG_BYTES = 256 * 1024 * 1024


def v1_routes() -> list[BaseRoute]:
    """Every authenticated route, from the module that owns it."""
    return [*campaigns.routes, *messages.routes, *report_api.routes, *outcome_api.routes,
            *ses_api.routes, *conversion_api.routes, *suppression_api.routes,
            *openapi.routes, *tracking_domain_api.routes]


def public_routes() -> list[BaseRoute]:
    """Unauthenticated routes besides /o/ and /c/ (served by the edge)."""
    return [*unsubscribe.routes, *ses_api.public_routes, *pages.routes]


async def healthz(request: Request) -> JSONResponse:
    """Alive: answers at once without touching the database (a liveness probe must
    not fail, and the service must not be restarted, because PostgreSQL is down:
    hits keep being journaled). ``database`` is what the shipper process last saw.
    Public, so it shows nothing of the traffic (counts are on the guarded /metrics)."""
    shipper: ShipperLink = request.app.state.shipper
    return JSONResponse({
        "status": "ok",
        "database": "reachable" if shipper.database_up else "unreachable",
        "journal_backlog_bytes": shipper.backlog_bytes(request.app.state.journal),
    })


async def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers a query within a second and the journal backlog is
    below READY_BACKLOG_BYTES (past it, this instance is busy catching up)."""
    database = "reachable"
    try:
        async with request.app.state.pool.acquire(timeout=1) as conn:
            await conn.fetchval("SELECT 1", timeout=1)
    except Exception:  # noqa: BLE001 - any failure means "unreachable" here
        database = "unreachable"
    shipper: ShipperLink = request.app.state.shipper
    backlog = shipper.backlog_bytes(request.app.state.journal)
    ready = database == "reachable" and backlog < READY_BACKLOG_BYTES
    return JSONResponse({
        "status": "ready" if ready else "not_ready",
        "database": database,
        "journal_backlog_bytes": backlog,
        "journal_backlog_limit": READY_BACKLOG_BYTES,
    }, status_code=200 if ready else 503)


async def client_gone(request: Request, exc: Exception) -> Response:
    """A client that closed the connection mid-body (or stalled past the protocol's
    timeout): nothing was read, nothing is stored, and nobody is left to answer, so
    no traceback either."""
    return Response(status_code=400)


def _set_journal_gauges(state: State) -> None:
    metrics.set_journal_gauges(state.journal.backlog_bytes, state.shipper.adopted_backlog,
                               state.journal.pending_bytes)


async def _keep_journal_gauges(state: State) -> None:
    """With several workers a scrape sums every worker's last gauge values: each
    worker sets its own every second, not only when it answers a scrape."""
    while True:
        _set_journal_gauges(state)
        await asyncio.sleep(1)


async def metrics_endpoint_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Prometheus text format; behind the API key like everything not public."""
    _set_journal_gauges(scope["app"].state)
    body, content_type = metrics.render()
    response = Response(body, media_type=content_type)
    await response(scope, receive, send)


def create_app(settings: Settings | None = None) -> Edge:
    """Build the ASGI app. Usable as a uvicorn factory: ``tracker.app:create_app``."""
    settings = settings or load_settings()
    codec = TokenCodec(settings.secret_keys)
    journal = Journal(settings.journal_dir)
    recorder = Recorder(journal)
    domains = TrackingDomains(settings.public_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        metrics.configure_logging()
        dsn = settings.database_url
        if dsn is None:
            from tracker.embedded import start_embedded

            dsn = start_embedded(settings.data_dir / "pgdata")
        # min_size=0: the service starts, and keeps serving, with PostgreSQL down
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=8,
                                         max_inactive_connection_lifetime=60)
        journal.max_bytes = settings.journal_max_bytes
        journal.open()
        # shipping runs in a process of its own, so a batch never holds up a response
        # (one for every worker of this data directory: see tracker/shipping.py)
        shipper = ShipperLink(settings.journal_dir, dsn,
                              log_level=logging.getLevelName(log.getEffectiveLevel()).lower())
        metrics.follow_shipper(settings.journal_dir)
        app.state.settings = settings
        app.state.codec = codec
        app.state.pool = pool
        app.state.journal = journal
        app.state.recorder = recorder
        app.state.shipper = shipper
        app.state.tracking_domains = domains
        shipper.start()
        classify.warm()  # the crawler patterns, compiled while the shipper starts
        await shipper.wait_ready()
        refresher = asyncio.create_task(domains.keep_fresh(pool))
        gauges = (asyncio.create_task(_keep_journal_gauges(app.state))
                  if metrics.MULTIPROCESS else None)
        memory.freeze_startup()
        try:
            yield
        finally:
            refresher.cancel()
            if gauges is not None:
                gauges.cancel()
            # requests are finished: commit what they appended, hand the journal over
            # to the shipper (it finishes and removes it) and wait for it to be shipped
            await journal.close()
            journal.release()
            drained = await shipper.stop(journal)
            if drained:
                log.info("stopped: every accepted event is in PostgreSQL")
            else:
                log.warning("stopped with events still in the journal %s; the shipper ships "
                            "them when PostgreSQL is back, or the next start does",
                            journal.directory)
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()  # PostgreSQL is gone: do not hang the exit on it

    # a Router, not a Starlette: request.app must stay the outer app with its state
    # no trailing-slash redirects anywhere: Starlette builds them from the Host
    # header, which would let a stranger's request redirect to a host of his choice
    api = RequireAPIKey(Router(routes=v1_routes(), redirect_slashes=False), settings.api_key)
    metrics_guarded = RequireAPIKey(metrics_endpoint_app, settings.api_key)
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_guarded),  # an ASGI app as endpoint: no /metrics/ redirect
            Mount("/v1", app=api),
            *public_routes(),
        ],
        lifespan=lifespan,
        exception_handlers={ClientDisconnect: client_gone},
    )
    app.router.redirect_slashes = False
    edge = Edge(app, codec, recorder, domains)
    return edge
