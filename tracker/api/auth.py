"""Bearer-key guard for everything under ``/v1`` (and the report pages' sign-in).

It wraps the whole ``/v1`` mount rather than decorating routes, so a new route
cannot be added without protection by forgetting a decorator.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def key_matches(given: str | bytes, expected: str) -> bool:
    """Constant-time comparison, so response timing leaks nothing about the key."""
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(given, expected.encode("utf-8"))


def bearer_key(scope: Scope) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return key.strip()
            return None
    return None


class RequireAPIKey:
    """ASGI wrapper answering 401 unless ``Authorization: Bearer <TRACKER_API_KEY>``."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = bearer_key(scope)
            if key is None or not key_matches(key, self.api_key):
                message = (
                    "missing API key: send the header 'Authorization: Bearer <TRACKER_API_KEY>'"
                    if key is None else
                    "wrong API key: use the key printed at start or set in TRACKER_API_KEY"
                )
                response = JSONResponse(
                    {"error": "unauthorized", "detail": message}, status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="tracker"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
