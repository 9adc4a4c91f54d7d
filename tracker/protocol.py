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

The deadlines cost a request two stored timestamps: one sweep a second per worker
closes the connections past theirs, instead of a timer armed and cancelled for
every request. The same sweep closes a kept-alive connection idle for
``timeout_keep_alive`` seconds after a response (uvicorn's keep-alive timeout, to
within the sweep's second), which uvicorn would otherwise do with one more timer
armed at every response and cancelled at the next request. Body sizes are capped
per route by the application (``tracker.api.bodies``), which knows what each route
takes.
"""

from __future__ import annotations

import asyncio

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: request line plus all header lines, in bytes
MAX_HEADER_BYTES = 16 * 1024
#: seconds for a whole request line and headers to arrive
HEADER_TIMEOUT = 10.0
#: seconds a request body may go without a new chunk
BODY_IDLE_TIMEOUT = 10.0
#: seconds between two sweeps for connections past their deadline
SWEEP_EVERY = 1.0

_TOO_LARGE_MESSAGE = (
    b"the request line and headers exceed %d bytes; send fewer or shorter headers\n"
    % MAX_HEADER_BYTES)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_MESSAGE), _TOO_LARGE_MESSAGE))

# what a connection waits for, and so which deadline applies
_HEADERS = 0  # a request's line and headers (from connect, or the previous response)
_BODY = 1  # the next chunk of a request body
_APPLICATION = 2  # the application's answer: no deadline here
_IDLE = 3  # kept alive after a response, not a byte of the next request yet


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing; answered with 431."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, header-time and body-idle limits."""

    _header_bytes = 0
    _waiting_for = _HEADERS
    _since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.loop.time()
        _Sweeper.watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        _Sweeper.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's own, except that a request refused for its header size is
        answered 431 (by ``_refuse``) without a log line: strangers must not be able
        to fill the log either."""
        if self._header_bytes > MAX_HEADER_BYTES:
            return  # refused and closing: the rest is not read
        if self._waiting_for == _IDLE:
            self._waiting_for = _HEADERS  # HEADER_TIMEOUT, still from the response
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._header_bytes > MAX_HEADER_BYTES:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    # the count is kept inline (a call per header less); _refuse only past the cap
    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._waiting_for, self._since = _BODY, self.loop.time()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._since = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._waiting_for = _APPLICATION
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, except that an idle connection is left to the sweep (``_IDLE``)
        instead of a keep-alive timer armed here and cancelled by the next request."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        # the next request's headers, on a kept-alive connection
        self._since = self.loop.time()
        if self.pipeline:  # pipelined requests: start the next one (uvicorn's order)
            self._waiting_for = _HEADERS
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._waiting_for = _IDLE

    def _refuse(self) -> None:
        """The request line and headers passed MAX_HEADER_BYTES: answered here; the
        exception stops the parser (see data_received)."""
        self.transport.write(_TOO_LARGE)
        self.transport.close()
        raise _HeadersTooLarge

    def past_deadline(self, now: float) -> bool:
        if self._waiting_for == _IDLE:
            return now - self._since > self.timeout_keep_alive
        if self._waiting_for == _HEADERS:
            return now - self._since > HEADER_TIMEOUT
        if self._waiting_for == _BODY:
            return now - self._since > BODY_IDLE_TIMEOUT
        return False

    def expire(self) -> None:
        """A request that stalls: close the connection (the application, if it was
        reading the body, sees the client disconnect)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            cycle.disconnected = True
            cycle.message_event.set()
        if not self.transport.is_closing():
            self.transport.close()


class _Sweeper:
    """Closes, once a second, the connections past their deadline (one per loop,
    running while the loop has connections)."""

    _watched: dict[asyncio.AbstractEventLoop, set[GuardedHttpToolsProtocol]] = {}

    @classmethod
    def watch(cls, connection: GuardedHttpToolsProtocol) -> None:
        loop = connection.loop
        connections = cls._watched.get(loop)
        if connections is None:
            connections = cls._watched[loop] = set()
            loop.call_later(SWEEP_EVERY, cls._sweep, loop)
        connections.add(connection)

    @classmethod
    def forget(cls, connection: GuardedHttpToolsProtocol) -> None:
        connections = cls._watched.get(connection.loop)
        if connections is not None:
            connections.discard(connection)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        connections = cls._watched[loop]
        now = loop.time()
        for connection in [c for c in connections if c.past_deadline(now)]:
            connections.discard(connection)
            connection.expire()
        if connections:
            loop.call_later(SWEEP_EVERY, cls._sweep, loop)
        else:
            del cls._watched[loop]  # the next connection starts it again

