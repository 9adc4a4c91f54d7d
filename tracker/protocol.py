"""HTTP/1.1 as uvicorn's httptools protocol speaks it, with the limits a public
endpoint needs before any application code runs.

The pixel and the redirect are public, and every sent message hands a stranger a
valid URL. uvicorn's httptools protocol accepts headers of any size and waits for
a request's headers and body as long as bytes keep trickling in (each byte resets
its keep-alive timer), so one client can hold memory and connections at will.
Here:

- the request line and headers together are capped at ``MAX_HEADER_BYTES``; past
  it the answer is ``431 Request Header Fields Too Large`` and the connection
  closes, before the edge, a cache or a classifier has seen any of it;
- the request line and headers must arrive within ``HEADER_TIMEOUT`` seconds of the
  connection (or of the previous response), and a body must not stall for more
  than ``BODY_IDLE_TIMEOUT`` seconds between chunks, or the connection is closed.

Body sizes are capped per route by the application (``tracker.api.bodies``), which
knows what each route takes.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: request line plus all header lines, in bytes
MAX_HEADER_BYTES = 16 * 1024
#: seconds for a whole request line and headers to arrive
HEADER_TIMEOUT = 10.0
#: seconds a request body may go without a new chunk
BODY_IDLE_TIMEOUT = 10.0

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s")
_TOO_LARGE_MESSAGE = (
    b"the request line and headers exceed %d bytes; send fewer or shorter headers\n"
    % MAX_HEADER_BYTES)


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing; answered with 431."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, header-time and body-idle limits."""

    _header_bytes = 0
    _too_large = False
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:
            self._arm(HEADER_TIMEOUT)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(BODY_IDLE_TIMEOUT)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(BODY_IDLE_TIMEOUT)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(HEADER_TIMEOUT)  # the next request's headers, on a kept-alive connection

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_TOO_LARGE % (len(_TOO_LARGE_MESSAGE), _TOO_LARGE_MESSAGE))
        self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._too_large = True
            raise _HeadersTooLarge

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """A request that stalls: close the connection (the application, if it was
        reading the body, sees the client disconnect)."""
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete and self.cycle.more_body:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if not self.transport.is_closing():
            self.transport.close()
