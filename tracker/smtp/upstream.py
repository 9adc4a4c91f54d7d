"""Handing copies to the upstream MTA, all or nothing as far as the reply goes.

A small SMTP client on the relay's own event loop (asyncio streams): a relayed
message's copies go over one connection, a transaction each, and the connection
is kept for the next message (:class:`Connections`).
(``smtplib`` in a worker thread did the same at about twice the CPU: a thread
hand-off per message, and its dot-stuffing regular expression over every copy.)
Every failure becomes :class:`Refused` with the reply the relay gives its own
client: 4xx while the sender should retry, 5xx when the upstream refused for good.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import re
import socket
import ssl
import time
from dataclasses import dataclass

from tracker.smtp.settings import Upstream

#: Bytes of a copy written between two waits for the upstream to take them.
WRITE_PIECE = 1 << 20
#: MAIL FROM parameters passed on to the upstream (SIZE is the client's own).
PASSED_OPTIONS = ("BODY=8BITMIME", "SMTPUTF8")


@dataclass(frozen=True, slots=True)
class Copy:
    """One recipient's own message."""

    recipient: str
    data: bytes


class Refused(Exception):
    """The upstream did not take every copy; ``reply`` is the SMTP reply to give."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply

    @property
    def permanent(self) -> bool:
        return self.reply.startswith("5")


def _one_line(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(text.split())[:300]


def _refusal(upstream: Upstream, code: int, text: bytes | str, recipient: str) -> Refused:
    said = f"{code} {_one_line(text)}"
    if 500 <= code < 600:
        mine = code if code in (550, 552, 553, 554) else 554
        return Refused(f"{mine} 5.0.0 the upstream {upstream.address} refused the copy for "
                       f"{recipient} ({said}); nothing more was relayed, fix the message "
                       "or the recipient")
    return Refused(f"451 4.4.0 the upstream {upstream.address} deferred the copy for "
                   f"{recipient} ({said}); the message was not accepted, retry later")


def mail_options(options: list[str]) -> list[str]:
    return [o for o in options if o.upper() in PASSED_OPTIONS]


#: a line starting with a dot (to double). bytes.replace's search for two bytes
#: steps through a 100 KB copy at ~1-2 ns a byte (no memchr), about three times
#: as long as this expression takes to find nothing
_LINE_DOT = re.compile(rb"\n\.")


def stuffed(data: bytes) -> list[bytes]:
    """``data`` as DATA sends it (RFC 5321 section 4.5.2), in pieces (not copied
    into one): a dot doubled at the start of every line, a line ending before the
    final dot, and the final dot."""
    if _LINE_DOT.search(data):  # usually none: replace() would search as long
        data = data.replace(b"\n.", b"\n..")
    pieces = [b".", data] if data.startswith(b".") else [data]
    pieces.append(b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")
    return pieces


class _Unsupported(Exception):
    """The upstream lacks what the settings ask for (STARTTLS, AUTH)."""


class _Failed(Exception):
    """The upstream answered ``code``; ``step`` says to what."""

    def __init__(self, step: str, code: int, text: bytes) -> None:
        super().__init__(f"{step}: {code} {_one_line(text)}")
        self.step = step
        self.code = code
        self.text = text


@functools.cache
def _local_name() -> str:
    """What the relay calls itself in EHLO (no DNS lookup, unlike socket.getfqdn)."""
    return socket.gethostname() or "localhost"


class _Client:
    """One upstream connection; every wait bounded by the upstream's timeout."""

    def __init__(self, upstream: Upstream, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.upstream = upstream
        self.reader = reader
        self.writer = writer
        self.extensions: dict[str, str] = {}
        #: the command of a transaction being answered (MAIL, RCPT, DATA)
        self.step = ""
        self._loop = asyncio.get_running_loop()
        #: the reply being waited for must have come by then (loop time)
        self._deadline = 0.0
        self._waiting = False
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False

    @property
    def closed(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def _expire(self) -> None:
        """The timer: asleep again until the current deadline if it moved (each
        wait for a reply moves it, one timer serves them all), else the wait
        overran: the connection is cut, which ends the read at once."""
        self._timer = None
        if not self._waiting:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        self._timed_out = True
        self.writer.transport.abort()

    async def _line(self) -> bytes:
        """A reply line within the timeout. (An ``asyncio.timeout`` per line, four a
        copy, cost a timer made and cancelled each: more CPU than the write.)"""
        self._deadline = self._loop.time() + self.upstream.timeout
        self._waiting = True
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expire)
        try:
            line = await self.reader.readline()
        finally:
            self._waiting = False
        if self._timed_out:
            raise TimeoutError(f"no reply within {self.upstream.timeout:g} s")
        return line

    async def reply(self) -> tuple[int, bytes]:
        lines: list[bytes] = []
        while True:
            line = await self._line()
            if not line.endswith(b"\n"):
                raise ConnectionResetError("the upstream closed the connection")
            if len(line) < 4 or not line[:3].isdigit():
                raise ConnectionError(f"the upstream's reply is not SMTP: {_one_line(line)}")
            lines.append(line[4:].rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines)

    async def write(self, pieces: list[bytes]) -> None:
        """Large data a piece at a time, each taken within the timeout (as a blocking
        socket's timeout bounds each send, not the whole message). Waits only while
        the transport holds more than its high-water mark: what it holds below that
        is bounded by the wait for the reply (a timeout context per piece, most of
        which never waited, cost as much as the rest of sending the copy)."""
        transport = self.writer.transport
        for data in pieces:
            view = memoryview(data)
            for start in range(0, len(data), WRITE_PIECE):
                self.writer.write(data if len(data) <= WRITE_PIECE
                                  else view[start:start + WRITE_PIECE])
                if transport.get_write_buffer_size() > WRITE_PIECE:
                    async with asyncio.timeout(self.upstream.timeout):
                        await self.writer.drain()

    async def command(self, line: str) -> tuple[int, bytes]:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        return await self.reply()

    async def expect(self, step: str, line: str, *codes: int) -> bytes:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        return await self.expect_reply(step, *codes)

    async def expect_reply(self, step: str, *codes: int) -> bytes:
        code, text = await self.reply()
        if code not in codes:
            raise _Failed(step, code, text)
        return text

    async def hello(self) -> None:
        code, text = await self.command(f"EHLO {_local_name()}")
        if code != 250:
            self.extensions = {}
            await self.expect("HELO", f"HELO {_local_name()}", 250)
            return
        self.extensions = {}
        for line in text.split(b"\n")[1:]:
            name, _, value = line.decode("utf-8", "replace").partition(" ")
            self.extensions[name.lower()] = value

    async def starttls(self) -> None:
        if "starttls" not in self.extensions:
            raise _Unsupported("STARTTLS")
        await self.expect("STARTTLS", "STARTTLS", 220)
        await asyncio.wait_for(self.writer.start_tls(ssl.create_default_context(),
                                                     server_hostname=self.upstream.host),
                               self.upstream.timeout)
        await self.hello()

    async def login(self, user: str, password: str) -> None:
        mechanisms = self.extensions.get("auth", "").upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
            await self.expect("AUTH", f"AUTH PLAIN {token}", 235)
        elif "LOGIN" in mechanisms:
            await self.expect("AUTH", "AUTH LOGIN", 334)
            await self.expect("AUTH", base64.b64encode(user.encode()).decode("ascii"), 334)
            await self.expect("AUTH", base64.b64encode(password.encode()).decode("ascii"), 235)
        else:
            raise _Unsupported("AUTH PLAIN or LOGIN")

    async def send(self, sender: str, copy: Copy, options: list[str]) -> None:
        params = [f"SIZE={len(copy.data)}"] if "size" in self.extensions else []
        mail = " ".join([f"MAIL FROM:<{sender}>", *params, *options])
        steps = (("MAIL", mail, (250,)), ("RCPT", f"RCPT TO:<{copy.recipient}>", (250, 251)),
                 ("DATA", "DATA", (354,)))
        pipelining = "pipelining" in self.extensions
        if pipelining:
            # RFC 2920: the three commands in one write, their replies in order (two
            # round trips less a copy); a refusal closes the connection, so the
            # replies left unread do not matter
            self.writer.write("".join(f"{line}\r\n" for _, line, _ in steps).encode("utf-8"))
        for step, line, codes in steps:
            self.step = step
            if pipelining:
                await self.expect_reply(step, *codes)
            else:
                await self.expect(step, line, *codes)
        await self.write(stuffed(copy.data))
        code, text = await self.reply()
        if code != 250:
            raise _Failed("DATA", code, text)

    async def quit(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # every copy was taken by now
            await self.command("QUIT")
        self.writer.close()


def _check_extensions(client: _Client, upstream: Upstream, options: list[str]) -> None:
    """A message that needs SMTPUTF8 or 8BITMIME cannot go to an upstream without it
    (the relay converts nothing): refused for good, saying why."""
    wanted = {o.upper() for o in options}
    if "SMTPUTF8" in wanted and "smtputf8" not in client.extensions:
        raise Refused(f"554 5.6.7 the upstream {upstream.address} does not accept SMTPUTF8 "
                      "(non-ASCII addresses); send with ASCII addresses or use an upstream "
                      "that supports it")
    if "BODY=8BITMIME" in wanted and "8bitmime" not in client.extensions:
        raise Refused(f"554 5.6.3 the upstream {upstream.address} does not accept 8BITMIME; "
                      "send the message 7-bit (quoted-printable or base64 parts) or use an "
                      "upstream that supports it")


async def _connect(upstream: Upstream) -> _Client:
    """A new connection, greeted, secured and logged in as the settings say."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(upstream.host, upstream.port), upstream.timeout)
    client = _Client(upstream, reader, writer)
    try:
        code, text = await client.reply()
        if code != 220:
            raise _Failed("greeting", code, text)
        await client.hello()
        if upstream.starttls:
            await client.starttls()
        if upstream.user is not None and upstream.password is not None:
            await client.login(upstream.user, upstream.password)
    except BaseException:
        writer.close()
        raise
    return client


class _Stale(Exception):
    """A kept connection was found closed before it took anything: use a new one."""


class Connections:
    """The upstream connections of one relay (one event loop): each message's copies
    go over one connection, which is kept open afterwards for the next message, up
    to ``keep`` idle ones for ``idle_seconds``. A kept connection that the upstream
    closed meanwhile fails at its first MAIL FROM, before taking anything, so the
    copy goes over a new connection instead; any other failure closes the
    connection it happened on."""

    def __init__(self, upstream: Upstream, *, keep: int = 8,
                 idle_seconds: float = 30.0) -> None:
        self.upstream = upstream
        self.keep = keep
        self.idle_seconds = idle_seconds
        self._idle: list[tuple[float, _Client]] = []

    def _take(self) -> _Client | None:
        now = time.monotonic()
        while self._idle:
            since, client = self._idle.pop()
            if now - since < self.idle_seconds and not client.closed:
                return client
            client.writer.close()
        return None

    async def relay(self, sender: str, copies: list[Copy], options: list[str]) -> None:
        """Send every copy (one upstream transaction each); Refused unless all were
        taken."""
        upstream = self.upstream
        where = [copies[0].recipient if copies else ""]
        try:
            client = self._take()
            if client is not None:
                try:
                    await self._send(client, sender, copies, options, where, kept=True)
                    return
                except _Stale:
                    pass
            client = await _connect(upstream)
            await self._send(client, sender, copies, options, where, kept=False)
        except _Failed as exc:
            if exc.step == "AUTH":
                raise Refused(f"451 4.7.0 the upstream {upstream.address} refused the relay's "
                              f"login ({exc.code} {_one_line(exc.text)}); the operator must "
                              "fix TRACKER_SMTP_UPSTREAM_USER/PASSWORD, retry later") from exc
            raise _refusal(upstream, exc.code, exc.text, where[0]) from exc
        except _Unsupported as exc:
            raise Refused(f"451 4.7.0 the upstream {upstream.address} does not support {exc}; "
                          "the operator must fix the relay's upstream settings "
                          "(TRACKER_SMTP_UPSTREAM_STARTTLS, TRACKER_SMTP_UPSTREAM_USER), "
                          "retry later") from exc
        except (OSError, ValueError, EOFError) as exc:  # refused, reset, timed out, TLS
            raise Refused(f"451 4.4.1 the upstream {upstream.address} is unreachable "
                          f"({_one_line(str(exc) or type(exc).__name__)}); the message was "
                          "not accepted, retry later") from exc

    async def _send(self, client: _Client, sender: str, copies: list[Copy],
                    options: list[str], where: list[str], *, kept: bool) -> None:
        try:
            _check_extensions(client, self.upstream, options)
            for index, copy in enumerate(copies):
                where[0] = copy.recipient
                try:
                    await client.send(sender, copy, options)
                except (OSError, ValueError, EOFError, _Failed) as exc:
                    closed = not isinstance(exc, _Failed) or exc.code == 421
                    if kept and index == 0 and client.step == "MAIL" and closed:
                        raise _Stale() from exc
                    raise
        except BaseException:
            client.writer.close()
            raise
        if len(self._idle) < self.keep:
            self._idle.append((time.monotonic(), client))
        else:
            await client.quit()

    def close(self) -> None:
        """Close the kept connections (the relay is stopping)."""
        for _, client in self._idle:
            client.writer.close()
        self._idle.clear()


async def relay(upstream: Upstream, sender: str, copies: list[Copy],
                options: list[str]) -> None:
    """Send every copy over a new connection, closed afterwards (see Connections)."""
    await Connections(upstream, keep=0).relay(sender, copies, mail_options(options))
