"""aiosmtpd's SMTP protocol with a DATA reader that takes the message in large reads.

aiosmtpd reads DATA one line at a time (``readuntil(b"\\r\\n")``, a log call and
a few checks per line): about 1,300 awaits for a 100 KB newsletter, more CPU than
rewriting it. This reader asks the stream for everything up to the next ``.\\r\\n``
(usually the end of the message: a line ending in a full stop costs one more
round), so a message is read in as many pieces as the socket delivered it, then
undoes the dot-stuffing in one pass. Everything else is aiosmtpd's, and so are
the replies: ``552`` past the size limit and ``500`` for a line over 1,000
octets, both given once the whole message was read (RFC 5321 section 4.2.5), and
the same handler hook with the same envelope (``decode_data`` must be False).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP

log = logging.getLogger("tracker.smtp")

_END = b".\r\n"
TOO_MUCH = "552 Error: Too much mail data"
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"


async def read_data(reader: asyncio.StreamReader, size_limit: int | None,
                    line_limit: int) -> tuple[bytes, str | None]:
    """The message after ``354``, dot-stuffing undone, and the error reply to give
    instead of taking it (None: take it). Reads exactly up to the ``.`` line, so
    what the client sent after it stays for the command loop."""
    chunks: list[bytes] = []
    size = 0
    problem: str | None = None
    tail = b"\r\n"  # the last two bytes read: DATA starts at the start of a line
    while True:
        try:
            chunk = await reader.readuntil(_END)
        except asyncio.LimitOverrunError as exc:  # no ".\r\n" in the buffer yet
            chunk = await reader.readexactly(exc.consumed)
            ended = False
        else:
            before = chunk[-5:-3] if len(chunk) >= 5 else (tail + chunk)[-5:-3]
            ended = before == b"\r\n"
        if ended:
            chunk = chunk[:-3]
        size += len(chunk)
        if problem is None and size_limit and size > size_limit:
            problem = TOO_MUCH
            chunks.clear()  # keep reading to the end, holding nothing
        if problem is None:
            chunks.append(chunk)
        if ended:
            break
        if chunk:
            tail = chunk[-2:] if len(chunk) >= 2 else (tail + chunk)[-2:]
    if problem is not None:
        return b"", problem
    data = b"".join(chunks)
    if _line_too_long(data, line_limit - 2):
        return b"", TOO_LONG
    if data.startswith(b"."):
        data = data[1:]
    if _STUFFED.search(data):  # see upstream._LINE_DOT: finding none is the most usual
        data = data.replace(b"\r\n.", b"\r\n")
    return data, None


_STUFFED = re.compile(rb"\r\n\.")


def _line_too_long(data: bytes, longest: int) -> bool:
    """Whether a line of ``data`` (split at CRLF) is longer than ``longest`` octets.

    Splitting 100 KB into its ~1,300 lines to measure them cost as much as the
    rest of reading it; this jumps from line start to line start by the last CRLF
    within ``longest`` octets, a search in C per ~1,000 octets."""
    start = 0
    end = len(data)
    while end - start > longest:
        found = data.rfind(b"\r\n", start, start + longest + 2)
        if found < 0:
            return True
        start = found + 2
    return False


#: What the stream may hold while DATA is read (it stops reading the socket at
#: twice this): aiosmtpd's stream is made with the longest command line as its
#: limit, which while a message comes in means a pause and a resume of the socket
#: (two epoll calls) and a LimitOverrunError for every ~2 KB read
DATA_BUFFER = 1 << 20


@contextlib.contextmanager
def _buffering(reader: asyncio.StreamReader, limit: int) -> Iterator[None]:
    """``reader``'s limit raised to ``limit`` for the block. (StreamReader takes its
    limit only when made, by aiosmtpd; ``_limit`` is the attribute every asyncio
    since 3.4 reads it from.)"""
    before: int = getattr(reader, "_limit", limit)
    reader._limit = max(before, limit)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        reader._limit = before  # type: ignore[attr-defined]


#: ``<local@domain>`` of plain dot-atoms and what follows, as aiosmtpd parses it
_SIMPLE_ADDRESS = re.compile(
    r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>((?:\s.*)?)", re.S)


class RelaySMTP(SMTP):
    """``SMTP`` with :func:`read_data` for DATA, and plain addresses in MAIL and RCPT
    read without aiosmtpd's RFC 5322 parser (which defines a class per call): the
    same result, a test holds the two equal."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        if kwargs.get("decode_data"):
            raise ValueError("RelaySMTP hands the handler bytes: decode_data must be False")
        self._deadline = 0.0
        super().__init__(handler, **kwargs)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """The idle timeout, restarted at every command: aiosmtpd cancels its timer
        and makes a new one each time (a heap entry and a cancelled one left behind,
        per command). Here a command only moves the deadline; the timer, when it
        fires early, sleeps again until it, and is remade only to fire sooner."""
        when = self.loop.time() + (duration or self._timeout_duration)
        self._deadline = when
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > when:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(when, self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_cb)
            return
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_ADDRESS.fullmatch(arg)
        if match is None or self.local_part_limit:
            return super()._getaddr(arg)
        return match.group(1), match.group(2).lstrip()

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            with _buffering(self._reader, DATA_BUFFER):
                content, problem = await read_data(self._reader, self.data_size_limit,
                                                   self.line_length_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # the client went away mid-message
            self._writer.close()
            return
        if problem is not None:
            await self.push(problem)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)
