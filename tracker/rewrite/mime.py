"""Rewriting the text parts of a whole MIME message, leaving the rest alone.

Standard library ``email`` with the modern policy, configured not to refold the
headers it read (``refold_source="none"``) so untouched headers go out as they came
in. Only ``text/html`` and ``text/plain`` leaves that are not attachments are
rewritten, never parts of an attached message (``message/rfc822``). Each keeps its
charset and transfer encoding; a 7bit/8bit part whose lines would pass the RFC 5322
limit of 998 octets after rewriting becomes quoted-printable instead.

Charsets are read as mail clients read them (:mod:`tracker.rewrite.charsets`: the
WHATWG labels, with the Microsoft supersets of Japanese and Korean encodings as
fallbacks) and written back with the codec that decoded them. A part whose charset
nobody knows, or whose bytes do not decode in it, is passed through byte for byte
with a warning, its links untracked: the rest of the message is still rewritten.
"""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Callable
from email import quoprimime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from io import BytesIO

from tracker.rewrite import charsets
from tracker.rewrite.errors import RewriteError

#: RFC 5322 section 2.1.1: at most 998 characters per line, CRLF excluded.
MAX_LINE = 998

PartRewriter = Callable[[str, str], str]  # (subtype, body) -> rewritten body
HeaderMaker = Callable[[Message], dict[str, str]]  # the parsed message -> headers to set


def _decode(data: bytes, label: str, where: str,
            warnings: list[str]) -> tuple[str, charsets.Codec] | None:
    """(text, codec), or None with a warning saying why the part is left as it is."""
    if not charsets.decoders(label):
        warnings.append(f"the {where} part declares charset={label!r}, which is not a "
                        "character encoding mail clients read; it was sent as is, its links "
                        "untracked (label it with its real charset, e.g. UTF-8)")
        return None
    decoded = charsets.decode(data, label)
    if decoded is None:
        warnings.append(f"the {where} part declares charset={label!r} but its bytes do not "
                        f"decode in it; it was sent as is, its links untracked (fix the "
                        "charset parameter or the body)")
    return decoded


def _lines_too_long(data: bytes) -> bool:
    return any(len(line) > MAX_LINE for line in data.splitlines())


def _set_body(part: Message, data: bytes, cte: str) -> None:
    """Put encoded ``data`` back as the part's payload in transfer encoding ``cte``."""
    if cte in ("7bit", "8bit", "binary", "") and _lines_too_long(data):
        cte = "quoted-printable"
        if "Content-Transfer-Encoding" in part:
            part.replace_header("Content-Transfer-Encoding", cte)
        else:
            part["Content-Transfer-Encoding"] = cte
    if cte == "base64":
        payload = base64.encodebytes(data).decode("ascii")
    elif cte == "quoted-printable":
        payload = quoprimime.body_encode(data.decode("latin-1"), maxlinelen=76, eol="\n")
        if data.endswith(b"\n") and not payload.endswith("\n"):
            payload += "\n"
    else:
        payload = data.decode("ascii", "surrogateescape")
    part.set_payload(payload)


def _rewrite_leaf(part: Message, rewrite: PartRewriter, warnings: list[str]) -> None:
    subtype = part.get_content_subtype()
    where = f"text/{subtype}"
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte not in ("7bit", "8bit", "binary", "base64", "quoted-printable"):
        raise RewriteError(f"the {where} part has Content-Transfer-Encoding {cte!r}; use "
                           "7bit, 8bit, base64 or quoted-printable")
    payload = part.get_payload(decode=True)  # bytes, or None when there is none
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    decoded = _decode(data, charset, where, warnings)
    if decoded is None:
        return
    text, codec = decoded
    rewritten = rewrite(subtype, text)
    if rewritten == text:
        return  # nothing to track: leave the part exactly as it came
    try:
        encoded = codec.encode(rewritten)
    except UnicodeEncodeError as exc:  # pragma: no cover - tracker URLs are ASCII
        raise RewriteError(f"the rewritten {where} part cannot be encoded in {codec.name}"
                           ) from exc
    _set_body(part, encoded, cte)


def _walk(part: Message, rewrite: PartRewriter, warnings: list[str]) -> None:
    if part.get_content_maintype() == "message":
        return  # an attached or forwarded message is someone else's mail: never rewrite
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):  # always, in a multipart's list of parts
                _walk(sub, rewrite, warnings)
        return
    if part.get_content_disposition() == "attachment":
        return
    if part.get_content_type() in ("text/html", "text/plain"):
        _rewrite_leaf(part, rewrite, warnings)


def rewrite_message(raw: bytes, rewrite: PartRewriter, headers: HeaderMaker,
                    warnings: list[str]) -> bytes:
    """Rewrite every inline text/html and text/plain part; set the headers that
    ``headers`` makes from the parsed message on the top (replacing those names).

    ``rewrite`` is called in document order, so link positions follow the message;
    parts left as they are get a line in ``warnings``."""
    if not raw.strip():
        raise RewriteError("the message is empty; give a whole MIME message (headers, blank "
                           "line, body), or use --html/--text for a bare body")
    crlf = b"\r\n" in raw[:4096]
    policy = email.policy.default.clone(
        linesep="\r\n" if crlf else "\n", refold_source="none", max_line_length=MAX_LINE)
    message: EmailMessage = email.message_from_bytes(raw, policy=policy)
    if message.defects and not message.keys():
        raise RewriteError("the input has no MIME headers; pass --html or --text for a bare "
                           "body")
    _walk(message, rewrite, warnings)
    for name, value in headers(message).items():
        del message[name]
        message[name] = value
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(message)
    return out.getvalue()
