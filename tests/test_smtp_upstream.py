"""Issue 18: the relay's upstream client (tracker.smtp.upstream, asyncio) against an
aiosmtpd sink: copies byte for byte with dots, login with PLAIN or LOGIN, and the
replies the relay gives when the upstream refuses the login or lacks STARTTLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port
from tracker.smtp import upstream
from tracker.smtp.settings import Upstream


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(session.peer)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 2.0.0 queued"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay", b"pw")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def start_sink() -> Iterator[Any]:
    started: list[Controller] = []

    def start(port: int | None = None, **options: Any) -> tuple[Sink, int]:
        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port or free_port(), **options)
        controller.start()
        started.append(controller)
        return sink, controller.port

    def restart(port: int) -> None:
        started.pop().stop()
        start.last, _ = start(port)  # type: ignore[attr-defined]

    start.restart = restart  # type: ignore[attr-defined]
    yield start
    for controller in started:
        controller.stop()


def relay(port: int, copies: list[upstream.Copy], **settings: Any) -> None:
    asyncio.run(upstream.relay(Upstream("127.0.0.1", port, timeout=10, **settings),
                               "news@sender.example", copies, []))


def test_copies_arrive_byte_for_byte(start_sink: Any) -> None:
    sink, port = start_sink()
    copies = [upstream.Copy("a@example.org", b"Subject: x\r\n\r\n.dot\r\n..two\r\nend."),
              upstream.Copy("b@example.org", b".\r\n"),
              upstream.Copy("c@example.org",
                            b"Subject: big\r\n\r\n" + (b"y" * 900 + b"\r\n") * 3000)]
    relay(port, copies)
    assert sink.received == [
        ("news@sender.example", ["a@example.org"], copies[0].data + b"\r\n"),
        ("news@sender.example", ["b@example.org"], b".\r\n"),
        ("news@sender.example", ["c@example.org"], copies[2].data)]


class PipeliningSink(Sink):
    """Offers PIPELINING (RFC 2920) and notes, at each MAIL, whether the RCPT and
    DATA after it had already arrived (one write from the client)."""

    def __init__(self) -> None:
        super().__init__()
        self.pipelined: list[bool] = []
        self.refuse: dict[str, str] = {}

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        waiting = bytes(server._reader._buffer)
        self.pipelined.append(waiting.startswith(b"RCPT TO:<") and waiting.endswith(b"DATA\r\n"))
        envelope.mail_from = address
        return self.refuse.get("MAIL", "250 OK")

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if "RCPT" in self.refuse:
            return self.refuse["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_pipelining_upstreams_get_mail_rcpt_and_data_in_one_write() -> None:
    sink = PipeliningSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        copies = [upstream.Copy(f"{n}@example.org", b"Subject: x\r\n\r\n.dot\r\n")
                  for n in range(3)]
        relay(controller.port, copies)
        assert sink.received == [("news@sender.example", [c.recipient], c.data)
                                 for c in copies]
        assert sink.pipelined == [True, True, True]
        for step, reply, mine in (("MAIL", "451 4.3.0 busy", "451 4.4.0"),
                                  ("RCPT", "550 5.1.1 no such user", "550 5.0.0")):
            sink.refuse = {step: reply}
            with pytest.raises(upstream.Refused) as refused:
                relay(controller.port, copies[:1])
            assert refused.value.reply.startswith(mine) and reply in refused.value.reply
        assert len(sink.received) == 3, "nothing taken after a refusal"
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("exclude", [(), ("PLAIN",)], ids=["plain", "login"])
def test_login_upstream(start_sink: Any, exclude: tuple[str, ...]) -> None:
    sink, port = start_sink(authenticator=authenticator, auth_require_tls=False,
                            auth_required=True, auth_exclude_mechanism=exclude)
    relay(port, [upstream.Copy("a@example.org", b"Subject: x\r\n\r\nhi\r\n")],
          user="relay", password="pw")
    assert [r[1] for r in sink.received] == [["a@example.org"]]


def test_wrong_login_and_missing_starttls_say_what_the_operator_must_fix(
        start_sink: Any) -> None:
    sink, port = start_sink(authenticator=authenticator, auth_require_tls=False)
    copy = upstream.Copy("a@example.org", b"Subject: x\r\n\r\nhi\r\n")
    with pytest.raises(upstream.Refused) as caught:
        relay(port, [copy], user="relay", password="wrong")
    assert caught.value.reply.startswith("451 4.7.0") and "USER/PASSWORD" in caught.value.reply
    with pytest.raises(upstream.Refused) as caught:
        relay(port, [copy], starttls=True)
    assert caught.value.reply.startswith("451 4.7.0") and "STARTTLS" in caught.value.reply
    assert sink.received == []


def test_connections_are_kept_between_messages_and_renewed_when_closed(
        start_sink: Any) -> None:
    first, port = start_sink()
    copy = upstream.Copy("a@example.org", b"Subject: x\r\n\r\nhi\r\n")

    async def scenario() -> None:
        connections = upstream.Connections(Upstream("127.0.0.1", port, timeout=10))
        await connections.relay("news@sender.example", [copy, copy], [])
        await connections.relay("news@sender.example", [copy], [])
        assert len(first.received) == 3 and len(set(first.peers)) == 1, first.peers
        await asyncio.to_thread(start_sink.restart, port)  # the upstream closes it
        await connections.relay("news@sender.example", [copy], [])
        connections.close()

    asyncio.run(scenario())
    assert len(start_sink.last.received) == 1


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_starttls_and_login_upstream(start_sink: Any, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """STARTTLS to an upstream whose self-signed certificate (made here, for
    127.0.0.1) the relay is made to trust, then AUTH, which the sink offers only
    over TLS."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(str(cert), str(key))
    sink, port = start_sink(tls_context=server_side, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    default = ssl.create_default_context

    def trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = default(*args, **kwargs)
        context.load_verify_locations(str(cert))
        return context

    monkeypatch.setattr(upstream.ssl, "create_default_context", trusting)
    relay(port, [upstream.Copy("a@example.org", b"Subject: x\r\n\r\nhi\r\n")], starttls=True,
          user="relay", password="pw")
    assert [r[1] for r in sink.received] == [["a@example.org"]]


@pytest.mark.parametrize("silent_after", [0, 1])
def test_an_upstream_that_stops_answering_is_a_deferral(silent_after: int) -> None:
    """An upstream that never greets, or greets and then never answers EHLO: each
    wait for a reply is bounded by the upstream's timeout, the connection is cut,
    and the relay defers the message (4xx) saying so."""

    async def run() -> str:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if silent_after:
                writer.write(b"220 sink ready\r\n")
            await reader.read()  # until the relay cuts the connection
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(upstream.relay(
                Upstream("127.0.0.1", port, timeout=0.5), "news@sender.example",
                [upstream.Copy("ann@example.org", b"Subject: x\r\n\r\nhi\r\n")], []), 60)
        except upstream.Refused as exc:
            return exc.reply
        finally:
            server.close()
            await server.wait_closed()
        raise AssertionError("relayed to an upstream that never answered")

    reply = asyncio.run(run())
    assert reply.startswith("451 4.4.1 ") and "no reply within 0.5 s" in reply, reply
