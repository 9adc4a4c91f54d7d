"""The peers' design, for comparison: one INSERT and one commit per hit, inside the request.

The best-known open-source trackers verify the link, write the hit to the database
and only then answer. This app does exactly that with the tracker's own token
check and events table, through an asyncpg pool: each ``/o/`` or ``/c/`` hit is one
autocommitted ``INSERT INTO events`` (so one WAL flush) before the response. The
bench holds the tracker to at least 8x its requests/s (issue 7).

Configuration as the tracker's: ``TRACKER_DATABASE_URL`` (required, migrated),
``TRACKER_SECRET_KEYS``; ``INSERT_POOL_SIZE`` sets the pool (default 16 per worker).
Run: ``python loadtests/insert_per_hit.py --port 8002 [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bare_app import _EMPTY_BODY, _OK_BODY, _OK_START, _PIXEL_BODY, _PIXEL_START  # noqa: E402

from tracker.edge import NOT_FOUND_PAGE  # noqa: E402
from tracker.events import Flag, Kind, dictionary_id  # noqa: E402
from tracker.tokens import InvalidToken, Purpose, TokenCodec  # noqa: E402
from tracker.urls import to_location  # noqa: E402

INSERT = (
    "INSERT INTO events (ts, delivery_id, url_id, ua_id, campaign, schedule_task, kind,"
    " flags, link_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
_NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(NOT_FOUND_PAGE)).encode())],
}
_REDIRECT_HEADERS = [(b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"),
                     (b"content-length", b"0")]


class InsertPerHit:
    """ASGI app: verify, INSERT + commit, answer."""

    def __init__(self) -> None:
        keys = [k for k in os.environ.get("TRACKER_SECRET_KEYS", "").split(",") if k]
        self.dsn = os.environ.get("TRACKER_DATABASE_URL", "")
        if not keys or not self.dsn:
            raise SystemExit("set TRACKER_DATABASE_URL and TRACKER_SECRET_KEYS")
        self.codec = TokenCodec(keys)
        self.pool_size = int(os.environ.get("INSERT_POOL_SIZE", "16"))
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        method = scope["method"]
        if path.startswith("/o/"):
            token = path[3:].removesuffix(".gif")
            try:
                data = self.codec.verify(Purpose.OPEN, token)
            except InvalidToken:
                data = None
            if data is not None and not data.is_test:
                await self._insert(scope, data, Kind.OPEN, 0, 0)
            await send(_PIXEL_START)
            await send(_EMPTY_BODY if method == "HEAD" else _PIXEL_BODY)
        elif path.startswith("/c/"):
            try:
                data = self.codec.verify(Purpose.CLICK, path[3:])
                location = to_location(data.url)
            except (InvalidToken, ValueError):
                await send(_NOT_FOUND_START)
                await send({"type": "http.response.body", "body": NOT_FOUND_PAGE})
                return
            if not data.is_test:
                await self._insert(scope, data, Kind.CLICK, data.link_position,
                                   dictionary_id(data.url.encode()))
            await send({"type": "http.response.start", "status": 302,
                        "headers": [(b"location", location), *_REDIRECT_HEADERS]})
            await send(_EMPTY_BODY)
        else:
            await send(_OK_START)
            await send(_OK_BODY)

    async def _insert(self, scope: dict, data, kind: Kind, position: int, url_id: int) -> None:
        ua_id = 0
        for name, value in scope["headers"]:
            if name == b"user-agent":
                ua_id = dictionary_id(value[:1000])
                break
        flags = Flag.HEAD if scope["method"] == "HEAD" else 0
        assert self.pool is not None
        await self.pool.execute(
            INSERT, datetime.fromtimestamp(time.time(), UTC), data.delivery_id, url_id, ua_id,
            data.campaign, data.schedule_task, int(kind), flags, position)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(self.dsn, min_size=1,
                                                      max_size=self.pool_size)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="per-hit INSERT variant for the bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run("insert_per_hit:InsertPerHit", factory=True, app_dir=str(HERE),
                host=args.host, port=args.port, workers=args.workers, log_level="warning",
                access_log=False, timeout_keep_alive=5, loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
