"""Issue 18, relay speed: a MIME message parsed once and filled per recipient
(tracker.rewrite.mimetemplate) gives what parsing and generating the whole message
gives (tracker.rewrite.mime), for every email of both corpora wrapped in every
transfer encoding, Japanese charsets, nested multiparts and attachments; and the
cases it leaves to the slow path still come out right.

Byte for byte, except inside quoted-printable parts in a stateless charset: those
are encoded piece by piece (soft line breaks fall elsewhere), so there the decoded
bytes must be equal, and every line within 76 characters."""

from __future__ import annotations

import base64
import email.policy
import quopri
import random
import re
from email.message import EmailMessage

import pytest

from tests.rewrite_support import email_params, load_email, own_emails
from tests.support import SECRET_KEYS
from tracker.rewrite import MessageIds, Rewriter, mime
from tracker.rewrite import mimetemplate as mt
from tracker.rewrite.links import TRACKING_OFF
from tracker.tokens import Channel, TokenCodec

PUBLIC = "https://t.example.com"
CODEC = TokenCodec(SECRET_KEYS.split(","))
IDS = MessageIds(424242, 3, 4, Channel.EMAIL)
PNG = bytes(range(256)) * 8


def slow(ids: MessageIds, raw: bytes) -> tuple:
    """The whole-message path: the same Rewriter with its MIME templates switched off."""
    rewriter = Rewriter(CODEC, PUBLIC)
    rewriter.mime_templates.get = lambda raw: None  # type: ignore[method-assign]
    return outcome(rewriter.rewrite_mime(ids, raw))


def outcome(result) -> tuple:
    return (result.mime, result.headers, result.links, result.has_pixel, result.warnings)


def same_message(fast: bytes, slow_bytes: bytes) -> None:
    """Equal bytes; or, when quoted-printable parts differ, equal but for the
    encoding of those parts' text."""
    if fast == slow_bytes:
        return
    policy = email.policy.default
    a = email.message_from_bytes(fast, policy=policy)
    b = email.message_from_bytes(slow_bytes, policy=policy)
    head = re.compile(rb"\r?\n\r?\n")
    assert head.split(fast, 1)[0] == head.split(slow_bytes, 1)[0], "heads differ"
    parts_a, parts_b = list(a.walk()), list(b.walk())
    assert len(parts_a) == len(parts_b)
    qp = 0
    for x, y in zip(parts_a, parts_b, strict=True):
        assert x.items() == y.items()
        if x.is_multipart():
            assert (x.preamble, x.epilogue) == (y.preamble, y.epilogue)
            continue
        if str(x.get("Content-Transfer-Encoding", "")).lower() == "quoted-printable":
            qp += 1
            assert x.get_payload(decode=True) == y.get_payload(decode=True)
            assert all(len(line) <= 76 for line in x.get_payload().splitlines())
        else:
            assert x.get_payload() == y.get_payload()
    assert qp, "only quoted-printable parts may differ"


def assert_same(raw: bytes, ids: MessageIds = IDS, *, templated: bool = True) -> bytes:
    """Three recipients through one Rewriter (the first builds the template, the
    others fill it; then a new bytes object with a new head, as one SMTP message per
    recipient sends it), each equal to the slow path's copy."""
    rewriter = Rewriter(CODEC, PUBLIC)
    for n, message in enumerate((raw, raw, b"X-Copy: 2\n" + raw if b"\r\n" not in raw[:4096]
                                 else b"X-Copy: 2\r\n" + raw)):
        each = ids._replace(delivery_id=ids.delivery_id + n)
        fast = outcome(rewriter.rewrite_mime(each, message))
        expected = slow(each, message)
        assert fast[1:] == expected[1:], f"copy {n} differs"
        same_message(fast[0], expected[0])
    assert (rewriter.mime_templates.hits > 0) == templated, rewriter.mime_templates.hits
    return fast[0]


def text_part(body: str, charset: str, cte: str, subtype: str = "plain",
              nl: str = "\n") -> str:
    data = body.encode(charset)
    if cte == "base64":
        encoded = base64.encodebytes(data).decode("ascii")
    elif cte == "quoted-printable":
        encoded = quopri.encodestring(data).decode("ascii")
    else:
        encoded = data.decode("ascii", "surrogateescape")
    return (f'Content-Type: text/{subtype}; charset="{charset}"{nl}'
            f"Content-Transfer-Encoding: {cte}{nl}{nl}{encoded}")


def wrap(html: str, charset: str, cte: str, nl: str = "\n", *, nested: bool = False) -> bytes:
    """A multipart/alternative (text + html) message, optionally inside
    multipart/mixed with an attachment and multipart/related with an inline image."""
    text = "Read it online: https://example.com/online?id=1&x=2\n{{unsubscribe_url}}\n"
    alternative = nl.join([
        'Content-Type: multipart/alternative; boundary="ALT"', "", "--ALT",
        text_part(text, charset, cte, "plain", nl), "--ALT",
        text_part(html, charset, cte, "html", nl), "--ALT--", ""])
    head = nl.join(["From: =?UTF-8?B?" + base64.b64encode("送信者".encode()).decode() +
                    "?= <news@example.com>", "To: someone@example.org",
                    "Subject: Spring news", "Message-ID: <m1@example.com>",
                    "List-Unsubscribe: <mailto:leave@example.com>", "MIME-Version: 1.0"])
    if not nested:
        body = head + nl + alternative
    else:
        image = base64.encodebytes(PNG).decode("ascii").replace("\n", nl)
        attachment = base64.encodebytes(b"<a href='https://attachment.example/'>x</a>")
        body = nl.join([
            head, 'Content-Type: multipart/mixed; boundary="MIX"', "", "preamble text",
            "--MIX", 'Content-Type: multipart/related; boundary="REL"', "", "--REL",
            alternative, "--REL", "Content-Type: image/png",
            "Content-Transfer-Encoding: base64", "Content-ID: <logo@example.com>", "",
            image, "--REL--", "", "--MIX", 'Content-Type: text/html; charset="utf-8"',
            'Content-Disposition: attachment; filename="page.html"',
            "Content-Transfer-Encoding: base64", "",
            attachment.decode("ascii").replace("\n", nl), "--MIX--", "epilogue", ""])
    return body.encode("utf-8", "surrogateescape")


def encodable(html: str, charset: str) -> bool:
    try:
        html.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


# --- every corpus email, in every transfer encoding ------------------------------

@pytest.mark.parametrize("message", own_emails(mime=True), ids=lambda e: e.id)
def test_own_mime_messages(message) -> None:
    assert_same(message.path.read_bytes())


@pytest.mark.slow  # a long sweep: ~60 emails x 10 wrappings x 3 copies, half the fast loop's CPU
@pytest.mark.parametrize("message", email_params())
def test_corpus_emails_in_every_encoding(message) -> None:
    html = load_email(message, PUBLIC)
    for charset in ("utf-8", "iso-2022-jp", "shift_jis"):
        if not encodable(html, charset):
            continue
        for cte in ("8bit", "quoted-printable", "base64"):
            for nl in ("\n", "\r\n") if cte == "quoted-printable" else ("\n",):
                assert_same(wrap(html, charset, cte, nl, nested=cte == "base64"))


def test_japanese_7bit_iso_2022_jp_and_nested_parts_keep_their_bytes() -> None:
    html = '<p>日本語の本文 <a href="https://example.jp/商品?id=1&amp;c=2">リンク</a></p>\n'
    raw = wrap(html, "iso-2022-jp", "7bit", "\r\n", nested=True)
    out = assert_same(raw)
    assert base64.encodebytes(PNG).replace(b"\n", b"\r\n") in out
    assert b"preamble text\r\n--MIX\r\n" in out and out.endswith(b"--MIX--\r\nepilogue\r\n")


# --- what the template leaves to the slow path, and odd messages ------------------

def test_long_urls_in_7bit_go_the_slow_way_and_turn_quoted_printable() -> None:
    raw = (b"From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
           b"Content-Transfer-Encoding: 7bit\n\nGo https://example.com/" + b"x" * 900 + b" now\n")
    out = assert_same(raw)
    assert b"Content-Transfer-Encoding: quoted-printable" in out


@pytest.mark.parametrize("raw", [
    b"From someone Mon Dec  7 00:00:00 2026\nFrom: a@example.com\n\nhttps://a.example/\n",
    b"Subject: a bare\rCR\nContent-Type: text/plain\n\nhttps://a.example/\n",
    b"Subject: no body separator\nhttps://a.example/\n",
])
def test_messages_left_to_the_slow_path(raw: bytes) -> None:
    assert_same(raw, templated=False)


@pytest.mark.parametrize("raw", [
    b"From: a@example.com\nSubject: hi\nContent-Type: text/plain\n\nno links here\n",
    b"Subject:tight\nX-Folded: one\n  two\n\tthree\nContent-Type: text/plain;\n charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n\n\xe3\x81\x82 https://a.example/\n",
    "Subject: 日本語の件名\nContent-Type: text/plain; charset=utf-8\n\nhttps://a.example/\n"
    .encode(),
    b"Content-Type: text/plain; charset=x-no-such-charset\n\nhttps://a.example/\n",
    b"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    b'\xff\xfe<a href="https://a.example/">\n',
    b"List-Unsubscribe: <https://t.example.com/u/old.token>, <mailto:x@example.com>\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\nX-Tracker-Delivery: 1\n"
    b"Content-Type: text/plain\n\nhttps://a.example/ no newline at the end",
    b"Content-Type: text/plain\n\n",
    b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
    b"trailing space \nand a lone dot\n.\n=E2=82=AC https://a.example/?a=1 \t\n",
    b"Content-Type: multipart/mixed\n\n--X\nContent-Type: text/plain\n\nhttps://a.example/\n--X--\n",
    b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n--B\n'
    b"Content-Type: text/plain\n\nhttps://outer.example/\n--B\nContent-Type: message/rfc822\n\n"
    b"From: x@example.com\nContent-Type: text/plain\n\nhttps://inner.example/\n--B--\n",
])
def test_odd_messages_fill_as_they_parse(raw: bytes) -> None:
    assert_same(raw)


def test_untracked_campaigns_and_push_messages() -> None:
    raw = wrap('<a href="https://a.example/">a</a> <a href="{{unsubscribe_url}}">u</a>\n',
               "utf-8", "quoted-printable")
    assert_same(raw, IDS._replace(tracking=TRACKING_OFF))
    assert_same(raw, IDS._replace(channel=Channel.PUSH))
    plain = b"Content-Type: text/plain\n\nno placeholder https://a.example/\n"
    assert_same(plain, IDS._replace(tracking=TRACKING_OFF))


def test_bad_transfer_encoding_is_the_same_error() -> None:
    raw = b"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nabc\n"
    rewriter = Rewriter(CODEC, PUBLIC)
    with pytest.raises(Exception, match="x-uuencode") as fast:
        rewriter.rewrite_mime(IDS, raw)
    with pytest.raises(Exception, match="x-uuencode") as slow_error:
        slow(IDS, raw)
    assert str(fast.value) == str(slow_error.value)


@pytest.mark.parametrize("value", [
    "<https://t.example.com/u/AbC-_.xyz>", "<https://t.example.com/u/a>, <mailto:u@x.example>",
    "List-Unsubscribe=One-Click", "1234567890", "a  b", " lead", "trail ", "=?utf-8?q?x?=",
    "x" * 990, "x" * 997, "(comment) <a@b>", "\"quoted\" value", "a,b;c:d",
])
def test_header_fast_path_writes_what_the_generator_writes(value: str) -> None:
    for linesep in ("\n", "\r\n"):
        policy = email.policy.default.clone(linesep=linesep, refold_source="none",
                                            max_line_length=998)
        for name in ("List-Unsubscribe", "X-Tracker-Delivery"):
            expected = policy.fold_binary(*policy.header_store_parse(name, value))
            assert mt.fold(policy, name, value) == expected


def test_templates_are_kept_by_body_and_bounded() -> None:
    templates = mt.MimeTemplates(max_bytes=10_000, max_entries=2)
    bodies = [b"Content-Type: text/plain\n\nhttps://a.example/%d\n" % n for n in range(3)]
    for raw in bodies:
        assert templates.get(raw) is not None
    assert len(templates) == 2 and templates.misses == 3
    assert templates.get(b"To: x@example.org\n" + bodies[2]) is not None
    assert templates.hits == 1
    big = b"Content-Type: text/plain\n\n" + b"x" * 20_000
    assert templates.get(big) is not None and len(templates) == 2  # built, not kept


def test_message_built_by_the_standard_library() -> None:
    message = EmailMessage()
    message["From"] = "news@example.com"
    message["Subject"] = "Spring"
    message.set_content("Spring: https://shop.example.com/spring\n")
    message.add_alternative('<p><a href="https://shop.example.com/">shop</a> é</p>' * 200,
                            subtype="html")
    assert_same(message.as_bytes(policy=email.policy.SMTP))


def test_quoted_printable_lines_stay_within_76_characters_and_decode_back() -> None:
    """binascii.b2a_qp alone lets a space before a line break make a 78-character line."""
    rng = random.Random(18)
    for _ in range(2000):
        data = bytes(rng.choice(b"ab =\t\n.\xe3x" * 3) for _ in range(rng.randint(0, 300)))
        encoded = mime.quoted_printable(data)
        assert max(map(len, encoded.splitlines()), default=0) <= 76, (data, encoded)
        assert quopri.decodestring(encoded) == data
