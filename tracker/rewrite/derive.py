"""Personalised copies of one body: compiled from the last body, not from scratch.

A campaign personalised per recipient ("Hello Ann", "Hello Bob", a link carrying
the recipient's id) sends bodies that differ from each other in a few runs of
text and a few links. Compiling each from scratch tokenizes 100 KB per recipient;
this compares the new body with the last one compiled in full (the *base*) and,
when every difference lies in character data of the data state or inside a link
tag, reuses the base's work.

Why that is exact: the tokenizer leaves the data state only at ``<`` (character
references and NUL do not end character data), so replacing the rest of a run of
data-state text, up to its next ``<``, with text that holds no ``<`` cannot move,
add or remove any token; the tokens before and after are equal byte for byte and
see the same tokenizer state. A changed link tag is read again where it starts in
the new body and must be the same kind of tag (same name, same self-closing
flag), so the tokenizer goes on after it exactly as it did. Text changes only
change the template's literal parts, which are patched; a changed link tag is read
again (its href decoded, checked and tagged) and the template assembled from the
base's scan with every other position moved, as :func:`html.assemble` does for a
full compile. What else could change the template is ruled out: no ``{`` or ``}``
in the changed text or the 20 characters of its run before it (an unsubscribe
placeholder is at most 21 characters long and holds no ``<``), and a patched text
change never crosses a slot. Anything else (another tag, a comment, raw text) is
compiled in full and becomes the new base. A property test holds derived and full
compilation equal on generated edits of real emails.
"""

from __future__ import annotations

from bisect import bisect_right

from tracker.rewrite.charrefs import name as tag_name
from tracker.rewrite.html import LinkTag, Scanned, assemble, read_link
from tracker.rewrite.links import UTM, Own
from tracker.rewrite.template import Template, json_part
from tracker.rewrite.tokenizer import DATA, START_TAG, TEXT, tokens

_PLACEHOLDER_REACH = 20


def _common_prefix(a: str, i: int, b: str, j: int) -> int:
    """Length of the common prefix of ``a[i:]`` and ``b[j:]`` (compared in slices
    of growing size, then bisected: C speed, not a Python loop per character)."""
    n = min(len(a) - i, len(b) - j)
    done, step = 0, 256
    while done < n:
        size = min(step, n - done)
        if a[i + done : i + done + size] == b[j + done : j + done + size]:
            done += size
            step = min(step * 2, 65536)
            continue
        low, high = done, done + size  # equal up to low, different before high
        while high - low > 8:
            middle = (low + high) // 2
            if a[i + low : i + middle] == b[j + low : j + middle]:
                low = middle
            else:
                high = middle
        while low < high and a[i + low] == b[j + low]:
            low += 1
        return low
    return n


class Family:
    """A body compiled in full and what is needed to derive its relatives."""

    __slots__ = ("source", "template", "scanned", "own", "utm", "pixel", "_starts",
                 "_ends", "_part_starts", "_tag_starts", "_tags")

    def __init__(self, source: str, template: Template, scanned: Scanned, own: Own | str,
                 utm: UTM, pixel: bool) -> None:
        self.source = source
        self.template = template
        self.scanned = scanned
        self.own = own
        self.utm = utm
        self.pixel = pixel
        self._starts: list[int] | None = None  # data-state text runs, made on first use
        self._ends: list[int] = []
        self._part_starts = [start for start, _ in template.bounds]
        self._tags = [(k, tag) for k, tag in enumerate(scanned.links) if not tag.nested]
        self._tag_starts = [tag.start for _, tag in self._tags]

    def _runs(self) -> None:
        starts, ends = [], []
        for token in tokens(self.source, text=True):
            if token[0] == TEXT and token[3] == DATA:
                starts.append(token[1])
                ends.append(token[2])
        self._starts, self._ends = starts, ends

    def derive(self, new: str) -> Template | None:
        """The template of ``new`` (equal to compiling it), or None when ``new``
        differs from the base elsewhere than in data-state text."""
        base = self.source
        prefix = _common_prefix(base, 0, new, 0)
        if self._starts is None:
            if not self._similar(base, new, prefix):
                return None
            self._runs()
        starts, ends = self._starts, self._ends
        assert starts is not None
        changes: list[tuple[int, int, str]] = []  # (base start, base end, new text)
        tags: dict[int, LinkTag] = {}  # index in scanned.links -> the tag in ``new``
        i = j = prefix
        while i < len(base) or j < len(new):
            run = bisect_right(starts, i) - 1
            if run < 0 or i > ends[run]:
                tag = self._tag_at(i)
                if tag is None:
                    return None  # the difference is in a tag, comment or raw text
                index, old = tag
                new_tag = self._read_tag(new, j - (i - old.start), old)
                if new_tag is None:
                    return None
                tags[index] = new_tag
                changes.append((old.start, old.end, new[new_tag.start:new_tag.end]))
                i, j = old.end, new_tag.end
            else:
                old_end = ends[run]
                new_end = new.find("<", j)
                if new_end < 0:
                    new_end = len(new)
                if old_end == i and new_end == j:
                    return None  # both at a "<": markup differs
                # a placeholder holds no "<": one that the new text could be part of
                # lies between the start of this run and its end
                run_start = starts[run] + (j - i)
                window = new[max(run_start, j - _PLACEHOLDER_REACH) : new_end]
                if "{" in window or "}" in window:
                    return None
                changes.append((i, old_end, new[j:new_end]))
                i, j = old_end, new_end
            common = _common_prefix(base, i, new, j)
            i, j = i + common, j + common
        if tags or not self.template.bounds:  # bounds: parts cut straight from the base
            return self._rebuild(new, changes, tags)
        return self._patch(changes)

    def _similar(self, base: str, new: str, i: int) -> bool:
        """Whether ``new`` differs from ``base`` (equal up to ``i``) only between some
        ``>`` and the next ``<``, or inside link tags, at most 64 times: the cheap
        test that decides whether the base's text runs are worth finding (unrelated
        bodies, or another changed tag, stop at once). Only a guess: :meth:`derive`
        then checks exactly."""
        j = i
        for _ in range(64):
            if i >= len(base) and j >= len(new):
                return True
            if base.rfind("<", 0, i) > base.rfind(">", 0, i) and self._tag_at(i) is None:
                return False  # most likely inside a tag other than a link
            old_end, new_end = base.find("<", i), new.find("<", j)
            old_end = len(base) if old_end < 0 else old_end
            new_end = len(new) if new_end < 0 else new_end
            if old_end == i and new_end == j:
                return False
            common = _common_prefix(base, old_end, new, new_end)
            i, j = old_end + common, new_end + common
        return i >= len(base) and j >= len(new)

    def _tag_at(self, i: int) -> tuple[int, LinkTag] | None:
        """The link tag (outside comments) whose inside holds position ``i``."""
        k = bisect_right(self._tag_starts, i) - 1
        if k < 0:
            return None
        index, tag = self._tags[k]
        return (index, tag) if tag.start < i < tag.end else None

    def _read_tag(self, new: str, start: int, old: LinkTag) -> LinkTag | None:
        """The start tag at ``start`` in ``new`` if it is the same kind of tag as
        ``old`` (same name and self-closing flag, so the tokenizer goes on as it did)."""
        m = START_TAG.match(new, start)
        if m is None or tag_name(m.group("start")) != old.name or (
                m.group("close").endswith("/") != old.self_closing):
            return None
        attrs, attrs_end = m.span("attrs")
        return LinkTag(start, m.end(), attrs,
                       read_link(new, attrs, attrs_end, self.own, self.utm), False,
                       old.name, old.self_closing)

    def _rebuild(self, new: str, changes: list[tuple[int, int, str]],
                 tags: dict[int, LinkTag]) -> Template:
        """A template from the base's scan with the changed link tags read again and
        every other position moved by the changes before it."""
        pairs = []
        changed = iter(changes)
        next_change = next(changed, None)
        shift = 0
        for index, tag in enumerate(self.scanned.links):
            while next_change is not None and next_change[1] <= tag.start:
                start, end, text = next_change
                shift += len(text) - (end - start)
                next_change = next(changed, None)
            replaced = tags.get(index)
            pairs.append((tag.attrs + shift, tag.found) if replaced is None
                         else (replaced.attrs, replaced.found))
        body_end = self.scanned.body_end
        if body_end is not None:
            body_end += sum(len(text) - (end - start) for start, end, text in changes
                            if end <= body_end)
        return assemble(new, pairs, body_end, pixel=self.pixel)

    def _patch(self, changes: list[tuple[int, int, str]]) -> Template | None:
        template = self.template
        bounds, part_starts = template.bounds, self._part_starts
        parts = list(template.parts)
        edited: dict[int, list[tuple[int, int, str]]] = {}
        for start, end, text in changes:
            index = bisect_right(part_starts, start) - 1
            if start == end and index > 0 and bounds[index - 1][1] == start:
                index -= 1  # text added just before the pixel goes before it
            if end > bounds[index][1]:
                return None  # the change would cross a slot
            edited.setdefault(index, []).append((start, end, text))
        for index, part_changes in edited.items():
            part_start, part_end = bounds[index]
            pieces: list[str] = []
            position = part_start
            for start, end, text in part_changes:
                pieces += (self.source[position:start], text)
                position = end
            pieces.append(self.source[position:part_end])
            parts[index] = "".join(pieces)
        escaped = template._json
        if escaped is not None:
            escaped = tuple(json_part(parts[k]) if k in edited else escaped[k]
                            for k in range(len(parts)))
        return Template(tuple(parts), template.slots, template.links, template.link_bytes,
                        template.warnings, escaped)
