"""Checks shared by the rewriting tests: byte identity and link coverage.

Independent of the engine's own parser on purpose: the rewritten output is cut at
every tracker click URL found by a plain regex, and the input must be exactly those
pieces with the original attribute values in between, each decoding to the URL its
token signs. Anything the engine changed besides link values and the pixel fails it.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

from tests.support import SHARED
from tracker.rewrite.links import normalise
from tracker.tokens import Purpose, TokenCodec, TokenData

EMAILS = SHARED / "emails"
_TOKEN = r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]{22}"


def email_files() -> list[Path]:
    with (EMAILS / "MANIFEST.tsv").open(newline="") as fh:
        names = [row["file"] for row in csv.DictReader(fh, delimiter="\t")]
    return [EMAILS / name for name in names]


def load_email(path: Path) -> str:
    """The file as text: UTF-8, or Windows-1252 for the Word 2000 newsletter."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


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
        assert normalise(html.unescape(raw)) == data.url, (raw, data.url)
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
            or re.search(r"[{}<>]|%%|\*\|", decoded) is not None
            or len(decoded) > 4000)
