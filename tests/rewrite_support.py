"""Checks shared by the rewriting tests: byte identity and link coverage, and the corpora.

Independent of the engine's own parser on purpose: the rewritten output is cut at
every tracker click URL found by a plain regex, and the input must be exactly those
pieces with the original attribute values in between, each decoding to the URL its
token signs. Anything the engine changed besides link values and the pixel fails it.

Two email corpora go through the same checks: the repository's own
(``tests/data/emails``, always) and the shared upstream one (``../shared/emails``,
when it is beside the repository). Each has a ``MANIFEST.tsv`` whose ``file`` column
lists its messages; the own manifest also says how many links each must get tracked
(``links``) and which http(s) hrefs of link elements must stay as written (``kept``).
"""

from __future__ import annotations

import csv
import email
import email.policy
import functools
import html
import re
import runpy
from email.message import Message
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support import ROOT, SHARED
from tracker.rewrite.links import normalise
from tracker.tokens import Purpose, TokenCodec, TokenData

OWN_EMAILS = ROOT / "tests" / "data" / "emails"
SHARED_EMAILS = SHARED / "emails"
#: The tracker's public URL as the own corpus writes it in links to the tracker itself;
#: ``load_email`` puts the public URL of the test's own tracker in its place.
CORPUS_TRACKER = "https://t.example.com"
_TOKEN = r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]{22}"


class Email(NamedTuple):
    """One message of a corpus and what its manifest says about it."""

    path: Path
    corpus: str  # "own" or "shared"
    links: int | None = None  # links that must be tracked (own corpus)
    kept: tuple[str, ...] = ()  # http(s) link hrefs that must stay, as written

    @property
    def id(self) -> str:
        return f"{self.corpus}-{self.path.name[:2]}"

    @property
    def is_mime(self) -> bool:
        return self.path.suffix == ".eml"


def read_manifest(folder: Path, corpus: str) -> list[Email]:
    with (folder / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [Email(folder / row["file"], corpus,
                  int(row["links"]) if row.get("links") else None,
                  tuple((row.get("kept") or "").split()))
            for row in rows]


def shared_emails_missing() -> str | None:
    """Why the shared corpus cannot run here, or None when it is present."""
    manifest = SHARED_EMAILS / "MANIFEST.tsv"
    if manifest.exists():
        return None
    return (f"{manifest} is missing (the shared upstream email corpus beside the repository); "
            f"the repository's own corpus in {OWN_EMAILS.relative_to(ROOT)} ran instead")


def own_emails(*, mime: bool = False) -> list[Email]:
    return [e for e in read_manifest(OWN_EMAILS, "own") if e.is_mime == mime]


def shared_emails() -> list[Email]:
    """The shared corpus (HTML files only), or skip the calling test saying it is missing."""
    reason = shared_emails_missing()
    if reason:
        pytest.skip(reason)
    return read_manifest(SHARED_EMAILS, "shared")


def email_params() -> list:
    """Parameters over every HTML email: the own corpus, then the shared one, which is
    one skipped parameter naming what is missing when ``../shared`` is not there."""
    params = [pytest.param(e, id=e.id) for e in own_emails()]
    reason = shared_emails_missing()
    if reason:
        return [*params, pytest.param(None, id="shared", marks=pytest.mark.skip(reason=reason))]
    return params + [pytest.param(e, id=e.id) for e in read_manifest(SHARED_EMAILS, "shared")]


def email_files() -> list[Path]:
    """Paths of the shared corpus (skips when it is missing); kept for its spot checks."""
    return [e.path for e in shared_emails()]


@functools.lru_cache(maxsize=8)
def _read(path: Path) -> str:
    if path.suffix == ".py":  # a generated message: the module's build() writes it
        return runpy.run_path(str(path))["build"]()
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")  # the shared corpus's Word 2000 newsletter


def load_email(email: Email | Path, public_url: str = CORPUS_TRACKER) -> str:
    """The message as text: UTF-8, or Windows-1252 for the Word 2000 newsletter.

    In the own corpus, links to the tracker itself name ``CORPUS_TRACKER``; they are
    pointed at ``public_url``, the tracker the test runs, so they stay its own."""
    path = email.path if isinstance(email, Email) else email
    text = _read(path)
    if path.is_relative_to(OWN_EMAILS) and public_url != CORPUS_TRACKER:
        text = text.replace(CORPUS_TRACKER + "/", public_url + "/")
    return text


_NO_TRACK_MARKER = re.compile(r'\s+data-track="off"', re.I)


def without_no_track_markers(source: str) -> str:
    """The source as the rewriter must answer it besides links and pixel: the
    ``data-track="off"`` markers (double-quoted, as the own corpus writes them) removed."""
    return _NO_TRACK_MARKER.sub("", source)


def click_pattern(public_url: str) -> re.Pattern:
    return re.compile(re.escape(public_url) + r"/c/(" + _TOKEN + ")")


def pixel_pattern(public_url: str) -> re.Pattern:
    return re.compile(r'<img src="' + re.escape(public_url) + r"/o/(" + _TOKEN + r')"[^>]*/>')


def strip_pixel(output: str, public_url: str, codec: TokenCodec) -> tuple[str, int]:
    """Output without its pixels (each verified as an open token), and their count."""
    pattern = pixel_pattern(public_url)
    for token in pattern.findall(output):
        codec.verify(Purpose.OPEN, token)
    return pattern.subn("", output)


def check_identical(source: str, output: str, public_url: str,
                    codec: TokenCodec) -> list[tuple[str, TokenData]]:
    """Assert ``output`` is ``source`` with only link values replaced (pixel already
    removed); return (raw original value, token data) per rewritten link, in order."""
    pieces = click_pattern(public_url).split(output)
    literals, tokens = pieces[0::2], pieces[1::2]
    assert source.startswith(literals[0]), "text before the first link changed"
    position = len(literals[0])
    found = []
    for index, (token, literal) in enumerate(zip(tokens, literals[1:], strict=True)):
        data = codec.verify(Purpose.CLICK, token)
        end = source.find(literal, position) if literal else len(source)
        assert end >= position, f"text after link {index} changed: {literal[:120]!r}"
        raw = source[position:end]
        # html.unescape decodes references only; the standard's tokenizer also reads a
        # raw NUL in an attribute value as U+FFFD, as the rewriter does
        value = html.unescape(raw).replace("\x00", "\ufffd")
        assert normalise(value) == data.url, (raw, data.url)
        found.append((raw, data))
        position = end + len(literal)
    assert position == len(source), "text after the last link changed"
    return found


_CANDIDATE = re.compile(
    r"<(?:a|area|v:[a-z]+)\b[^>]*?\bhref\s*=\s*[\"']?\s*(https?:[^\"'\s>]*)", re.I | re.S)


def untracked_http_links(output: str, public_url: str) -> list[str]:
    """http(s) hrefs of link elements left in the output that are not tracker URLs."""
    return [m.group(1) for m in _CANDIDATE.finditer(output)
            if not m.group(1).startswith(public_url + "/")]


def acceptable_untracked(url: str) -> bool:
    """The only reasons an http(s) link may stay: no host, an unrendered template
    placeholder, or longer than a tracked target may be."""
    decoded = html.unescape(url)
    return (re.fullmatch(r"https?://", decoded, re.I) is not None
            or re.search(r"[{}<>]|%%|\*\||\[\[|\]\]", decoded) is not None
            or len(decoded) > 4000)


#: What mail clients read these labels as (the rewriter does the same, mime.py).
_SUPERSETS = {"shift_jis": "cp932", "iso-2022-jp": "iso2022_jp_ext"}


def mime_leaves(raw: bytes) -> list[tuple[Message, bool]]:
    """Every leaf of the message in order, with whether the tracker may rewrite it: an
    inline text/html or text/plain part that is not inside an attached message."""
    found: list[tuple[Message, bool]] = []

    def walk(part: Message, rewritable: bool) -> None:
        if part.is_multipart():  # multipart/* and message/rfc822
            inner = rewritable and part.get_content_maintype() != "message"
            for sub in part.get_payload():
                walk(sub, inner)
            return
        found.append((part, rewritable and part.get_content_disposition() != "attachment"
                      and part.get_content_type() in ("text/html", "text/plain")))

    walk(email.message_from_bytes(raw, policy=email.policy.default), True)
    return found


def part_text(part: Message) -> str:
    charset = part.get_content_charset() or "us-ascii"
    return part.get_payload(decode=True).decode(_SUPERSETS.get(charset, charset))
