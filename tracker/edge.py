"""The hot path: ``/o/{token}`` (open pixel) and ``/c/{token}`` (click redirect).

A plain ASGI callable in front of the Starlette app. It serves the two tracking
endpoints itself with response messages built once at start, and passes every
other request on. Why not a Starlette route: routing plus Request/Response
objects cost about as much as everything else on this path together.

Neither endpoint reads the database: the signed token says everything. A valid,
non-test hit becomes an event in the journal, and the response is sent once the
journal has made it durable (the acknowledgement is the promise).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tracker import metrics
from tracker.domains import TrackingDomains
from tracker.events import Kind
from tracker.recorder import Recorder
from tracker.tokens import InvalidToken, Purpose, TokenCodec
from tracker.urls import to_location

#: The smallest transparent 1x1 GIF: 43 bytes.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

NOT_FOUND_PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Link not found</title>"
    b"<body style='font-family:sans-serif;margin:3em'><h1>This link is not valid</h1>"
    b"<p>The link may have been cut short or changed when it was copied. "
    b"Open it again from the original message.</p></body></html>"
)

_NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]
_PIXEL_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"image/gif"), (b"content-length", b"43"), *_NO_CACHE],
}
_PIXEL_BODY = {"type": "http.response.body", "body": PIXEL}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(NOT_FOUND_PAGE)).encode()),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
    ],
}
_NOT_FOUND_BODY = {"type": "http.response.body", "body": NOT_FOUND_PAGE}
_METHOD_NOT_ALLOWED = {
    "type": "http.response.start",
    "status": 405,
    "headers": [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"35")],
}
_METHOD_NOT_ALLOWED_BODY = {
    "type": "http.response.body", "body": b"only GET and HEAD are allowed here\n"}
_REDIRECT_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-length", b"0"),
]


class Edge:
    """ASGI middleware serving the tracking endpoints; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, codec: TokenCodec, recorder: Recorder | None,
                 domains: TrackingDomains | None = None) -> None:
        self.app = app
        self.codec = codec
        self.recorder = recorder
        #: hosts this tracker answers on; others are served and counted (None: no check)
        self.domains = domains

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/o/"):
                self._check_host(scope)
                await self._open(scope, send, path[3:])
                return
            if path.startswith("/c/"):
                self._check_host(scope)
                await self._click(scope, send, path[3:])
                return
        await self.app(scope, receive, send)

    async def _open(self, scope: Scope, send: Send, token: str) -> None:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await self._not_allowed(send)
            return
        if token.endswith(".gif"):
            token = token[:-4]
        try:
            data = self.codec.verify(Purpose.OPEN, token)
        except InvalidToken:
            data = None
        if data is not None and not data.is_test and self.recorder is not None:
            await self.recorder.record(scope["headers"], method, data, Kind.OPEN,
                                       client=scope.get("client"))
        metrics.OPEN_OK.value += 1
        await send(_PIXEL_START)
        await send(_PIXEL_BODY if method == "GET" else _EMPTY_BODY)

    async def _click(self, scope: Scope, send: Send, token: str) -> None:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await self._not_allowed(send)
            return
        try:
            data = self.codec.verify(Purpose.CLICK, token)
            location = to_location(data.url)
        except (InvalidToken, ValueError):
            metrics.CLICK_BAD.value += 1
            await send(_NOT_FOUND_START)
            await send(_NOT_FOUND_BODY if method == "GET" else _EMPTY_BODY)
            return
        if not data.is_test and self.recorder is not None:
            await self.recorder.record(scope["headers"], method, data, Kind.CLICK,
                                       data.link_position, data.url.encode("utf-8"),
                                       client=scope.get("client"))
        metrics.CLICK_OK.value += 1
        await send({
            "type": "http.response.start",
            "status": 302,
            "headers": [(b"location", location), *_REDIRECT_HEADERS],
        })
        await send(_EMPTY_BODY)

    def _check_host(self, scope: Scope) -> None:
        """Count a hit whose Host names neither the public URL nor a tracking domain:
        a frozenset lookup, no database (see tracker.domains for the staleness)."""
        domains = self.domains
        if domains is None:
            return
        for name, value in scope["headers"]:
            if name == b"host":
                if not domains.known(value):
                    metrics.UNKNOWN_HOST.value += 1
                return

    async def _not_allowed(self, send: Send) -> None:
        await send(_METHOD_NOT_ALLOWED)
        await send(_METHOD_NOT_ALLOWED_BODY)
