"""Compiling an HTML body into a template, touching only the link values.

Why a tokenizer and not a DOM: a DOM re-serialises the document, which breaks
Outlook conditional comments, VML and the odd markup real emails depend on. The
tokenizer (:mod:`tracker.rewrite.tokenizer`) is the HTML standard's, with source
offsets: each ``href`` value is replaced exactly where it is written and nothing
else moves. Its value is read as a browser reads it (:mod:`tracker.rewrite.charrefs`:
``&amp;`` is ``&``, but ``&region=us`` stays ``&region=us``), so the click goes
where the same link would have gone untracked. Comments end where a browser ends
them (``<!-->``, ``--!>``; ``-- >`` does not end one), and markup written inside
``<title>``, ``<textarea>``, ``<style>``, ``<script>`` and the like is text.

Rewritten: the first ``href`` of ``<a>``, ``<area>`` and VML elements (``<v:*>``),
also inside downlevel-hidden conditional comments (``<!--[if mso]>...<![endif]-->``),
which are tokenized again from their own text. Left alone: everything else,
including ``<link>``/``<base>``, raw text, ordinary comments, escaped markup, and
tags marked ``data-track="off"`` (the marker itself is removed from the output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from tracker.rewrite.charrefs import attribute_value
from tracker.rewrite.links import UNSUBSCRIBE_PLACEHOLDER, UTM, Own, Skip, Target, classify
from tracker.rewrite.template import DELETE, PIXEL, UNSUBSCRIBE, Edit, Template, build
from tracker.rewrite.tokenizer import COMMENT, END, START, attributes, skipping, tokens

#: The open pixel. 1x1, empty alt (screen readers skip it), no border, and styled so
#: no client gives it a line of its own or shows a frame while it loads.
PIXEL_TAG = ('<img src="{url}" width="1" height="1" alt="" border="0" style="display:block;'
             'width:1px;height:1px;border:0;margin:0;padding:0;overflow:hidden" />')

_NO_TRACK_ATTR = "data-track"
_CONDITIONAL = re.compile(r"\[if\b", re.IGNORECASE)


_SPACE = "\t\n\f\r "
#: What a link tag becomes (see :func:`read_link`).
Found = tuple[tuple[int, int, int] | None, Target | Skip | None]
#: The rewriter reads link tags and </body>; every other tag is passed over inside
#: the regular expression engine (see tokenizer.skipping).
_SCANNER = skipping(("a", "area", "v:"), ("body",))
#: Link tags read so far, by (attributes as written, the tracker's own URLs, UTM): a campaign's
#: links are the same in every personalised copy, so each tag is parsed, decoded,
#: checked and tagged once, not once per recipient.
_LINKS: dict[tuple[str, Own | str, UTM], Found] = {}
_MAX_REMEMBERED = 20_000


class LinkTag(NamedTuple):
    """One link tag as the scan found it, with what it becomes (``found``, see
    :func:`read_link`); positions are in the whole document."""

    start: int  # its "<"
    end: int  # after its ">"
    attrs: int  # where its attributes start: ``found``'s offsets count from here
    found: Found
    nested: bool  # inside a conditional comment
    name: str
    self_closing: bool


class Scanned(NamedTuple):
    links: list[LinkTag]
    body_end: int | None  # where the last </body> starts


def read_link(source: str, start: int, end: int, own: Own | str, utm: UTM) -> Found:
    """What the link tag whose attributes are ``source[start:end]`` becomes:
    ``((start, end, code), decision)`` with offsets from ``start`` (code DELETE for
    a ``data-track="off"`` marker, else 0 and the decision for its href), or
    ``(None, None)``. Remembered by the attributes' text: a campaign's link tags
    recur in every personalised copy."""
    key = (source[start:end], own, utm)
    found = _LINKS.get(key)
    if found is None:
        if len(_LINKS) >= _MAX_REMEMBERED:
            _LINKS.clear()
        found = _LINKS[key] = _read_link(source, start, end, own, utm)
    return found


def _read_link(source: str, start: int, end: int, own: Own | str, utm: UTM) -> Found:
    href = None
    for attribute in attributes(source, start, end):
        if attribute.name == "href":
            href = attribute
        elif attribute.name == _NO_TRACK_ATTR and attribute_value(
                source[attribute.value_start:attribute.value_end]).strip(
                _SPACE).lower() == "off":
            cut = attribute.start
            while cut > start and source[cut - 1] in _SPACE:
                cut -= 1
            return (cut - start, attribute.end - start, DELETE), None
    if href is None:
        return None, None
    value = attribute_value(source[href.value_start:href.value_end])
    return (href.value_start - start, href.value_end - start, 0), classify(value, own, utm)


def _scan(source: str, base: int, nested: bool, own: Own | str, utm: UTM,
          links: list[LinkTag]) -> int | None:
    """Collect the link tags of ``source`` (the document, or the inside of a
    conditional comment at ``base``); where its last ``</body>`` starts, if any."""
    body_end = None
    for token in tokens(source, skip=_SCANNER):
        kind = token[0]
        if kind == START:
            name = token[3]
            if name == "a" or name == "area" or name.startswith("v:"):
                links.append(LinkTag(
                    base + token[1], base + token[2], base + token[4],
                    read_link(source, token[4], token[5], own, utm), nested, name,
                    token[6]))
        elif kind == END:
            if token[3] == "body":
                body_end = base + token[1]
        elif kind == COMMENT:
            data = source[token[3]:token[4]]
            if "<" in data and _CONDITIONAL.match(data):
                _scan(data, base + token[3], True, own, utm, links)
    return body_end


def scan_html(source: str, own: Own | str, utm: UTM = ()) -> Scanned:
    links: list[LinkTag] = []
    body_end = _scan(source, 0, False, own, utm, links)
    return Scanned(links, body_end)


def assemble(source: str, links: Iterable[tuple[int, Found]], body_end: int | None, *,
             pixel: bool = True) -> Template:
    """The template of ``source`` from its link tags, as ``(attrs, found)`` pairs of
    :class:`LinkTag` in document order: link slots, the unsubscribe slots, and (when
    ``pixel``) one pixel slot just before the last ``</body>`` (``body_end``), else
    at the end."""
    edits: list[Edit] = []
    targets: list[str] = []
    warnings: list[str] = []
    for at, found in links:
        edit, decision = found
        if edit is None:
            continue
        if edit[2] == DELETE:
            edits.append(Edit(at + edit[0], at + edit[1], DELETE))
        elif isinstance(decision, Skip):
            if decision.warning:
                warnings.append(decision.warning)
        else:
            assert decision is not None, "an href that is not a marker always has a decision"
            edits.append(Edit(at + edit[0], at + edit[1], len(targets)))
            targets.append(decision.url)
    if "unsubscribe_url" in source:
        for m in UNSUBSCRIBE_PLACEHOLDER.finditer(source):
            edits.append(Edit(m.start(), m.end(), UNSUBSCRIBE))
    if pixel:
        at = body_end if body_end is not None else len(source)
        edits.append(Edit(at, at, PIXEL))
    return build(source, edits, targets, warnings)


def assemble_scanned(source: str, scanned: Scanned, *, pixel: bool = True) -> Template:
    return assemble(source, ((tag.attrs, tag.found) for tag in scanned.links),
                    scanned.body_end, pixel=pixel)


def compile_html(source: str, own: Own | str, *, utm: UTM = (),
                 pixel: bool = True) -> Template:
    """Parse once into a template (see :func:`assemble`)."""
    return assemble_scanned(source, scan_html(source, own, utm), pixel=pixel)
