"""Is a user agent a crawler? crawlerdetect's lists, matched in linear time.

``crawlerdetect`` keeps the best open list of bots (JayBizzle/Crawler-Detect), but
matches it as one Python alternation of ~1,500 patterns: every character of the
string tries every pattern, so a never-seen 1 KB user agent costs 20-80 ms of a
worker's event loop, and a stranger holding one sent email can send such strings
at will. The same lists go through a ``PatternSet`` (Hyperscan) here.

The semantics are crawlerdetect's: the exclusion patterns (browser tokens such as
``Safari/537.36``) are cut out first, leftmost-first as ``re.sub`` does, and the
string is a crawler when a crawler pattern matches what is left. The few patterns
Hyperscan cannot compile (lookarounds) are searched with ``re``, where they are
plain literals and cost next to nothing.
"""

from __future__ import annotations

import re

from crawlerdetect.providers.crawlers import data as _CRAWLER_PATTERNS
from crawlerdetect.providers.exclusions import data as _EXCLUSION_PATTERNS

from tracker.classify.patternset import PatternSet

_LOOKAROUND = re.compile(r"\(\?(?:[!=]|<[!=])")

_exclusions = PatternSet(list(_EXCLUSION_PATTERNS), caseless=True, spans=True)
_crawlers = PatternSet([p for p in _CRAWLER_PATTERNS if not _LOOKAROUND.search(p)],
                       caseless=True)
_lookarounds = re.compile("|".join(p for p in _CRAWLER_PATTERNS if _LOOKAROUND.search(p))
                          or "(?!)", re.I)


def strip_exclusions(data: bytes) -> bytes:
    """``data`` with the exclusion patterns removed, as crawlerdetect's ``re.sub``
    over their alternation removes them: at each position the first pattern in
    list order that matches there wins, with its longest match."""
    found: dict[int, tuple[int, int]] = {}  # start -> (pattern number, end)
    for start, end, ident in _exclusions.spans(data):
        best = found.get(start)
        if best is None or ident < best[0] or (ident == best[0] and end > best[1]):
            found[start] = (ident, end)
    if not found:
        return data
    kept: list[bytes] = []
    position = 0
    for start in sorted(found):
        end = found[start][1]
        if start < position or end == start:
            continue
        kept.append(data[position:start])
        position = end
    kept.append(data[position:])
    return b"".join(kept)


def _matches(data: bytes) -> bool:
    return _crawlers.any(data) or bool(
        data and _lookarounds.search(data.decode("utf-8", "replace")))


def is_crawler(user_agent: str) -> bool:
    """crawlerdetect's ``is_crawler``, in time linear in the string's length.

    Cutting the exclusions out only removes text, so a string that no crawler
    pattern matches as it is is taken to be no crawler without cutting: most agents
    are browsers and mail clients, and this skips the costlier cut for them. Only a
    string built to join a bot's name around a browser token could be judged
    otherwise than by crawlerdetect, and whoever builds one could as well send a
    browser's string."""
    data = user_agent.strip().encode("utf-8", "surrogatepass")
    return _matches(data) and _matches(strip_exclusions(data))
