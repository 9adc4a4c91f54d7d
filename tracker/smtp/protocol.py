"""aiosmtpd's SMTP protocol with a DATA reader that takes the message in large reads.

aiosmtpd reads DATA one line at a time (``readuntil(b"\\r\\n")``, a log call and
a few checks per line): about 1,300 awaits for a 100 KB newsletter, more CPU than
rewriting it. This reader searches the stream's buffer for lines starting with a
dot as the socket fills it, which finds both the final ``.`` line and whether
there is dot-stuffing to undo (mostly not), and takes the message out in as many
pieces as it needs (one, unless it is large). Everything else is aiosmtpd's, and
so are the replies: ``552`` past the size limit and ``500`` for a line over 1,000
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

TOO_MUCH = "552 Error: Too much mail data"
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"

#: a dot starting a line: either a dot-stuffed line (CRLF, dot, more) or the end
#: of the message (CRLF, dot, CRLF). One pass of this expression over the stream
#: finds both (bytes.find for the three bytes of the end took twice as long, and
#: the stuffing needed a pass of its own)
_LINE_DOT = re.compile(rb"\r\n\.")
#: bytes searched before they are taken out of the stream (bounds its buffer)
_TAKE_AT = 1 << 18


async def read_data(reader: asyncio.StreamReader, size_limit: int | None,
                    line_limit: int) -> tuple[bytes, str | None]:
    """The message after ``354``, dot-stuffing undone, and the error reply to give
    instead of taking it (None: take it). Reads exactly up to the ``.`` line, so
    what the client sent after it stays for the command loop.

    The stream's buffer is searched where it lies, each byte once, as the socket
    fills it (``StreamReader.readuntil`` does the same with its slower search);
    what was searched is taken out by ``readexactly``, which never waits for
    bytes already there."""
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    pieces: list[bytes] = []
    size = 0
    problem: str | None = None
    while len(buffer) < 3:  # enough to tell the first line: DATA starts at one
        await _more(reader)
    if buffer.startswith(b".\r\n"):
        await reader.readexactly(3)
        return b"", None
    stuffed = buffer.startswith(b".")
    at = 0  # where the search goes on
    while True:
        found = _LINE_DOT.search(buffer, at)
        if found is None:
            at = max(at, len(buffer) - 2)  # a CRLF there may start a dot line
        elif len(buffer) < found.start() + 5:
            at = found.start()  # which of the two: the next bytes tell
        elif buffer[found.start() + 3:found.start() + 5] != b"\r\n":
            stuffed = True
            at = found.start() + 3
            continue
        else:
            end = found.start()
            last = await reader.readexactly(end + 5)
            pieces.append(last[:end + 2])
            size += end + 2
            break
        if at > _TAKE_AT:
            piece = await reader.readexactly(at)
            at = 0
            size += len(piece)
            if problem is None and size_limit and size > size_limit:
                problem = TOO_MUCH
                pieces.clear()  # keep reading to the end, holding nothing
            if problem is None:
                pieces.append(piece)
        await _more(reader)
    if problem is None and size_limit and size > size_limit:
        problem = TOO_MUCH
    if problem is not None:
        return b"", problem
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    if _line_too_long(data, line_limit - 2):
        return b"", TOO_LONG
    if stuffed:
        if data.startswith(b"."):
            data = data[1:]
        data = data.replace(b"\r\n.", b"\r\n")
    return data, None


async def _more(reader: asyncio.StreamReader) -> None:
    """Until the socket adds to the stream's buffer; as its own reads end at the
    end of the stream (IncompleteReadError) or at the error it was given."""
    error = reader.exception()
    if error is not None:
        raise error
    if reader._eof:  # type: ignore[attr-defined]
        raise asyncio.IncompleteReadError(b"", None)
    await reader._wait_for_data("read_data")  # type: ignore[attr-defined]


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
