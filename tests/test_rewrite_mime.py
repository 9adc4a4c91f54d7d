"""Issue 3, whole MIME messages: charsets of Japanese mail, every transfer encoding,
attachments and inline images untouched, lines within RFC 5322 limits; and the
messages of the repository's own corpus (tests/data/emails/*.eml)."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re

import pytest

from tests.rewrite_support import (
    Email,
    check_identical,
    mime_leaves,
    own_emails,
    part_text,
    strip_pixel,
)
from tests.support import SECRET_KEYS
from tracker.rewrite import MessageIds, RewriteError, Rewriter
from tracker.tokens import Channel, Purpose, TokenCodec

PUBLIC = "https://t.example.com"
CODEC = TokenCodec(SECRET_KEYS.split(","))
IDS = MessageIds(424242, 3, 4, Channel.EMAIL)

TEXT = ("こんにちは、世界。\n詳細は https://example.jp/a?x=1&y=2 をご覧ください。\n"
        "配信停止: {{unsubscribe_url}}\n")
HTML = ('<html><head><meta charset="x"></head><body><p>日本語の本文です。'
        '<a href="https://example.jp/商品?id=1&amp;c=2">リンク</a> '
        '<a href="mailto:info@example.jp">問い合わせ</a></p></body></html>\n')
PNG = bytes(range(256)) * 4
ATTACHMENT = b'<html><a href="https://attachment.example/">not a message link</a></html>'

CASES = [(cs, cte) for cs in ("utf-8", "iso-2022-jp", "shift_jis")
         for cte in ("7bit", "8bit", "quoted-printable", "base64")
         if not (cte == "7bit" and cs != "iso-2022-jp")]


def encode(body: str, charset: str, cte: str) -> bytes:
    data = body.encode(charset)
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quopri.encodestring(data)
    return data


def build(charset: str, cte: str, nl: bytes = b"\n") -> bytes:
    def part(ctype: str, body: str) -> bytes:
        return (f"Content-Type: {ctype}; charset=\"{charset}\"\nContent-Transfer-Encoding: "
                f"{cte}\n\n").encode() + encode(body, charset, cte)
    raw = b"\n".join([
        b"From: sender@example.com", b"To: user@example.jp",
        b"Subject: =?UTF-8?B?" + base64.b64encode("お知らせ".encode()) + b"?=",
        b"Message-ID: <m1@example.com>", b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="MIX"', b"",
        b"preamble", b"--MIX", b'Content-Type: multipart/related; boundary="REL"', b"",
        b"--REL", b'Content-Type: multipart/alternative; boundary="ALT"', b"",
        b"--ALT", part("text/plain", TEXT), b"--ALT", part("text/html", HTML), b"--ALT--",
        b"--REL", b"Content-Type: image/png", b"Content-Transfer-Encoding: base64",
        b"Content-ID: <logo@example.com>", b'Content-Disposition: inline; filename="logo.png"',
        b"", base64.encodebytes(PNG), b"--REL--",
        b"--MIX", b'Content-Type: text/html; charset="utf-8"',
        b'Content-Disposition: attachment; filename="page.html"',
        b"Content-Transfer-Encoding: base64", b"", base64.encodebytes(ATTACHMENT), b"--MIX--", b"",
    ])
    return raw.replace(b"\n", nl)


def leaves(raw: bytes) -> list:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return [p for p in message.walk() if not p.is_multipart()]


def decoded(part) -> str:
    return part.get_payload(decode=True).decode(part.get_content_charset())


@pytest.mark.parametrize(("charset", "cte"), CASES)
def test_round_trip(charset: str, cte: str) -> None:
    raw = build(charset, cte)
    result = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw)
    out = result.mime
    assert all(len(line) <= 998 for line in out.split(b"\n"))
    plain, rich, image, attachment = leaves(out)
    assert plain.get_content_charset() == rich.get_content_charset() == charset
    assert plain["Content-Transfer-Encoding"] == cte
    # text part: the URL is tracked, the placeholder is the unsubscribe link
    unsubscribe = result.headers["List-Unsubscribe"][1:-1]
    text = decoded(plain)
    assert unsubscribe in text
    links = check_identical(TEXT.replace("{{unsubscribe_url}}", unsubscribe), text, PUBLIC,
                            CODEC)
    assert [d.url for _, d in links] == ["https://example.jp/a?x=1&y=2"]
    # html part: one pixel, the link decoded and tracked, mailto untouched
    body, pixels = strip_pixel(decoded(rich), PUBLIC, CODEC)
    assert pixels == 1
    links = check_identical(HTML, body, PUBLIC, CODEC)
    assert [(d.url, d.link_position) for _, d in links] == [("https://example.jp/商品?id=1&c=2", 1)]
    # inline image and attachment: same bytes, same encoded text
    assert image.get_payload(decode=True) == PNG and attachment.get_payload(
        decode=True) == ATTACHMENT
    original = leaves(raw)
    assert image.get_payload() == original[2].get_payload()
    assert attachment.get_payload() == original[3].get_payload()
    # headers: originals kept verbatim, one-click unsubscribe added
    head = out.split(b"\n\n", 1)[0]
    assert head.startswith(raw.split(b"\n\n", 1)[0])
    assert head.count(b"List-Unsubscribe:") == 1
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
    assert CODEC.verify(Purpose.UNSUBSCRIBE, unsubscribe.rsplit("/", 1)[1]).delivery_id == 424242


def test_crlf_messages_stay_crlf() -> None:
    raw = build("utf-8", "quoted-printable", b"\r\n")
    out = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw).mime
    assert out.count(b"\n") == out.count(b"\r\n")
    assert "日本語" in decoded(leaves(out)[1])


def test_long_urls_turn_7bit_into_quoted_printable() -> None:
    url = "https://example.com/" + "x" * 900
    raw = (b"From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
           b"Content-Transfer-Encoding: 7bit\n\nGo " + url.encode() + b" now\n")
    out = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw).mime
    assert all(len(line) <= 998 for line in out.split(b"\n"))
    (part,) = leaves(out)
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    text = part.get_payload(decode=True).decode()
    assert [d.url for _, d in check_identical("Go " + url + " now\n", text, PUBLIC, CODEC)] == [url]


def test_cp932_characters_in_shift_jis_mail() -> None:
    body = "①番目の商品 https://example.jp/1 です\n"
    raw = (b"From: a@example.jp\nMIME-Version: 1.0\nContent-Type: text/plain; charset=Shift_JIS\n"
           b"Content-Transfer-Encoding: 8bit\n\n" + body.encode("cp932"))
    out = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw).mime
    text = leaves(out)[0].get_payload(decode=True).decode("cp932")
    assert text.startswith("①番目の商品 " + PUBLIC + "/c/")


def test_message_without_links_is_unchanged_but_gets_headers() -> None:
    raw = b"From: a@example.com\nSubject: hi\nContent-Type: text/plain\n\nno links here\n"
    out = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw).mime
    assert out.startswith(b"From: a@example.com\nSubject: hi\nContent-Type: text/plain\n")
    assert out.endswith(b"\n\nno links here\n")


def test_attached_messages_are_not_rewritten() -> None:
    inner = b"From: x@example.com\nContent-Type: text/plain\n\nhttps://inner.example/\n"
    raw = (b'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n'
           b'\n--B\nContent-Type: text/plain\n\nhttps://outer.example/\n--B\n'
           b"Content-Type: message/rfc822\n\n" + inner + b"--B--\n")
    out = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw).mime
    assert b"https://inner.example/" in out and b"https://outer.example/" not in out


@pytest.mark.parametrize(("raw", "message"), [
    (b"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nabc\n", "x-uuencode"),
    (b"  \n", "empty"),
])
def test_bad_messages_get_a_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(RewriteError, match=message):
        Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw)


@pytest.mark.parametrize(("raw", "message"), [
    (b"Content-Type: text/plain; charset=x-no-such-charset\n\nhttps://a.example/\n",
     "not a character encoding mail clients read"),
    (b"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
     b'\xff\xfe<a href="https://a.example/">\n', "do not decode"),
    (b"Content-Type: text/plain; charset=iso-2022-jp\n\n\x1b$B\xff\xff https://a.example/\n",
     "do not decode"),
])
def test_unreadable_parts_are_sent_as_is_with_a_warning(raw: bytes, message: str) -> None:
    """Issue 16: a part nobody can read goes out byte for byte, links untracked, and
    the sender is told; the message is never refused for it."""
    result = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw)
    assert result.links == 0 and any(message in w and "sent as is" in w
                                     for w in result.warnings), result.warnings
    assert result.mime.split(b"\n\n", 1)[1] == raw.split(b"\n\n", 1)[1]
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in result.mime


def test_push_mime_has_no_pixel_or_list_headers() -> None:
    raw = build("utf-8", "8bit")
    result = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS._replace(channel=Channel.PUSH), raw)
    assert b"List-Unsubscribe" not in result.mime and not result.has_pixel
    assert re.search(rb"/o/", result.mime) is None


# --- the own corpus's messages -------------------------------------------------------

def head(raw: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


@pytest.mark.parametrize("message", own_emails(mime=True), ids=lambda e: e.id)
def test_corpus_messages_keep_every_byte_but_their_links(message: Email) -> None:
    raw = message.path.read_bytes()
    result = Rewriter(CODEC, PUBLIC).rewrite_mime(IDS, raw)
    out = result.mime
    assert all(len(line) <= 998 for line in out.splitlines())
    if b"\r\n" in raw:
        assert out.count(b"\n") == out.count(b"\r\n"), "a CRLF message came out with bare LF"
    assert head(out).startswith(head(raw)), "original headers changed"
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head(out)
    before, after = mime_leaves(raw), mime_leaves(out)
    assert [(p.get_content_type(), r) for p, r in before] == [
        (p.get_content_type(), r) for p, r in after]
    positions = []
    for (old, rewritable), (new, _) in zip(before, after, strict=True):
        if not rewritable:
            assert new.get_payload() == old.get_payload(), old.get_content_type()
            continue
        assert new.get_content_charset() == old.get_content_charset()
        assert new["Content-Transfer-Encoding"] == old["Content-Transfer-Encoding"]
        text = part_text(new)
        if new.get_content_subtype() == "html":
            text, pixels = strip_pixel(text, PUBLIC, CODEC)
            assert pixels == 1
        links = check_identical(part_text(old), text, PUBLIC, CODEC)
        positions += [data.link_position for _, data in links]
    assert positions == list(range(result.links))  # document order, text part first
    assert result.links == message.links, "the manifest's link count"
