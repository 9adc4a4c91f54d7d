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

from tracker.rewrite.charrefs import attribute_value
from tracker.rewrite.links import UNSUBSCRIBE_PLACEHOLDER, Skip, classify
from tracker.rewrite.template import DELETE, PIXEL, UNSUBSCRIBE, Edit, Template, build
from tracker.rewrite.tokenizer import COMMENT, END, START, attributes, skipping, tokens

#: The open pixel. 1x1, empty alt (screen readers skip it), no border, and styled so
#: no client gives it a line of its own or shows a frame while it loads.
PIXEL_TAG = ('<img src="{url}" width="1" height="1" alt="" border="0" style="display:block;'
             'width:1px;height:1px;border:0;margin:0;padding:0;overflow:hidden" />')

_NO_TRACK_ATTR = "data-track"
_CONDITIONAL = re.compile(r"\[if\b", re.IGNORECASE)


_SPACE = "\t\n\f\r "
#: The rewriter reads link tags and </body>; every other tag is passed over inside
#: the regular expression engine (see tokenizer.skipping).
_SCANNER = skipping(("a", "area", "v:"), ("body",))
#: Link tags read so far, by (attributes as written, public URL, UTM): a campaign's
#: links are the same in every personalised copy, so each tag is parsed, decoded,
#: checked and tagged once, not once per recipient.
_LINKS: dict[tuple, tuple] = {}
_MAX_REMEMBERED = 20_000


class _Scan:
    """The spans to rewrite in one piece of HTML (the document or the inside of a
    conditional comment), with offsets into the whole document."""

    __slots__ = ("public_url", "utm", "edits", "links", "warnings")

    def __init__(self, public_url: str, utm: tuple) -> None:
        self.public_url = public_url
        self.utm = utm
        self.edits: list[Edit] = []
        self.links: list[str] = []
        self.warnings: list[str] = []

    def run(self, source: str, base: int) -> int | None:
        """Scan ``source`` (at ``base`` in the document); where its last ``</body>``
        starts, if any."""
        body_end = None
        for token in tokens(source, skip=_SCANNER):
            kind = token[0]
            if kind == START:
                name = token[3]
                if name == "a" or name == "area" or name.startswith("v:"):
                    self.link(source, base, token[4], token[5])
            elif kind == END:
                if token[3] == "body":
                    body_end = base + token[1]
            elif kind == COMMENT:
                data = source[token[3]:token[4]]
                if "<" in data and _CONDITIONAL.match(data):
                    self.run(data, base + token[3])
        return body_end

    def link(self, source: str, base: int, start: int, end: int) -> None:
        """The edit for one link tag's attributes (``start``..``end``), remembered by
        their text: a campaign's link tags recur in every personalised copy."""
        key = (source[start:end], self.public_url, self.utm)
        found = _LINKS.get(key)
        if found is None:
            if len(_LINKS) >= _MAX_REMEMBERED:
                _LINKS.clear()
            found = _LINKS[key] = self._read_link(source, start, end)
        edit, decision = found
        if edit is None:
            return
        if edit[2] == DELETE:
            self.edits.append(Edit(base + start + edit[0], base + start + edit[1], DELETE))
            return
        if isinstance(decision, Skip):
            if decision.warning:
                self.warnings.append(decision.warning)
            return
        self.edits.append(Edit(base + start + edit[0], base + start + edit[1], len(self.links)))
        self.links.append(decision.url)  # type: ignore[union-attr]

    def _read_link(self, source: str, start: int, end: int) -> tuple:
        """((start, end, code) relative to ``start`` or None, decision or None)."""
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
        decision = classify(value, self.public_url, self.utm)
        return (href.value_start - start, href.value_end - start, 0), decision

def compile_html(source: str, public_url: str, *, utm: tuple = (), pixel: bool = True) -> Template:
    """Parse once into a template: link slots, the unsubscribe slots, and (when
    ``pixel``) one pixel slot just before the last ``</body>``, else at the end."""
    scan = _Scan(public_url, utm)
    body_end = scan.run(source, 0)
    edits = scan.edits
    if "unsubscribe_url" in source:
        for m in UNSUBSCRIBE_PLACEHOLDER.finditer(source):
            edits.append(Edit(m.start(), m.end(), UNSUBSCRIBE))
    if pixel:
        at = body_end if body_end is not None else len(source)
        edits.append(Edit(at, at, PIXEL))
    return build(source, edits, scan.links, scan.warnings)
