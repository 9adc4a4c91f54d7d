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
import binascii
import email
import email.policy
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from io import BytesIO

from tracker.rewrite import charsets
from tracker.rewrite.errors import RewriteError

#: RFC 5322 section 2.1.1: at most 998 characters per line, CRLF excluded.
MAX_LINE = 998
#: RFC 2045 section 6.7: quoted-printable lines of at most 76 characters.
QP_LINE = 76

#: transfer encodings that leave the bytes as they are
UNENCODED = ("7bit", "8bit", "binary", "")

#: The policies of the output: the message's own line endings (CRLF when its first
#: 4 KB have one), untouched headers not refolded.
POLICY_CRLF = email.policy.default.clone(linesep="\r\n", refold_source="none",
                                         max_line_length=MAX_LINE)
POLICY_LF = POLICY_CRLF.clone(linesep="\n")

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


def lines_too_long(data: bytes) -> bool:
    return any(len(line) > MAX_LINE for line in data.splitlines())


def quoted_printable(data: bytes) -> bytes:
    """RFC 2045 quoted-printable by the C codec (``=``, 8-bit bytes and whitespace
    before a line break encoded, line breaks kept), lines of at most 76 characters.

    ``binascii.b2a_qp`` encodes a space before a line break in place, which can make
    that line 78 characters long; such lines get one more soft break."""
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    if max(map(len, encoded.splitlines()), default=0) <= QP_LINE:
        return encoded
    return _soft_breaks(encoded)


def _soft_breaks(encoded: bytes) -> bytes:
    """Lines over 76 characters cut by soft line breaks, never inside an ``=XX``."""
    out: list[bytes] = []
    for line in encoded.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        end = line[len(body):]
        while len(body) > QP_LINE:
            cut = QP_LINE - 1
            if body[cut - 1:cut] == b"=":
                cut -= 1
            elif body[cut - 2:cut - 1] == b"=":
                cut -= 2
            out.append(body[:cut] + b"=\n")
            body = body[cut:]
        out.append(body + end)
    return b"".join(out)


def transfer_encode(data: bytes, cte: str) -> bytes:
    """``data`` in transfer encoding ``cte`` (7bit/8bit/binary: as is)."""
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quoted_printable(data)
    return data


def _set_body(part: Message, data: bytes, cte: str) -> None:
    """Put encoded ``data`` back as the part's payload in transfer encoding ``cte``."""
    if cte in UNENCODED and lines_too_long(data):
        cte = "quoted-printable"
        if "Content-Transfer-Encoding" in part:
            part.replace_header("Content-Transfer-Encoding", cte)
        else:
            part["Content-Transfer-Encoding"] = cte
    part.set_payload(transfer_encode(data, cte).decode("ascii", "surrogateescape"))


def read_leaf(part: Message, warnings: list[str]
              ) -> tuple[str, str, str, charsets.Codec] | None:
    """(subtype, transfer encoding, text, codec) of a text part to rewrite, or None
    (with a warning) when its text cannot be read; RewriteError for a transfer
    encoding that is not one of MIME's."""
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
        return None
    text, codec = decoded
    return subtype, cte, text, codec


def _rewrite_leaf(part: Message, rewrite: PartRewriter, warnings: list[str]) -> None:
    found = read_leaf(part, warnings)
    if found is None:
        return
    subtype, cte, text, codec = found
    rewritten = rewrite(subtype, text)
    if rewritten == text:
        return  # nothing to track: leave the part exactly as it came
    try:
        encoded = codec.encode(rewritten)
    except UnicodeEncodeError as exc:  # pragma: no cover - tracker URLs are ASCII
        raise RewriteError(f"the rewritten text/{subtype} part cannot be encoded in "
                           f"{codec.name}") from exc
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
    policy = POLICY_CRLF if b"\r\n" in raw[:4096] else POLICY_LF
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
