"""``GET /v1/suppressions/{user_id}[?channel=email|push|line]``: is this user suppressed?

Answers ``{user_id, suppressed, reason, since, channel, channels}``. With
``channel`` the answer is about that channel only; without it, about any channel
(reason, since and channel are those of the oldest suppression, and ``channels``
lists every one), so a sender that keys users across channels can ask once.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker.api.bodies import BadRequest, error_response
from tracker.api.campaigns import check_id
from tracker.store import suppressions as store
from tracker.tokens import CHANNEL_NAMES, CHANNELS_BY_NAME, Channel


async def get_suppression(request: Request) -> JSONResponse:
    try:
        user_id = check_id(request.path_params["user_id"], "user_id")
        channel_name = request.query_params.get("channel")
        if channel_name is not None and channel_name not in CHANNELS_BY_NAME:
            raise BadRequest(422, "invalid", f"channel must be one of "
                             f"{', '.join(CHANNELS_BY_NAME)}, or left out for any channel; "
                             f"got {channel_name!r:.60}")
    except BadRequest as exc:
        return error_response(exc)
    async with request.app.state.pool.acquire() as conn:
        found = await store.suppressions_of(conn, user_id)
    if channel_name is not None:
        found = [f for f in found if f[0] == CHANNELS_BY_NAME[channel_name]]
    channels = [{"channel": CHANNEL_NAMES[Channel(c)], "reason": r, "since": s.isoformat()}
                for c, r, s in found]
    first = channels[0] if channels else {"channel": channel_name, "reason": None, "since": None}
    return JSONResponse({
        "user_id": user_id,
        "suppressed": bool(channels),
        "reason": first["reason"],
        "since": first["since"],
        "channel": first["channel"],
        "channels": channels,
    })


routes = [Route("/suppressions/{user_id:path}", get_suppression, methods=["GET"])]
