"""The HTML standard's tokenizer, reduced to what a byte-preserving rewriter needs.

Why hand-written: the rewriter must keep every byte it does not rewrite, so it
needs the source offsets of each tag and of each attribute value. html5lib gives
no offsets; justhtml (pure Python) gives a tag's span but its attributes only as a
dict; the C parsers (selectolax/lexbor, html5-parser/gumbo) build a tree and expose
no attribute offsets; ``html.parser`` is not the standard's tokenizer and changed
its comment and CDATA rules between Python patch releases. This module follows the
standard's state machine (WHATWG HTML, section 13.2.5) and is held to the
html5lib-tests tokenizer cases (tests/test_html_tokenizer.py).

It only *locates*: each token carries offsets into the source, and the text it
means (character references, CR/LF, NUL) is computed on demand by
:mod:`tracker.rewrite.charrefs`. The data state, tags and attributes are matched
by one regular expression per token (possessive quantifiers, so linear and
without backtracking); comments, RCDATA, RAWTEXT and script data are found with
``str.find`` and small loops. The states that the tree builder chooses (RCDATA
after ``<title>``, RAWTEXT after ``<style>``, script data, PLAINTEXT, and CDATA
sections and no raw text inside ``<svg>``/``<math>``) are switched as the tree
builder would for a document; see :class:`_Foreign` for that approximation.

Tokens are tuples, ``(kind, start, end, ...)``, ``end`` exclusive:

- ``(TEXT, start, end, state)`` character data of ``state`` (DATA, RCDATA, RAWTEXT,
  SCRIPT, PLAINTEXT or CDATA), only when asked for with ``text=True``;
- ``(START, start, end, name, attrs_start, attrs_end, self_closing)``, the
  attributes parsed on demand by :func:`attributes`;
- ``(END, start, end, name)``;
- ``(COMMENT, start, end, data_start, data_end)`` (bogus comments included);
- ``(DOCTYPE, start, end)``.

At the end of the input inside a tag the standard emits nothing more; so does
this (the remaining bytes are simply not tokens).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import Any, NamedTuple

from tracker.rewrite.charrefs import name as _name

# token kinds
TEXT, START, END, COMMENT, DOCTYPE = range(5)
# tokenizer states for character data
DATA, RCDATA, RAWTEXT, SCRIPT, PLAINTEXT, CDATA = range(6)

#: One token: its shape depends on its kind (first item), as the module docstring says.
Token = tuple[Any, ...]

_W = r"\t\n\f\r "  # ASCII whitespace (CR stands for the LF it becomes)
_VALUE = rf"""(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^{_W}>"'][^{_W}>]*+|(?=>))"""
_ATTRS = (rf"(?:[{_W}/]*+[^{_W}/>][^{_W}/>=]*+(?:[{_W}]*+=[{_W}]*+{_VALUE})?)*+")
#: One token after a "<" in the data state. A tag can only fail to match by running
#: into the end of the input (every character has its place in some state), so the
#: "eof" alternative, tried last, means exactly "end of file in a tag".
_TOKEN = (rf"<(?:(?P<start>{{start}}[^{_W}/>]*+)(?P<attrs>{_ATTRS})(?P<close>[{_W}/]*+)>"
          rf"|/(?P<end>{{end}}[^{_W}/>]*+){_ATTRS}[{_W}/]*+>"
          r"|(?P<eof>/?[A-Za-z])|(?P<other>[!?/]))")
_MARKUP = re.compile(_TOKEN.format(start="[A-Za-z]", end="[A-Za-z]"))
#: A whole start tag at a "<" (what :func:`tokens` would read there in the data state).
START_TAG = re.compile(rf"<(?P<start>[A-Za-z][^{_W}/>]*+)(?P<attrs>{_ATTRS})(?P<close>[{_W}/]*+)>")
_END_TAG = re.compile(rf"</(?P<end>[A-Za-z][^{_W}/>]*+){_ATTRS}[{_W}/]*+>")
_ATTR = re.compile(
    rf"[{_W}/]*+(?P<name>[^{_W}/>][^{_W}/>=]*+)"
    rf"(?:[{_W}]*+=[{_W}]*+(?P<value>\"[^\"]*+\"|'[^']*+'|[^{_W}>\"'][^{_W}>]*+)?)?")
_COMMENT_END = re.compile(r"--!?>")
_LETTERS = re.compile(r"[A-Za-z]+")
_SPACE_SLASH_GT = frozenset("\t\n\f\r />")

_RAW_STATES = {
    "title": RCDATA, "textarea": RCDATA,
    "style": RAWTEXT, "xmp": RAWTEXT, "iframe": RAWTEXT, "noembed": RAWTEXT,
    "noframes": RAWTEXT, "script": SCRIPT, "plaintext": PLAINTEXT,
}
_appropriate_end: dict[str, re.Pattern[str]] = {}


def _end_tag_pattern(tag: str) -> re.Pattern[str]:
    """``</tag`` followed by whitespace, ``/`` or ``>``: the "appropriate end tag"."""
    found = _appropriate_end.get(tag)
    if found is None:
        found = _appropriate_end[tag] = re.compile(
            "</" + re.escape(tag) + rf"(?=[{_W}/>])", re.IGNORECASE)
    return found


class Attribute(NamedTuple):
    """One attribute of a start tag. ``value_start``/``value_end`` delimit the value
    as written, quotes excluded (equal when there is no value)."""

    name: str
    start: int  # where the name starts
    end: int  # just after the value (its closing quote included)
    value_start: int
    value_end: int


def attributes(source: str, start: int, end: int) -> list[Attribute]:
    """The attributes between ``start`` and ``end`` (a START token's attrs span), the
    first of each name only, as the standard drops later duplicates."""
    found: list[Attribute] = []
    seen: set[str] = set()
    position = start
    while position < end:
        m = _ATTR.match(source, position, end)
        if m is None or m.end() == position:
            break
        position = m.end()
        name = _name(m.group("name"))
        if name in seen:
            continue
        seen.add(name)
        value = m.group("value")
        if value is None:
            value_start = value_end = position
        elif value[0] in "\"'":
            value_start, value_end = m.start("value") + 1, m.end("value") - 1
        else:
            value_start, value_end = m.span("value")
        found.append(Attribute(name, m.start("name"), position, value_start, value_end))
    return found


#: Start tags that end foreign content (the tree builder's "breakout" list).
_BREAKOUT = frozenset((
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing",
    "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong",
    "strike", "sub", "sup", "table", "tt", "u", "ul", "var"))
_INTEGRATION = frozenset(("foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext"))


class _Foreign:
    """Whether the tree builder would be in ``<svg>``/``<math>`` content: there,
    ``<title>`` or ``<style>`` hold markup, not raw text, and ``<![CDATA[`` opens a
    CDATA section. An approximation of tree construction: a stack of the open
    foreign elements, popped by their end tags and emptied by the breakout tags;
    inside an HTML integration point (``foreignObject``, ``desc``, ``title``,
    MathML text elements) tags are HTML again."""

    __slots__ = ("stack",)

    def __init__(self) -> None:
        self.stack: list[str] = []

    def html(self) -> bool:
        return not self.stack or self.stack[-1] in _INTEGRATION

    def start(self, name: str, self_closing: bool) -> bool:
        """Record a start tag; True when it is an HTML element."""
        stack = self.stack
        if not stack or stack[-1] in _INTEGRATION:
            if name in ("svg", "math") and not self_closing:
                stack.append(name)
                return False
            return True
        if name in _BREAKOUT or name == "font":
            stack.clear()
            return True
        if not self_closing:
            stack.append(name)
        return False

    def end(self, name: str) -> None:
        stack = self.stack
        if name in stack:
            del stack[len(stack) - 1 - stack[::-1].index(name):]
        elif stack and name in ("br", "p") and stack[-1] not in _INTEGRATION:
            stack.clear()


def skipping(start_tags: tuple[str, ...], end_tags: tuple[str, ...]) -> re.Pattern[str]:
    """A scanner for :func:`tokens` that passes over every tag but the start tags
    named in ``start_tags`` (a name ending in ``:`` stands for that prefix) and the
    end tags in ``end_tags`` inside the regular expression engine, without a token
    for each: what the rewriter does not read costs no Python per tag. Comments,
    DOCTYPEs and the tags that switch the tokenizer's state are still tokens, so
    the result is the same token stream, filtered."""
    starts = tuple(sorted(set(start_tags) | set(_RAW_STATES) | {"svg", "math"}))

    def names(tags: tuple[str, ...]) -> str:
        alternatives = "|".join(
            re.escape(t) + ("" if t.endswith(":") else rf"(?=[{_W}/>]|\Z)") for t in tags)
        return f"(?i:{alternatives})"

    start, end = names(starts), names(end_tags) if end_tags else "(?!)"
    skip = (rf"(?:[^<]++|<(?:(?!{start})[A-Za-z][^{_W}/>]*+{_ATTRS}[{_W}/]*+>"
            rf"|/(?!{end})[A-Za-z][^{_W}/>]*+{_ATTRS}[{_W}/]*+>|(?![A-Za-z!?/])))*+")
    return re.compile(skip + "(?P<token>" + _TOKEN.format(start=start, end=end) + ")")


def tokens(source: str, *, state: int = DATA, last_start_tag: str | None = None,
           text: bool = False, skip: re.Pattern[str] | None = None) -> Iterator[Token]:
    """Tokenize ``source`` (see the module docstring for the tuples).

    ``state`` and ``last_start_tag`` start the tokenizer elsewhere than in the data
    state (as the html5lib-tests do); ``text`` asks for the character data too;
    ``skip`` (from :func:`skipping`, not with ``text``) leaves out the tags it skips."""
    assert not (text and skip), "a skipping scanner gives no character data"
    end = len(source)
    position = 0
    foreign = _Foreign()
    search = _MARKUP.search
    skipper = skip.match if skip is not None else None
    find = source.find
    if state != DATA:
        position = yield from _raw(source, 0, state, last_start_tag, text)
        if position < 0:
            return
    text_start = position
    while True:
        if skipper is not None and not foreign.stack:
            m = skipper(source, position)
            if m is None:
                break
            at = m.start("token")
        else:
            m = search(source, position)
            if m is None:
                break
            at = m.start()
        name = m.group("start")
        if name is not None:
            if text and at > text_start:
                yield (TEXT, text_start, at, DATA)
            name = _name(name)
            self_closing = m.group("close").endswith("/")
            position = m.end()
            yield (START, at, position, name, m.start("attrs"), m.end("attrs"), self_closing)
            raw = _RAW_STATES.get(name)
            if name in ("svg", "math") or foreign.stack:
                is_html = foreign.start(name, self_closing)
                if not is_html:
                    raw = None
            if raw is not None:
                position = yield from _raw(source, position, raw, name, text)
                if position < 0:
                    return
            text_start = position
            continue
        name = m.group("end")
        if name is not None:
            if text and at > text_start:
                yield (TEXT, text_start, at, DATA)
            name = _name(name)
            position = text_start = m.end()
            if foreign.stack:
                foreign.end(name)
            yield (END, at, position, name)
            continue
        if m.group("eof") is not None:
            if text and at > text_start:
                yield (TEXT, text_start, at, DATA)
            return  # end of file inside a tag: no more tokens
        # "<!", "<?" or "</" followed by something that is not a letter
        kind = source[at + 1]
        after = at + 2
        if kind == "/":
            if after >= end:
                position = after  # "</" at the end of the input is text
                continue
            if text and at > text_start:
                yield (TEXT, text_start, at, DATA)
            if source[after] == ">":  # "</>": dropped
                position = text_start = after + 1
                continue
            close = find(">", after)
            close = end if close < 0 else close
            position = text_start = min(close + 1, end)
            yield (COMMENT, at, position, after, close)
            continue
        if text and at > text_start:
            yield (TEXT, text_start, at, DATA)
        if kind == "?":
            close = find(">", after)
            close = end if close < 0 else close
            position = text_start = min(close + 1, end)
            yield (COMMENT, at, position, at + 1, close)
            continue
        if source.startswith("--", after):
            position, data_end = _comment(source, after + 2)
            text_start = position
            yield (COMMENT, at, position, after + 2, data_end)
            continue
        if source[after : after + 7].lower() == "doctype":
            close = find(">", after)
            position = text_start = end if close < 0 else close + 1
            yield (DOCTYPE, at, position)
            continue
        if source.startswith("[CDATA[", after) and not foreign.html():
            close = find("]]>", after + 7)
            stop = end if close < 0 else close
            if text and stop > after + 7:
                yield (TEXT, after + 7, stop, CDATA)
            position = text_start = end if close < 0 else close + 3
            continue
        close = find(">", after)
        close = end if close < 0 else close
        position = text_start = min(close + 1, end)
        yield (COMMENT, at, position, after, close)
    if text and end > text_start:
        yield (TEXT, text_start, end, DATA)


def _comment(source: str, data: int) -> tuple[int, int]:
    """(end, data_end) of a comment whose data starts at ``data``: after its ``>``
    and before its ``-->``/``--!>``; at the end of the input, less the dashes the
    standard holds back there (``<!-- a--`` is the comment " a")."""
    if source.startswith(">", data):
        return data + 1, data  # "<!-->"
    if source.startswith("->", data):
        return data + 2, data  # "<!--->"
    m = _COMMENT_END.search(source, data)
    if m is not None:
        return m.end(), m.start()
    end = len(source)
    if source.endswith("--!", data, end):
        return end, end - 3
    dashes = 0
    while dashes < 2 and end - dashes > data and source[end - dashes - 1] == "-":
        dashes += 1
    return end, end - dashes


def _raw(source: str, position: int, state: int, tag: str | None,
         text: bool) -> Generator[Token, None, int]:
    """The character data of an RCDATA, RAWTEXT, script or PLAINTEXT element and its
    end tag; returns where the data state resumes, or -1 at the end of the input."""
    end = len(source)
    if state == CDATA:
        close = source.find("]]>", position)
        stop = end if close < 0 else close
        if text and stop > position:
            yield (TEXT, position, stop, CDATA)
        return -1 if close < 0 else close + 3
    if state == PLAINTEXT or tag is None:
        if text and end > position:
            yield (TEXT, position, end, state)
        return -1
    if state == SCRIPT:
        close = _script_end(source, position, tag)
    else:
        m = _end_tag_pattern(tag).search(source, position)
        close = -1 if m is None else m.start()
    if close < 0:
        if text and end > position:
            yield (TEXT, position, end, state)
        return -1
    if text and close > position:
        yield (TEXT, position, close, state)
    m = _END_TAG.match(source, close)
    if m is None:
        return -1  # end of file inside the end tag
    yield (END, close, m.end(), _name(m.group("end")))
    return m.end()


# script data states (13.2.5.4 and 13.2.5.15-13.2.5.31)
_SD, _ESC, _ESC_DASH, _ESC_DD, _DESC, _DESC_DASH, _DESC_DD = range(7)
_DASH = {_ESC: _ESC_DASH, _ESC_DASH: _ESC_DD, _ESC_DD: _ESC_DD,
         _DESC: _DESC_DASH, _DESC_DASH: _DESC_DD, _DESC_DD: _DESC_DD}
_ESCAPED_SPECIAL = re.compile(r"[<-]")


def _script_end(source: str, position: int, tag: str) -> int:
    """Where the script's appropriate end tag starts, or -1: the script data states,
    including the escaped (``<!--``) and double-escaped (``<!--<script>``) ones in
    which ``</script>`` does or does not end the element."""
    appropriate = _end_tag_pattern(tag)
    end = len(source)
    state = _SD
    while position < end:
        if state == _SD:
            at = source.find("<", position)
            if at < 0:
                return -1
            if appropriate.match(source, at):
                return at
            if source.startswith("!--", at + 1):
                state, position = _ESC_DD, at + 4
            else:
                position = at + 1
            continue
        if state in (_ESC, _DESC):
            m = _ESCAPED_SPECIAL.search(source, position)
            if m is None:
                return -1
            position = m.start()
        char = source[position]
        position += 1
        escaped = state in (_ESC, _ESC_DASH, _ESC_DD)
        if char == "-":
            state = _DASH[state]
        elif char == "<":
            if escaped:
                if appropriate.match(source, position - 1):
                    return position - 1
                state, buffer = _ESC, _LETTERS.match(source, position)
            else:
                state, buffer = _DESC, None
                if source.startswith("/", position):
                    position += 1
                    buffer = _LETTERS.match(source, position)
            if buffer is not None:
                position = buffer.end()
                if position < end and source[position] in _SPACE_SLASH_GT:
                    if buffer.group().lower() == "script":
                        state = _DESC if escaped else _ESC
                    position += 1
        elif char == ">" and state in (_ESC_DD, _DESC_DD):
            state = _SD
        else:
            state = _ESC if escaped else _DESC
    return -1



def doctype(source: str, start: int, end: int) -> tuple[str | None, str | None, str | None, bool]:
    """(name, public id, system id, not force-quirks) of the DOCTYPE token at
    ``start``..``end``, by the standard's DOCTYPE states. The rewriter itself only
    needs where a DOCTYPE ends (its first ``>``); this is here so that the
    conformance tests compare whole tokens."""
    text = source[start + 9 : end]  # after "<!DOCTYPE"
    closed = text.endswith(">")  # else it ran into the end of the input
    text = (text[:-1] if closed else text).replace("\0", "\ufffd")
    size = len(text)

    def skip(i: int) -> int:
        while i < size and text[i] in "\t\n\f\r ":
            i += 1
        return i

    def quoted(i: int) -> tuple[str, int]:
        """A quoted id starting at ``i``: (value, index after it, or -1 if unclosed)."""
        close = text.find(text[i], i + 1)
        return (text[i + 1 :], -1) if close < 0 else (text[i + 1 : close], close + 1)

    i = skip(0)
    if i >= size:
        return None, None, None, False
    j = i
    while j < size and text[j] not in "\t\n\f\r ":
        j += 1
    name = "".join(c.lower() if "A" <= c <= "Z" else c for c in text[i:j])
    i = skip(j)
    if i >= size:
        return name, None, None, closed
    keyword = text[i : i + 6].upper()
    if keyword not in ("PUBLIC", "SYSTEM"):
        return name, None, None, False  # bogus DOCTYPE
    public = None
    i = skip(i + 6)
    if i >= size or text[i] not in "\"'":
        return name, None, None, False
    if keyword == "PUBLIC":
        public, i = quoted(i)
        if i < 0:
            return name, public, None, False
        i = skip(i)
        if i >= size:
            return name, public, None, closed
        if text[i] not in "\"'":
            return name, public, None, False
    system, i = quoted(i)
    if i < 0:
        return name, public, system, False
    i = skip(i)
    # anything after the system id makes a bogus DOCTYPE, which keeps its flags
    return name, public, system, closed or i < size
