"""Compiled templates kept by content, so a campaign's body is parsed once.

The key is the body itself (with the options that shape its template): Python
caches a string's hash on the object, so a sender passing the same string for every
recipient pays nothing to look it up, and an equal string from another request
costs one hash and one comparison, never a parse. Comparing the content on a hit
means two bodies can never share a template by a hash collision. Personalised
bodies (different per recipient) simply miss and are compiled each time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from tracker.rewrite.template import Template

#: Bodies larger than this are compiled every time rather than pinned in memory.
MAX_CACHED_CHARS = 2_000_000


class TemplateCache:
    """A small LRU of compiled templates; thread-compatible (one per event loop)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Template] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, source: str, compile_: Callable[[], Template]) -> Template:
        if len(source) > MAX_CACHED_CHARS:
            self.misses += 1
            return compile_()
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            self.hits += 1
            entries.move_to_end(key)
            return found
        self.misses += 1
        template = entries[key] = compile_()
        if len(entries) > self.size:
            entries.popitem(last=False)
        return template

    def __len__(self) -> int:
        return len(self._entries)
