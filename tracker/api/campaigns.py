"""``PUT /v1/campaigns/{campaign_id}`` and reading campaigns back."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker.api.bodies import BadRequest, error_response, read_json, require_object
from tracker.domains import TrackingDomains, parse_tracking_domain
from tracker.rewrite.links import TRACKING_FULL, TRACKING_MODES
from tracker.store import campaigns as store

CHANNELS = ("email", "push", "line")
MAX_ID_LENGTH = 200


def check_id(value: object, field: str) -> str:
    """Sender ids: non-empty strings of at most MAX_ID_LENGTH characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(422, "invalid", f"{field} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise BadRequest(422, "invalid",
                         f"{field} must be at most {MAX_ID_LENGTH} characters, without NUL")
    return value


def _as_json(campaign: store.Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status,
        "settings": campaign.settings,
    }


async def put_campaign(request: Request) -> JSONResponse:
    try:
        campaign_id = check_id(request.path_params["campaign_id"], "campaign_id")
        body = require_object(await read_json(request, limit=1024 * 1024))
        name = body.get("name", campaign_id)
        if not isinstance(name, str) or len(name) > 1000:
            raise BadRequest(422, "invalid", "name must be a string of at most 1000 characters")
        channel = body.get("channel", "email")
        if channel not in CHANNELS:
            raise BadRequest(422, "invalid",
                             f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        status = body.get("status", "active")
        if not isinstance(status, str) or not status or len(status) > 50:
            raise BadRequest(422, "invalid", "status must be a non-empty string (e.g. active)")
        settings = body.get("settings", {})
        if not isinstance(settings, dict):
            raise BadRequest(422, "invalid", "settings must be a JSON object")
        if settings.get("tracking", TRACKING_FULL) not in TRACKING_MODES:
            raise BadRequest(422, "invalid", "settings.tracking must be one of "
                             f"{', '.join(TRACKING_MODES)}, not {settings['tracking']!r:.60}")
        if "tracking_domain" in settings:
            try:
                settings["tracking_domain"] = parse_tracking_domain(settings["tracking_domain"])
            except ValueError as exc:
                raise BadRequest(422, "invalid", str(exc)) from None
    except BadRequest as exc:
        return error_response(exc)
    async with request.app.state.pool.acquire() as conn:
        campaign = await store.upsert_campaign(conn, campaign_id, name=name, channel=channel,
                                               status=status, settings=settings)
        domains: TrackingDomains | None = getattr(request.app.state, "tracking_domains", None)
        if domains is not None and "tracking_domain" in settings:
            await domains.refresh(conn)  # this worker's edge knows the domain at once
    return JSONResponse(_as_json(campaign))


async def get_campaign(request: Request) -> JSONResponse:
    try:
        campaign_id = check_id(request.path_params["campaign_id"], "campaign_id")
    except BadRequest as exc:
        return error_response(exc)
    async with request.app.state.pool.acquire() as conn:
        campaign = await store.get_campaign(conn, campaign_id)
    if campaign is None:
        return error_response(BadRequest(404, "not_found",
                                         "no campaign with this id; create it with PUT first"))
    return JSONResponse(_as_json(campaign))


# ":path": a campaign id may hold "/" (sent as is or as %2F), like any sender id
routes = [
    Route("/campaigns/{campaign_id:path}", put_campaign, methods=["PUT"]),
    Route("/campaigns/{campaign_id:path}", get_campaign, methods=["GET"]),
]
