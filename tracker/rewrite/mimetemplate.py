"""A MIME message parsed once, filled per recipient: the fast path of ``rewrite_mime``.

Parsing a 100 KB message with Python's ``email`` package and generating it again
costs milliseconds; a newsletter relayed to many recipients (one SMTP message
each, or many recipients in one) is the same bytes every time but for its
top-level headers. So a message is cut in two:

- its **head** (the top-level header block), parsed on its own per message (it
  differs per message: To, Message-ID, Date) and written back as the generator
  writes headers;
- its **body**, parsed once with the top-level ``Content-*`` headers that shape
  it, and generated once with a placeholder in place of every rewritable text
  part: the output cut at the placeholders is a template of constant bytes and
  holes. Per recipient a hole gets its part's text rewritten, encoded in its
  charset and transfer encoding with C codecs, and line endings made those of
  the message, as :func:`tracker.rewrite.mime.rewrite_message` would write it:
  byte for byte, but for a quoted-printable part in a stateless charset, which is
  encoded piece by piece (:func:`_pieces`: the same decoded bytes, soft line
  breaks elsewhere). The tests hold the two paths equal on both email corpora.

Whatever this module does not reproduce exactly goes the slow way instead
(:meth:`MimeTemplates.get` returns None, :meth:`MimeTemplate.fill` returns None): a head
without a blank line after it, a Unix ``From `` line, a bare CR in the head, a
multipart without a boundary (the generator would invent one at random), and a
7bit/8bit part whose rewritten lines pass 998 octets (it turns quoted-printable,
which changes its headers).
"""

from __future__ import annotations

import email
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from io import BytesIO
from typing import NamedTuple

from tracker.rewrite import charsets, mime
from tracker.rewrite.errors import RewriteError
from tracker.rewrite.template import Template

#: what the email parser takes for a header line (feedparser.headerRE, in bytes)
_HEADER_LINE = re.compile(rb"[\041-\071\073-\176]+:|[\t ]")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_NEWLINES = re.compile(rb"\r\n|\r|\n")
#: a header value written as is by the generator (printable ASCII words, single
#: spaces, no encoded word): ``Name: value`` + line ending, checked against
#: ``policy.fold_binary`` by the tests
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")

#: templates kept: messages larger than this (in total) are not pinned in memory
MAX_CACHED_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 32
#: heads kept (a few KB each at most)
HEADS = 64


def policy_for(raw: bytes) -> EmailPolicy[EmailMessage]:
    """The policy of :func:`mime.rewrite_message` for ``raw`` (CRLF or LF out)."""
    crlf = b"\r\n" in raw[:4096]
    return mime.POLICY_CRLF if crlf else mime.POLICY_LF


def newlines(data: bytes, nl: bytes) -> bytes:
    """``data`` with every line ending (CRLF, CR, LF) made ``nl``: what the generator
    does to a text payload (``Generator._write_lines``). Counted first: most bodies
    have one kind of line ending, which ``bytes.replace`` (or nothing) handles."""
    cr = data.count(b"\r")
    if cr == 0:
        return data if nl == b"\n" else data.replace(b"\n", nl)
    if cr == data.count(b"\r\n") == data.count(b"\n"):
        return data if nl == b"\r\n" else data.replace(b"\r\n", b"\n")
    return _NEWLINES.sub(nl, data)


def fold(policy: EmailPolicy[EmailMessage], name: str, value: str) -> bytes:
    """A header set by the program, as the generator writes it."""
    if (len(name) + 2 + len(value) <= mime.MAX_LINE and value.isascii()
            and "=?" not in value and _PLAIN_VALUE.fullmatch(value)):
        return f"{name}: {value}".encode("ascii") + policy.linesep.encode("ascii")
    return policy.fold_binary(*policy.header_store_parse(name, value))


# --- the head --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Head:
    """The top-level headers: each as written out, and what the body's parse needs."""

    policy: EmailPolicy[EmailMessage]
    #: (lower-case name, the header as the generator writes it), in order
    fields: tuple[tuple[str, bytes], ...]
    #: the sender's own List-Unsubscribe values, joined as rewrite_mime reads them
    list_unsubscribe: str
    #: the raw Content-* header lines (they shape the body's parse)
    content_lines: bytes

    def render(self, replaced: dict[str, str]) -> bytes:
        """Every header but the names in ``replaced``, then those, as ``del m[name];
        m[name] = value`` leaves them."""
        if not replaced:
            return b"".join(field for _, field in self.fields)
        names = {name.lower() for name in replaced}
        out = [field for name, field in self.fields if name not in names]
        out.extend(fold(self.policy, name, value) for name, value in replaced.items())
        return b"".join(out)


def split_head(raw: bytes) -> tuple[bytes, bytes] | None:
    """(the head with its last line ending, the body after the blank line), or None
    when the head is not one the email parser reads as plain header lines."""
    match = _HEAD_END.search(raw)
    if match is None or match.start() == 0:
        return None
    start = match.start()
    lines = raw[:start]
    if b"\r" in lines.replace(b"\r\n", b"") or lines.startswith(b"From "):
        return None  # a bare CR or a Unix From line: the parser reads those its own way
    if lines[:1] in (b" ", b"\t"):
        return None
    for line in lines.splitlines():
        if not _HEADER_LINE.match(line):
            return None
    return raw[:start + (2 if raw[start] == 13 else 1)], raw[match.end():]


def parse_head(head: bytes, policy: EmailPolicy[EmailMessage]) -> Head:
    message = email.message_from_bytes(head + policy.linesep.encode("ascii"), policy=policy)
    fields = tuple((name.lower(), policy.fold_binary(name, value))
                   for name, value in message.raw_items())
    existing = ", ".join(str(v) for v in message.get_all("List-Unsubscribe") or ())
    lines: list[bytes] = []
    keep = False
    for line in head.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            keep = line[:8].lower() == b"content-"
        if keep:
            lines.append(line)
    content = b"".join(lines)
    if content and not content.endswith(b"\n"):
        content += b"\n"
    return Head(policy, fields, existing, content)


# --- the body ------------------------------------------------------------------

class PartFiller(NamedTuple):
    """How the engine rewrites a part: ``text`` gives the whole rewritten body;
    ``pieces`` gives its compiled template and this recipient's slot values (None:
    use ``text``), so the literal parts can be encoded once per template."""

    text: mime.PartRewriter
    pieces: Callable[[str, str], tuple[Template, list[str]] | None]


#: Charsets whose encoding of a text is the concatenation of its pieces' encodings
#: (no shift states, no byte order mark): their parts can be encoded piecewise.
STATELESS = frozenset(("utf-8", "ascii", "windows-1252", "cp1252", "iso8859-1", "latin-1",
                       "iso8859-15", "shift_jis", "cp932", "euc_jp", "euc_kr", "cp949", "gbk",
                       "gb18030", "big5", "big5hkscs", "koi8-r", "koi8-u"))


@dataclass(frozen=True, slots=True)
class Hole:
    """One rewritable text part: its text as decoded, and how to write it back."""

    subtype: str
    text: str
    codec: charsets.Codec
    cte: str
    #: the part as it came (what is written when the rewrite changes nothing)
    original: bytes
    #: id(compiled template) -> (it, its literal parts quoted-printable), see _pieces
    encoded: dict[int, tuple[Template, tuple[bytes, ...]]] = field(
        default_factory=dict, compare=False, repr=False)


#: a template's items in document order: constant bytes, holes, and the warnings
#: of parts passed through (given in the order rewrite_message gives them)
Item = bytes | Hole | str


@dataclass(frozen=True, slots=True)
class MimeTemplate:
    head: Head
    items: tuple[Item, ...]

    def fill(self, parts: PartFiller, warnings: list[str]) -> list[bytes] | None:
        """The body (after the head and its blank line) with every hole rewritten by
        ``parts``, in pieces; None when this recipient's copy must go the slow way
        (see the module), with ``warnings`` as they were."""
        nl = self.head.policy.linesep.encode("ascii")
        out: list[bytes] = []
        append = out.append
        start = len(warnings)
        for item in self.items:
            if isinstance(item, bytes):
                append(item)
            elif isinstance(item, str):
                warnings.append(item)
            else:
                filled = _fill(item, parts, nl)
                if filled is None:
                    del warnings[start:]
                    return None
                out.extend(filled)
        return out

    def join(self, headers: dict[str, str], body: list[bytes]) -> bytes:
        """The whole message: the head with ``headers`` set, the blank line, ``body``."""
        return b"".join((self.head.render(headers),
                         self.head.policy.linesep.encode("ascii"), *body))


def _fill(hole: Hole, parts: PartFiller, nl: bytes) -> list[bytes] | None:
    """The hole's bytes for this recipient, in pieces (joined once, with the rest of
    the message)."""
    if hole.cte == "quoted-printable" and hole.codec.name in STATELESS:
        found = parts.pieces(hole.subtype, hole.text)
        if found is not None:
            template, values = found
            if values:
                return _pieces(hole, template, values, nl)
            rewritten = template.parts[0]
        else:
            rewritten = parts.text(hole.subtype, hole.text)
    else:
        rewritten = parts.text(hole.subtype, hole.text)
    encoded = _encoded(hole, rewritten, nl)
    return None if encoded is None else [encoded]


def _encoded(hole: Hole, rewritten: str, nl: bytes) -> bytes | None:
    """The part's payload for ``rewritten``, as rewrite_message writes it."""
    if rewritten == hole.text:
        return hole.original
    try:
        data = hole.codec.encode(rewritten)
    except UnicodeEncodeError as exc:  # pragma: no cover - tracker URLs are ASCII
        raise RewriteError(f"the rewritten text/{hole.subtype} part cannot be encoded in "
                           f"{hole.codec.name}") from exc
    if hole.cte in mime.UNENCODED and mime.lines_too_long(data):
        return None
    return newlines(mime.transfer_encode(data, hole.cte), nl)


def _pieces(hole: Hole, template: Template, values: list[str], nl: bytes) -> list[bytes]:
    """A quoted-printable part made of pieces each encoded on its own lines: the
    template's literal parts (encoded once, kept on the hole) and this recipient's
    slot values, joined by soft line breaks where a piece does not end a line.

    Quoted-printable of the whole text costs five times the rewriting of it
    (binascii.b2a_qp, 1 ms for 100 KB); this way a copy encodes only its links. The
    bytes differ from encoding the whole (line breaks fall elsewhere), never what
    they decode to; every line stays within 76 characters."""
    cached = hole.encoded.get(id(template))
    if cached is None or cached[0] is not template:
        if len(hole.encoded) >= 4:
            hole.encoded.clear()
        literal = tuple(_qp(hole.codec.encode(p), nl) for p in template.parts)
        cached = hole.encoded[id(template)] = (template, literal)
    literal = cached[1]
    soft = b"=" + nl
    out = [literal[0]]
    append = out.append
    last = literal[0]
    for value, piece in zip(values, literal[1:], strict=True):
        encoded = _qp_value(value, soft)
        if encoded is None:
            encoded = _qp(hole.codec.encode(value), nl)
        for chunk in (encoded, piece):
            if not chunk:
                continue
            if last and not last.endswith(nl):
                append(soft)
            append(chunk)
            last = chunk
    return out


#: the octets quoted-printable leaves as they are (printable ASCII but ``=``)
_PLAIN_QP = bytes(range(0x21, 0x7F)).replace(b"=", b"")


def _qp_value(value: str, soft: bytes) -> bytes | None:
    """A plain value (a link: only octets quoted-printable leaves as they are) on
    lines of 75 characters and a soft break, what b2a_qp makes of it without the
    call; None for any other value. (Deleting the plain octets in C and finding
    none left costs a third of a regular expression's match.)"""
    if not value.isascii():
        return None
    data = value.encode("ascii")
    if not data or data.translate(None, _PLAIN_QP):
        return None
    if len(data) <= mime.QP_LINE - 1:
        return data
    step = mime.QP_LINE - 1
    return soft.join([data[i:i + step] for i in range(0, len(data), step)])


def _qp(data: bytes, nl: bytes) -> bytes:
    return newlines(mime.quoted_printable(data), nl) if data else b""


def _placeholder(nonce: str, index: int) -> str:
    return f"TRACKERHOLE{nonce}N{index}X"


def _collect(part: Message, items: list[str | tuple[int, Hole]], nonce: str) -> bool:
    """Walk as mime._walk does, putting placeholders in the holes; False when the
    message is one this module leaves to the slow path."""
    if part.get_content_maintype() == "message":
        return True
    if part.is_multipart():
        if part.get_boundary() is None:
            return False
        for sub in part.get_payload():
            if isinstance(sub, Message) and not _collect(sub, items, nonce):
                return False
        return True
    if part.get_content_disposition() == "attachment":
        return True
    if part.get_content_type() not in ("text/html", "text/plain"):
        return True
    warnings: list[str] = []
    found = mime.read_leaf(part, warnings)
    if found is None:
        items.extend(warnings)
        return True
    subtype, cte, text, codec = found
    # the payload as stored, as the generator writes it (get_payload() would decode
    # 8-bit bytes, which the parser keeps as surrogate escapes)
    payload = vars(part).get("_payload")
    if not isinstance(payload, str):  # pragma: no cover - a leaf's payload is text
        return False
    original = payload.encode("ascii", "surrogateescape")
    index = len([i for i in items if isinstance(i, tuple)])
    items.append((index, Hole(subtype, text, codec, cte, original)))
    part.set_payload(_placeholder(nonce, index))
    return True


def _build_body(content_lines: bytes, body: bytes,
                policy: EmailPolicy[EmailMessage]) -> tuple[Item, ...] | None:
    nl = policy.linesep.encode("ascii")
    message = email.message_from_bytes(content_lines + b"\n" + body, policy=policy)
    nonce = secrets.token_hex(8)
    collected: list[str | tuple[int, Hole]] = []
    if not _collect(message, collected, nonce):
        return None
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(message)
    generated = out.getvalue()
    head_len = sum(len(policy.fold_binary(n, v)) for n, v in message.raw_items()) + len(nl)
    generated = generated[head_len:]
    items: list[Item] = []
    rest = generated
    for item in collected:
        if isinstance(item, str):
            items.append(item)
            continue
        index, hole = item
        marker = _placeholder(nonce, index).encode("ascii")
        before, found, after = rest.partition(marker)
        if not found or marker in after:
            return None
        items.extend((before, Hole(hole.subtype, hole.text, hole.codec, hole.cte,
                                   newlines(hole.original, nl))))
        rest = after
    items.append(rest)
    return tuple(i for i in items if i != b"")


# --- the cache -----------------------------------------------------------------

_NOT_TEMPLATED = object()


class MimeTemplates:
    """Recent templates by the message's bytes, and by its body (one SMTP message
    per recipient differs only in its head). Comparing keys on a hit means two
    messages never share a template by a hash collision. One per Rewriter."""

    def __init__(self, max_bytes: int = MAX_CACHED_BYTES, max_entries: int = MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._bodies: OrderedDict[tuple[bytes, bytes, bytes], object] = OrderedDict()
        self._bytes = 0
        self._heads: OrderedDict[tuple[bytes, bytes], Head] = OrderedDict()
        self._last: tuple[bytes, MimeTemplate] | None = None
        self.hits = 0
        self.misses = 0

    def get(self, raw: bytes) -> MimeTemplate | None:
        last = self._last
        if last is not None and last[0] is raw:
            self.hits += 1
            return last[1]
        parts = split_head(raw)
        if parts is None:
            return None
        policy = policy_for(raw)
        head = self._head(parts[0], policy)
        key = (policy.linesep.encode("ascii"), head.content_lines, parts[1])
        found = self._bodies.get(key)
        if found is None:
            self.misses += 1
            body = _build_body(head.content_lines, parts[1], policy)
            found = _NOT_TEMPLATED if body is None else body
            self._store(key, found)
        else:
            self.hits += 1
            self._bodies.move_to_end(key)
        if found is _NOT_TEMPLATED:
            return None
        assert isinstance(found, tuple)
        template = MimeTemplate(head, found)
        self._last = (raw, template)
        return template

    def _head(self, raw: bytes, policy: EmailPolicy[EmailMessage]) -> Head:
        """The head parsed, kept while it repeats (a sender's copies of one message)."""
        key = (policy.linesep.encode("ascii"), raw)
        found = self._heads.get(key)
        if found is None:
            found = self._heads[key] = parse_head(raw, policy)
            if len(self._heads) > HEADS:
                self._heads.popitem(last=False)
        else:
            self._heads.move_to_end(key)
        return found

    def _store(self, key: tuple[bytes, bytes, bytes], value: object) -> None:
        size = len(key[2]) * 2
        if size > self.max_bytes:
            return
        self._bodies[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes or len(self._bodies) > self.max_entries:
            old, _ = self._bodies.popitem(last=False)
            self._bytes -= len(old[2]) * 2

    def __len__(self) -> int:
        return len(self._bodies)

