"""The yardstick: a raw ASGI app answering exactly what the tracker answers, doing nothing.

``/o/...`` gets the same 43-byte GIF with the same headers as the tracker's pixel,
``/c/...`` the same 302 headers (to a fixed target), anything else 200 ``ok``
(so ``/healthz`` works). No token check, no journal, no database: the requests/s
of this app on the same server and core is the ceiling the tracker is held to
(issue 7: at least 0.85 of it). The bench compares its headers with the
tracker's at start, so the two cannot drift apart unnoticed.

Run: ``python loadtests/bare_app.py --port 8001 [--workers N]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
TARGET = b"https://shop.example/item/0?utm_source=tracker-load"

_PIXEL_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"image/gif"),
        (b"content-length", b"43"),
        (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"),
        (b"pragma", b"no-cache"),
        (b"expires", b"0"),
    ],
}
_PIXEL_BODY = {"type": "http.response.body", "body": PIXEL}
_REDIRECT_START = {
    "type": "http.response.start",
    "status": 302,
    "headers": [
        (b"location", TARGET),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-length", b"0"),
    ],
}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_OK_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_OK_BODY = {"type": "http.response.body", "body": b"ok"}


async def app(scope: dict, receive: Callable, send: Callable) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    head = scope["method"] == "HEAD"
    if path.startswith("/o/"):
        await send(_PIXEL_START)
        await send(_EMPTY_BODY if head else _PIXEL_BODY)
    elif path.startswith("/c/"):
        await send(_REDIRECT_START)
        await send(_EMPTY_BODY)
    else:
        await send(_OK_START)
        await send(_EMPTY_BODY if head else _OK_BODY)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="bare ASGI yardstick for the bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # the same server settings as `tracker serve`, so only the app differs
    uvicorn.run("bare_app:app", app_dir=str(Path(__file__).parent),
                host=args.host, port=args.port, workers=args.workers, log_level="warning",
                access_log=False, timeout_keep_alive=5, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
