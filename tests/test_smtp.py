"""Issue 18, the SMTP relay: Python's smtplib as the sending MTA, an aiosmtpd sink as
the upstream, the relay's real server code on a real port and real PostgreSQL.

The relay runs in a thread with its own event loop (``tracker.smtp.server.start``,
what ``tracker smtp`` runs); everything stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.rewrite_support import (
    OWN_EMAILS,
    SHARED_EMAILS,
    Email,
    acceptable_untracked,
    check_identical,
    load_email,
    mime_leaves,
    own_emails,
    part_text,
    read_manifest,
    shared_emails_missing,
    strip_pixel,
    untracked_http_links,
    without_no_track_markers,
)
from tests.support import API_KEY, SECRET_KEYS, free_port, query, scalar, wait_for
from tracker.smtp import server
from tracker.smtp.access import may_send_without_auth
from tracker.smtp.settings import RelaySettings, SettingsError, Upstream, load, networks
from tracker.tokens import Purpose, TokenCodec, TokenData

PUBLIC = "https://t.example.com"
CODEC = TokenCodec(SECRET_KEYS.split(","))
CLICK = re.compile(re.escape(PUBLIC) + r"/c/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]{22})")

HTML = ('<html><body><p>Hello <a href="https://shop.example/sale?x=1&amp;y=2">sale</a> '
        '<a href="https://blog.example/post">post</a></p></body></html>\n')
TEXT = "Hello, see https://shop.example/sale?x=1&y=2 and https://blog.example/post\n"


# --- the upstream sink and the relay ------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    options: list[str]


@dataclass
class Sink:
    """An upstream MTA: keeps what it accepts; ``replies`` answer DATA by copy number."""

    replies: dict[int, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    offered: int = 0
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        number, self.offered = self.offered, self.offered + 1
        if number in self.replies:
            return self.replies[number]
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content, list(envelope.mail_options)))
        return "250 2.0.0 queued"


class Relay:
    """``tracker.smtp.server.start`` in a thread of its own."""

    def __init__(self, dsn: str, upstream_port: int, **settings: Any) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        relay = RelaySettings("127.0.0.1", 0, Upstream("127.0.0.1", upstream_port, timeout=10),
                              **settings.pop("relay", {}))
        self.running = self._call(server.start(relay, dsn=dsn, secret_keys=SECRET_KEYS.split(","),
                                               public_url=PUBLIC, api_key=API_KEY, **settings))
        self.port = self.running.port

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=60)

    def stop(self) -> None:
        self._call(self.running.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=True)
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def start_relay(database: str) -> Iterator[Any]:
    relays: list[Relay] = []

    def start(upstream_port: int, **settings: Any) -> Relay:
        relays.append(Relay(database, upstream_port, **settings))
        return relays[-1]

    yield start
    for relay in relays:
        relay.stop()


@pytest.fixture
def relay(start_relay: Any, sink: Sink) -> Relay:
    return start_relay(sink.port)


def message(*, html: str = HTML, text: str = TEXT, **tracker: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "news@sender.example"
    msg["To"] = "list@sender.example"
    msg["Subject"] = "Spring sale"
    for name, value in tracker.items():
        msg[f"X-Tracker-{name}"] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=email.policy.SMTP)


def clicks(data: bytes) -> list[TokenData]:
    """Every click token of the message's text parts (decoded), verified."""
    return [CODEC.verify(Purpose.CLICK, token) for part, rewritable in mime_leaves(data)
            if rewritable for token in CLICK.findall(part_text(part))]


def deliveries(dsn: str) -> list[Any]:
    return query(dsn, "SELECT d.delivery_id, d.user_id, d.status, d.is_test, c.campaign_id,"
                      " t.schedule_task_id FROM deliveries d"
                      " JOIN campaigns c ON c.id = d.campaign"
                      " JOIN schedule_tasks t ON t.id = d.schedule_task ORDER BY d.user_id")


# --- tracking ---------------------------------------------------------------------

def test_each_recipient_gets_own_delivery_and_tokens_and_tracker_headers_are_removed(
        relay: Relay, sink: Sink) -> None:
    raw = message(Campaign="spring", Task="run-1", Test="0")
    recipients = ["ann@example.org", "bob@example.org", "cy@example.org"]
    with relay.client() as client:
        assert client.sendmail("news@sender.example", recipients, raw) == {}
    assert sorted(r for m in sink.received for r in m.rcpt_tos) == recipients
    assert all(len(m.rcpt_tos) == 1 for m in sink.received), "one copy per recipient"
    rows = {r["user_id"]: r for r in deliveries(relay.dsn)}
    assert sorted(rows) == recipients
    seen_ids = set()
    for copy in sink.received:
        (rcpt,) = copy.rcpt_tos
        parsed = email.message_from_bytes(copy.data, policy=email.policy.default)
        assert not [k for k in parsed if k.lower().startswith("x-tracker-")
                    and k.lower() != "x-tracker-delivery"], parsed.keys()
        assert parsed["Subject"] == "Spring sale" and parsed["List-Unsubscribe-Post"]
        delivery_id = int(parsed["X-Tracker-Delivery"])
        assert rows[rcpt]["delivery_id"] == delivery_id
        assert (rows[rcpt]["campaign_id"], rows[rcpt]["schedule_task_id"]) == ("spring", "run-1")
        assert rows[rcpt]["status"] == 0 and not rows[rcpt]["is_test"]
        tokens = clicks(copy.data)
        assert len(tokens) == 4  # two links in each of the text and html parts
        assert {t.delivery_id for t in tokens} == {delivery_id}
        assert {t.url for t in tokens} == {"https://shop.example/sale?x=1&y=2",
                                           "https://blog.example/post"}
        seen_ids.add(delivery_id)
    assert len(seen_ids) == 3


def test_user_channel_and_test_headers_are_honoured(relay: Relay, sink: Sink) -> None:
    raw = message(Campaign="c-7", User="customer-42", Channel="email", Test="1")
    with relay.client() as client:
        client.sendmail("news@sender.example", ["x@example.org"], raw)
    (row,) = deliveries(relay.dsn)
    assert (row["user_id"], row["is_test"], row["schedule_task_id"]) == ("customer-42", True,
                                                                       "smtp")
    (token,) = {t.is_test for t in clicks(sink.received[0].data)}
    assert token is True


def test_without_campaign_the_message_is_relayed_unchanged(relay: Relay, sink: Sink) -> None:
    raw = message(Task="ignored-without-campaign")
    with relay.client() as client:
        client.sendmail("news@sender.example", ["ann@example.org", "bob@example.org"], raw)
    assert [m.data for m in sink.received] == [raw, raw]
    assert deliveries(relay.dsn) == []


def test_dots_and_long_messages_come_through_the_data_reader(relay: Relay, sink: Sink) -> None:
    """The relay's DATA reader (tracker.smtp.protocol) undoes dot-stuffing exactly,
    takes a message far larger than one socket read, and leaves the connection
    ready for the next message."""
    body = (b".starts with a dot\r\n..two dots\r\n.\r\nends with a dot.\r\n" +
            b"x" * 990 + b"\r\n") * 400
    raw = b"From: a@sender.example\r\nSubject: dots\r\n\r\n" + body
    with relay.client() as client:
        client.sendmail("a@sender.example", ["b@example.org"], raw)
        client.sendmail("a@sender.example", ["c@example.org"], b"Subject: empty\r\n\r\n")
        client.sendmail("a@sender.example", ["d@example.org"], b".\r\n")
    assert [m.data for m in sink.received] == [raw, b"Subject: empty\r\n\r\n", b".\r\n"]
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["b@example.org"],
                        b"Subject: long\r\n\r\n" + b"y" * 1000 + b"\r\n")
    assert caught.value.smtp_code == 500 and len(sink.received) == 3


def test_bad_tracker_headers_are_refused_with_what_to_fix(relay: Relay, sink: Sink) -> None:
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["b@example.org"],
                        message(Campaign="c", Channel="pigeon"))
    assert caught.value.smtp_code == 554 and b"X-Tracker-Channel must be one of" in \
        caught.value.smtp_error
    assert sink.received == [] and deliveries(relay.dsn) == []


# --- nothing accepted is lost ------------------------------------------------------

def test_upstream_unreachable_gives_4xx_and_records_nothing(start_relay: Any) -> None:
    relay = start_relay(free_port())  # nothing listens there
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["b@example.org"], message(Campaign="c"))
    assert caught.value.smtp_code == 451
    assert b"unreachable" in caught.value.smtp_error and b"retry later" in caught.value.smtp_error
    assert deliveries(relay.dsn) == []


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later",
                                   "421 4.3.2 service shutting down"])
def test_upstream_deferring_mid_message_gives_4xx_and_records_nothing(
        relay: Relay, sink: Sink, reply: str) -> None:
    sink.replies[1] = reply  # the second recipient's copy
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["a@example.org", "b@example.org", "c@example.org"],
                        message(Campaign="c"))
    assert caught.value.smtp_code == 451 and b"b@example.org" in caught.value.smtp_error
    assert deliveries(relay.dsn) == [], "no delivery of a message not accepted"
    # the sending MTA retries; now the upstream takes all, and each is recorded once
    with relay.client() as client:
        client.sendmail("a@sender.example", ["a@example.org", "b@example.org", "c@example.org"],
                        message(Campaign="c"))
    assert [r["user_id"] for r in deliveries(relay.dsn)] == ["a@example.org", "b@example.org",
                                                             "c@example.org"]


def test_permanent_upstream_refusal_is_passed_back_as_5xx(relay: Relay, sink: Sink) -> None:
    sink.replies[0] = "550 5.1.1 no such mailbox"
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["gone@example.org"], message(Campaign="c"))
    assert caught.value.smtp_code == 550 and b"no such mailbox" in caught.value.smtp_error
    assert deliveries(relay.dsn) == []


def test_database_connections_cut_give_4xx_then_new_ones(relay: Relay, sink: Sink) -> None:
    """The relay's idle database connections killed (a PostgreSQL restart, a proxy's
    idle timeout): a message finding one dead is deferred with 451, nothing
    recorded, and the connection is replaced for the client's retry."""
    with relay.client() as client:
        client.sendmail("a@sender.example", ["a@example.org"], message(Campaign="c"))
    cut = query(relay.dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert cut, "the relay keeps its connection open between messages"
    deferred = 0
    for _ in range(3):
        try:
            with relay.client() as client:
                client.sendmail("a@sender.example", ["b@example.org"], message(Campaign="c"))
            break
        except smtplib.SMTPRecipientsRefused as exc:
            assert exc.recipients["b@example.org"][0] == 451
            deferred += 1
    assert deferred <= 1
    assert [r["user_id"] for r in deliveries(relay.dsn)] == ["a@example.org", "b@example.org"]
    assert [m.rcpt_tos for m in sink.received] == [["a@example.org"], ["b@example.org"]]


def test_suppressed_recipient_is_refused_at_rcpt_and_recorded(relay: Relay, sink: Sink) -> None:
    query(relay.dsn, "INSERT INTO suppressions (user_id, channel, reason)"
                     " VALUES ('gone@example.org', 1, 'hard_bounce')")
    with relay.client() as client:
        refused = client.sendmail("a@sender.example", ["gone@example.org", "ok@example.org"],
                                  message(Campaign="c"))
    code, text = refused["gone@example.org"]
    assert code == 550 and text.startswith(b"5.7.1") and b"hard_bounce" in text
    assert [m.rcpt_tos for m in sink.received] == [["ok@example.org"]]
    assert [(r["user_id"], r["status"]) for r in deliveries(relay.dsn)] == [
        ("gone@example.org", 5), ("ok@example.org", 0)]


def test_a_user_named_by_header_is_checked_for_suppression_at_data(
        relay: Relay, sink: Sink) -> None:
    """RCPT checks the address; the user of X-Tracker-User is checked again at DATA
    (the relay skips that second look-up only for users RCPT just checked)."""
    query(relay.dsn, "INSERT INTO suppressions (user_id, channel, reason)"
                     " VALUES ('customer-9', 1, 'complaint')")
    with relay.client() as client:
        client.sendmail("a@sender.example", ["fine@example.org"],
                        message(Campaign="c", User="customer-9"))
    assert sink.received == []
    assert [(r["user_id"], r["status"]) for r in deliveries(relay.dsn)] == [("customer-9", 5)]


def test_malformed_mime_gets_5xx_and_is_never_half_relayed(relay: Relay, sink: Sink) -> None:
    raw = (b"From: a@sender.example\r\nX-Tracker-Campaign: c\r\nContent-Type: text/plain\r\n"
           b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n")
    with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
        client.sendmail("a@sender.example", ["a@example.org", "b@example.org"], raw)
    assert caught.value.smtp_code == 554 and b"x-uuencode" in caught.value.smtp_error
    assert sink.offered == 0 and deliveries(relay.dsn) == []


# --- clients: SIZE, 8BITMIME, SMTPUTF8, AUTH over TLS -------------------------------

def test_size_8bitmime_and_smtputf8_are_advertised_and_honoured(
        relay: Relay, sink: Sink) -> None:
    with relay.client() as client:
        client.ehlo()
        assert {"size", "8bitmime", "smtputf8"} <= set(client.esmtp_features)
        assert int(client.esmtp_features["size"]) == server.MAX_MESSAGE_BYTES
        code, _ = client.mail("a@sender.example", [f"SIZE={server.MAX_MESSAGE_BYTES + 1}"])
        assert code == 552
        client.rset()
        raw = ("From: 差出人@sender.example\r\nX-Tracker-Campaign: c\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
               "\r\n<p>日本語 <a href=\"https://例え.テスト/春\">春</a></p>\r\n").encode()
        client.sendmail("差出人@sender.example", ["受信者@example.jp"], raw,
                        mail_options=["BODY=8BITMIME", "SMTPUTF8"])
    (copy,) = sink.received
    assert copy.mail_from == "差出人@sender.example" and copy.rcpt_tos == ["受信者@example.jp"]
    assert {"BODY=8BITMIME", "SMTPUTF8"} <= {o.upper() for o in copy.options}
    (token,) = clicks(copy.data)
    assert token.url.startswith("https://")


def test_smtputf8_mail_to_an_upstream_without_it_is_refused_saying_why(
        start_relay: Any) -> None:
    plain = Sink()
    controller = Controller(plain, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=False)
    controller.start()
    try:
        relay = start_relay(controller.port)
        with relay.client() as client, pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("差出人@sender.example", ["b@example.org"], message(Campaign="c"),
                            mail_options=["SMTPUTF8"])
    finally:
        controller.stop()
    assert caught.value.smtp_code == 554 and b"does not accept SMTPUTF8" in \
        caught.value.smtp_error
    assert plain.received == [] and deliveries(relay.dsn) == []


def test_who_may_send_without_auth() -> None:
    allow = networks("10.0.0.0/8, 192.0.2.7")
    assert may_send_without_auth(("127.0.0.1", 5), ())
    assert may_send_without_auth(("::1", 5, 0, 0), ())
    assert may_send_without_auth(("10.1.2.3", 5), allow)
    assert may_send_without_auth(("::ffff:192.0.2.7", 5, 0, 0), allow)
    assert not may_send_without_auth(("192.0.2.8", 5), allow)
    assert not may_send_without_auth(None, allow)
    with pytest.raises(SettingsError, match="not a network"):
        networks("10.0.0.0/8,nonsense")
    with pytest.raises(SettingsError, match="TRACKER_SMTP_UPSTREAM"):
        load({})
    assert load({"TRACKER_SMTP_UPSTREAM": "127.0.0.1:25"}).listen_port == 2525


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_auth_with_the_api_key_only_over_tls(start_relay: Any, sink: Sink,
                                             certificate: tuple[Path, Path]) -> None:
    relay = start_relay(sink.port, tls=server.tls_context(*certificate))
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with relay.client() as client:
        client.ehlo()
        assert "starttls" in client.esmtp_features and "auth" not in client.esmtp_features
        client.starttls(context=insecure)
        client.ehlo()
        assert {"PLAIN", "LOGIN"} <= set(client.esmtp_features["auth"].split())
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.login("sender", "not-the-key")
        assert caught.value.smtp_code == 535 and b"TRACKER_API_KEY" in caught.value.smtp_error
        client.login("sender", API_KEY)
        client.sendmail("a@sender.example", ["b@example.org"], message(Campaign="c"))
    assert len(sink.received) == 1


# --- every link of the corpora lands on its target ---------------------------------

def _as_mime(item: Email) -> bytes:
    """An .eml as it is; an HTML file as the html part of a message (base64, so any
    line length goes through SMTP)."""
    if item.is_mime:
        return item.path.read_bytes()
    msg = EmailMessage()
    msg["Subject"] = item.path.name
    msg.set_content(load_email(item, PUBLIC), subtype="html", cte="base64")
    return msg.as_bytes(policy=email.policy.SMTP)


def test_every_link_of_the_corpus_lands_on_its_target(relay: Relay, sink: Sink) -> None:
    items = read_manifest(OWN_EMAILS, "own")
    if shared_emails_missing() is None:
        items += read_manifest(SHARED_EMAILS, "shared")
    assert len(own_emails()) + len(own_emails(mime=True)) == len(read_manifest(OWN_EMAILS,
                                                                               "own"))
    sent = [_as_mime(item).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for item in items]
    with relay.client() as client:
        for index, (item, raw) in enumerate(zip(items, sent, strict=True)):
            head = f"X-Tracker-Campaign: corpus\r\nX-Tracker-Task: {item.id}\r\n".encode()
            client.sendmail("a@sender.example", [f"reader{index}@example.org"], head + raw)
    assert len(sink.received) == len(items)
    rows = {r["user_id"]: r["delivery_id"] for r in deliveries(relay.dsn)}
    for index, (item, raw, copy) in enumerate(zip(items, sent, sink.received, strict=True)):
        assert copy.rcpt_tos == [f"reader{index}@example.org"]
        before = mime_leaves(raw)
        after = mime_leaves(copy.data)
        links = 0
        for (old, rewritable), (new, _) in zip(before, after, strict=True):
            if not rewritable:
                continue
            text = part_text(new)
            source = part_text(old)
            if new.get_content_subtype() == "html":
                text, pixels = strip_pixel(text, PUBLIC, CODEC)
                assert pixels == 1, item.id
                source = without_no_track_markers(source)
                left = [u for u in untracked_http_links(text, PUBLIC)
                        if not acceptable_untracked(u)]
                assert sorted(left) == sorted(item.kept), (item.id, left[:5])
            found = check_identical(source, text, PUBLIC, CODEC)
            assert {data.delivery_id for _, data in found} <= {rows[copy.rcpt_tos[0]]}
            links += len(found)
        if item.links is not None:
            assert links == item.links, item.id
    assert scalar(relay.dsn, "SELECT count(*) FROM deliveries") == len(items)


# --- the command ----------------------------------------------------------------------

@contextlib.contextmanager
def smtp_command(database: str, sink: Sink, tmp_path: Path, *args: str) -> Iterator[int]:
    """``tracker smtp ARGS`` relaying to ``sink``: its port while the block runs; then
    SIGTERM, which must stop it cleanly. Its output is in ``tmp_path/smtp.log``."""
    port = free_port()
    env = {**os.environ, "TRACKER_DATABASE_URL": database, "TRACKER_SECRET_KEYS": SECRET_KEYS,
           "TRACKER_API_KEY": API_KEY, "TRACKER_PUBLIC_URL": PUBLIC,
           "TRACKER_DATA_DIR": str(tmp_path), "TRACKER_SMTP_LISTEN": f"127.0.0.1:{port}",
           "TRACKER_SMTP_UPSTREAM": f"127.0.0.1:{sink.port}"}
    with (tmp_path / "smtp.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tracker", "smtp", *args], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: _listening(port), timeout=60)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0


def test_tracker_smtp_command_relays_and_stops_on_sigterm(database: str, sink: Sink,
                                                          tmp_path: Path) -> None:
    with smtp_command(database, sink, tmp_path) as port, \
            smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail("a@sender.example", ["b@example.org"], message(Campaign="cli"))
    assert [r["user_id"] for r in deliveries(database)] == ["b@example.org"]
    assert len(clicks(sink.received[0].data)) == 4
    assert b"listening on 127.0.0.1:" in (tmp_path / "smtp.log").read_bytes()


def test_tracker_smtp_command_takes_auth_over_starttls(database: str, sink: Sink, tmp_path: Path,
                                                       certificate: tuple[Path, Path]) -> None:
    """The command's own event loop (uvloop) upgrades a connection to TLS and takes
    AUTH with the API key, as the in-process relay does."""
    cert, key = certificate
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with smtp_command(database, sink, tmp_path, "--tls-cert", str(cert),
                      "--tls-key", str(key)) as port, \
            smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.starttls(context=insecure)
        client.login("sender", API_KEY)
        client.sendmail("a@sender.example", ["b@example.org"], message(Campaign="tls"))
    assert [r["user_id"] for r in deliveries(database)] == ["b@example.org"]
    assert len(sink.received) == 1
    assert b"AUTH with the API key over STARTTLS" in (tmp_path / "smtp.log").read_bytes()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_tracker_smtp_without_upstream_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_SMTP_")}
    result = subprocess.run([sys.executable, "-m", "tracker", "smtp"], env=env,
                            capture_output=True, timeout=60)
    assert result.returncode != 0 and b"TRACKER_SMTP_UPSTREAM" in result.stderr
    assert b"Traceback" not in result.stderr
