"""The compiled form of a body: literal segments with slots between them.

Filling a template for one recipient is one token per slot and a join, so the
expensive work (tokenizing, entity decoding, URL checks, UTM tagging) happens once
per distinct body, not once per recipient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

#: Slot codes besides link indexes (which are >= 0).
PIXEL = -1
UNSUBSCRIBE = -2
#: An edit with this code deletes its span (the data-track="off" marker).
DELETE = -3


class Edit(NamedTuple):
    start: int
    end: int
    code: int  # a link index, PIXEL, UNSUBSCRIBE or DELETE


@dataclass(frozen=True)
class Template:
    parts: tuple[str, ...]  # len(slots) + 1 literal segments
    slots: tuple[int, ...]  # link index, PIXEL or UNSUBSCRIBE
    links: tuple[str, ...]  # tracked targets, in order of appearance
    link_bytes: tuple[bytes, ...]  # the same, UTF-8 encoded once for the token payload
    warnings: tuple[str, ...]  # links the sender probably wanted tracked but cannot be
    _json: tuple[bytes, ...] | None = field(default=None, compare=False, repr=False)
    #: where each part was in the source, (start, end); empty when the template was
    #: not cut straight from a source (derived, or parts merged around deletions)
    bounds: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    @property
    def has_pixel(self) -> bool:
        return PIXEL in self.slots

    @property
    def has_unsubscribe(self) -> bool:
        return UNSUBSCRIBE in self.slots

    def json_parts(self) -> tuple[bytes, ...]:
        """The segments already escaped for the inside of a JSON string (UTF-8).

        Made on first use and kept: an API answer is then a join of bytes, instead of
        json.dumps re-escaping every quote of a 100 KB body once per recipient (which
        cost three times the rewriting itself)."""
        if self._json is None:
            escaped = tuple(json_part(p) for p in self.parts)
            object.__setattr__(self, "_json", escaped)
        return self._json  # type: ignore[return-value]


def json_part(text: str) -> bytes:
    """``text`` escaped for the inside of a JSON string, in UTF-8 (non-ASCII kept as
    itself; a lone surrogate, which UTF-8 cannot carry, as ``\\uXXXX``)."""
    try:
        return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text)[1:-1].encode("ascii")


def build(source: str, edits: list[Edit], links: list[str], warnings: list[str]) -> Template:
    """Cut ``source`` at the edits (non-overlapping once sorted; later overlaps dropped)."""
    parts: list[str] = []
    slots: list[int] = []
    kept_links: list[str] = []
    bounds: list[tuple[int, int]] = []
    position = 0
    for start, end, code in sorted(edits, key=lambda e: (e.start, e.end)):
        if start < position:
            continue  # overlaps an earlier edit (e.g. a link whose href is the placeholder)
        parts.append(source[position:start])
        bounds.append((position, start))
        if code == DELETE:
            slots.append(DELETE)
        elif code >= 0:
            slots.append(len(kept_links))
            kept_links.append(links[code])
        else:
            slots.append(code)
        position = end
    parts.append(source[position:])
    bounds.append((position, len(source)))
    # merge the segments around deletions so rendering never sees them
    merged_parts = [parts[0]]
    merged_slots: list[int] = []
    for slot, part in zip(slots, parts[1:], strict=True):
        if slot == DELETE:
            merged_parts[-1] += part
        else:
            merged_slots.append(slot)
            merged_parts.append(part)
    return Template(tuple(merged_parts), tuple(merged_slots), tuple(kept_links),
                    tuple(u.encode("utf-8") for u in kept_links), tuple(warnings),
                    bounds=() if DELETE in slots else tuple(bounds))
