"""``GET /v1/tracking-domains``: the tracking domains in use and their campaigns.

So an operator knows which host names must resolve to the tracker and which
certificates to keep (see README "Branded tracking domains and HTTPS"). Campaigns
without a ``tracking_domain`` use TRACKER_PUBLIC_URL and are not listed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker.store import campaigns as store


async def list_tracking_domains(request: Request) -> JSONResponse:
    async with request.app.state.pool.acquire() as conn:
        found = await store.tracking_domains(conn)
    return JSONResponse([{"domain": domain, "campaigns": campaigns}
                         for domain, campaigns in found.items()])


routes = [Route("/tracking-domains", list_tracking_domains, methods=["GET"])]
