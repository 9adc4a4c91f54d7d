"""Compiling a plain-text body (email text part, push, LINE) into a template.

Finds bare ``http(s)://`` URLs and the ``<https://...>`` form (RFC 3986 appendix C).
A URL in running text ends at whitespace, ``<``, ``>``, ``"`` or any non-ASCII
character: Japanese prose puts no space after a URL ("詳細はhttps://example.jp/をご覧"),
so an IRI in plain text cannot be told apart from the sentence that follows it;
senders percent-encode such URLs in text parts anyway. Trailing sentence
punctuation stays outside the URL, and a closing bracket is kept only when the URL
opened one (Wikipedia-style ``.../Foo_(bar)``).
"""

from __future__ import annotations

import re

from tracker.rewrite.links import UNSUBSCRIBE_PLACEHOLDER, UTM, Own, Skip, classify
from tracker.rewrite.template import UNSUBSCRIBE, Edit, Template, build

_URL = re.compile(r"(?<![A-Za-z0-9_@/.+-])https?://[!#-;=?-~]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*_~"
_PAIRS = {")": "(", "]": "[", "}": "{"}


def _trim(url: str) -> str:
    while url:
        last = url[-1]
        unbalanced = last in _PAIRS and url.count(_PAIRS[last]) < url.count(last)
        if last in _TRAILING or unbalanced:
            url = url[:-1]
        else:
            break
    return url


def compile_text(source: str, own: Own | str, *, utm: UTM = ()) -> Template:
    """Parse once into a template: one slot per trackable URL and per placeholder."""
    edits: list[Edit] = []
    links: list[str] = []
    warnings: list[str] = []
    for m in UNSUBSCRIBE_PLACEHOLDER.finditer(source):
        edits.append(Edit(m.start(), m.end(), UNSUBSCRIBE))
    for m in _URL.finditer(source):
        url = _trim(m.group())
        if "://" not in url or url.endswith("://"):
            continue
        decision = classify(url, own, utm)
        if isinstance(decision, Skip):
            if decision.warning:
                warnings.append(decision.warning)
            continue
        edits.append(Edit(m.start(), m.start() + len(url), len(links)))
        links.append(decision.url)
    return build(source, edits, links, warnings)
