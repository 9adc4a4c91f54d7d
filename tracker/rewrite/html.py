"""Compiling an HTML body into a template, touching only the link values.

Why the standard library tokenizer and not a DOM: a DOM re-serialises the
document, which breaks Outlook conditional comments, VML and the odd markup real
emails depend on. ``html.parser`` reports where each start tag begins; the
attribute spans inside the tag are then found with the parser's own attribute
regex, so the exact characters of each ``href`` value are replaced and nothing
else moves. Regex-only rewriters get ``&amp;``, quoting and comments wrong; this
decodes entities through the parser's rules and writes back a URL that needs none.

Rewritten: the first ``href`` of ``<a>``, ``<area>`` and VML elements (``<v:*>``),
also inside downlevel-hidden conditional comments (``<!--[if mso]>...<![endif]-->``),
which are tokenized again from their own text. Left alone: everything else,
including ``<link>``/``<base>``, ``<script>``/``<style>`` contents, ordinary
comments, escaped markup, and tags marked ``data-track="off"`` (the marker itself
is removed from the output).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser, attrfind_tolerant, tagfind_tolerant

from tracker.rewrite.links import UNSUBSCRIBE_PLACEHOLDER, Skip, classify
from tracker.rewrite.template import DELETE, PIXEL, UNSUBSCRIBE, Edit, Template, build

#: The open pixel. 1x1, empty alt (screen readers skip it), no border, and styled so
#: no client gives it a line of its own or shows a frame while it loads.
PIXEL_TAG = ('<img src="{url}" width="1" height="1" alt="" border="0" style="display:block;'
             'width:1px;height:1px;border:0;margin:0;padding:0;overflow:hidden" />')

_NO_TRACK_ATTR = "data-track"
_CONDITIONAL = re.compile(r"\[if\b", re.IGNORECASE)


def _is_link_tag(tag: str) -> bool:
    return tag == "a" or tag == "area" or tag.startswith("v:")


class _Scanner(HTMLParser):
    """Collects the spans to rewrite in one piece of HTML (the document or the inside
    of a conditional comment), with offsets into the whole document."""

    def __init__(self, source: str, base: int, public_url: str, utm: tuple,
                 edits: list[Edit], links: list[str], warnings: list[str]) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.base = base
        self.public_url = public_url
        self.utm = utm
        self.edits = edits
        self.links = links
        self.warnings = warnings
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.body_end: int | None = None

    def _position(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def parse_html_declaration(self, i: int) -> int:
        """``<!...>``, tolerating what the standard tokenizer refuses.

        Python 3.11's tokenizer raises AssertionError on marked sections it does not
        know (``<![foo ...``, ``<![ ]>``); browsers treat them as bogus comments, so
        do the same: skip to the next ``>``, leaving the bytes as they are."""
        try:
            return super().parse_html_declaration(i)
        except AssertionError:
            end = self.rawdata.find(">", i + 2)
            return end + 1 if end >= 0 else -1

    # --- tags ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list) -> None:
        if _is_link_tag(tag):
            self._link(tag)

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self.base + self._position()

    def handle_comment(self, data: str) -> None:
        if _CONDITIONAL.match(data) and "<" in data:
            start = self._position() + 4  # after "<!--"
            nested = _Scanner(data, self.base + start, self.public_url, self.utm, self.edits,
                              self.links, self.warnings)
            nested.feed(data)
            nested.close()

    def _link(self, tag: str) -> None:
        text = self.get_starttag_text() or ""
        start = self._position()
        if self.source[start : start + len(text)] != text:  # pragma: no cover - defensive
            self.warnings.append(f"could not locate a <{tag}> tag; its link was left untracked")
            return
        href: tuple[int, int, str] | None = None
        no_track: tuple[int, int] | None = None
        match = tagfind_tolerant.match(text, 1)
        k = match.end() if match else len(text)
        while k < len(text):
            m = attrfind_tolerant.match(text, k)
            if not m:
                break
            name = m.group(1).lower()
            if m.group(2):
                value_start, value_end = m.span(3)
                value = m.group(3)
                if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) >= 2:
                    value_start, value_end = value_start + 1, value_end - 1
                if name == "href" and href is None:
                    href = (value_start, value_end, text[value_start:value_end])
                elif name == _NO_TRACK_ATTR and unescape(text[value_start:value_end]).strip(
                        ).lower() == "off":
                    cut = m.start(1)
                    while cut > 0 and text[cut - 1].isspace():
                        cut -= 1
                    no_track = (cut, m.end(2))
            k = m.end()
        at = self.base + start
        if no_track is not None:
            self.edits.append(Edit(at + no_track[0], at + no_track[1], DELETE))
            return
        if href is None:
            return
        decision = classify(unescape(href[2]), self.public_url, self.utm)
        if isinstance(decision, Skip):
            if decision.warning:
                self.warnings.append(decision.warning)
            return
        self.edits.append(Edit(at + href[0], at + href[1], len(self.links)))
        self.links.append(decision.url)


def compile_html(source: str, public_url: str, *, utm: tuple = (), pixel: bool = True) -> Template:
    """Parse once into a template: link slots, the unsubscribe slots, and (when
    ``pixel``) one pixel slot just before the last ``</body>``, else at the end."""
    edits: list[Edit] = []
    links: list[str] = []
    warnings: list[str] = []
    scanner = _Scanner(source, 0, public_url, utm, edits, links, warnings)
    scanner.feed(source)
    scanner.close()
    for m in UNSUBSCRIBE_PLACEHOLDER.finditer(source):
        edits.append(Edit(m.start(), m.end(), UNSUBSCRIBE))
    if pixel:
        at = scanner.body_end if scanner.body_end is not None else len(source)
        edits.append(Edit(at, at, PIXEL))
    return build(source, edits, links, warnings)
