"""Character references and the other per-character rules of the HTML tokenizer.

The tokenizer (:mod:`tracker.rewrite.tokenizer`) only finds where things are; the
functions here turn a span of the source into the text a browser sees, following
the HTML standard ("character reference state" and "input stream preprocessing"):

- named references are matched longest first against the standard's table (the
  2,231 names of ``html.entities.html5``, which is that table verbatim), so
  ``&notin;`` is one character and ``&notit;`` is ``¬it;``;
- *in an attribute value*, a legacy name written without ``;`` and followed by
  ``=`` or an ASCII letter or digit is left as written: ``?a=1&region=us`` keeps
  ``&region=`` (``&reg`` would otherwise be ``®``), which is what every browser
  does and what the link's author meant;
- numeric references map 0, surrogates and code points past U+10FFFF to U+FFFD and
  the C1 range through the windows-1252 table, as the standard says;
- CR and CRLF become LF, and NUL becomes U+FFFD where the standard says so.
"""

from __future__ import annotations

import re
from html.entities import html5 as _NAMED

#: Names that are matched without a ``;`` (the "legacy" ones), longest is 6 characters.
_LEGACY = frozenset(name for name in _NAMED if not name.endswith(";"))
_LEGACY_MAX = max(len(name) for name in _LEGACY)

_REF = re.compile(r"&(?:#[xX]([0-9A-Fa-f]+);?|#([0-9]+);?|([A-Za-z0-9]+)(;?))")
_NEWLINE = re.compile(r"\r\n?")

#: Numeric references to the C1 range mean windows-1252 (the standard's table).
_C1 = {
    0x80: "\u20ac", 0x82: "\u201a", 0x83: "\u0192", 0x84: "\u201e", 0x85: "\u2026",
    0x86: "\u2020", 0x87: "\u2021", 0x88: "\u02c6", 0x89: "\u2030", 0x8A: "\u0160",
    0x8B: "\u2039", 0x8C: "\u0152", 0x8E: "\u017d", 0x91: "\u2018", 0x92: "\u2019",
    0x93: "\u201c", 0x94: "\u201d", 0x95: "\u2022", 0x96: "\u2013", 0x97: "\u2014",
    0x98: "\u02dc", 0x99: "\u2122", 0x9A: "\u0161", 0x9B: "\u203a", 0x9C: "\u0153",
    0x9E: "\u017e", 0x9F: "\u0178",
}


def _numeric(code: int) -> str:
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return _C1.get(code) or chr(code)


def _named(text: str, match: re.Match[str], in_attribute: bool) -> tuple[str, int]:
    """(replacement, end) for a named reference starting at ``match.start()``."""
    name, semicolon = match.group(3), match.group(4)
    if semicolon and name + ";" in _NAMED:
        return _NAMED[name + ";"], match.end()
    for length in range(min(len(name), _LEGACY_MAX), 1, -1):
        prefix = name[:length]
        if prefix in _LEGACY:
            end = match.start() + 1 + length
            following = text[end : end + 1]
            if in_attribute and following and (following == "=" or following.isascii()
                                               and following.isalnum()):
                return match.group(), match.end()  # as written: "&region=" stays
            return _NAMED[prefix], end
    return match.group(), match.end()  # not a reference: the text as written


def decode(text: str, *, in_attribute: bool) -> str:
    """Character references of ``text`` resolved (an attribute value when
    ``in_attribute``, else data or RCDATA text)."""
    if "&" not in text:
        return text
    out: list[str] = []
    position = 0
    for match in _REF.finditer(text):
        start = match.start()
        if start < position:
            continue  # inside the text after a shorter legacy match
        out.append(text[position:start])
        hexa, decimal = match.group(1), match.group(2)
        if hexa is not None or decimal is not None:
            digits = (hexa if hexa is not None else decimal).lstrip("0") or "0"
            # past 8 digits the number is out of range whatever follows
            code = int(digits, 16 if hexa is not None else 10) if len(digits) <= 8 else 0x110000
            out.append(_numeric(code))
            position = match.end()
        else:
            replacement, position = _named(text, match, in_attribute)
            out.append(replacement)
    out.append(text[position:])
    return "".join(out)


def newlines(text: str) -> str:
    """CR and CRLF as LF (the standard's input preprocessing)."""
    return _NEWLINE.sub("\n", text) if "\r" in text else text


def attribute_value(raw: str) -> str:
    """The value of an attribute as a browser reads it, from its source text
    (without the quotes)."""
    if "&" not in raw and "\r" not in raw and "\0" not in raw:
        return raw
    return decode(newlines(raw), in_attribute=True).replace("\0", "\ufffd")


def name(raw: str) -> str:
    """A tag or attribute name: ASCII upper case lowered, NUL as U+FFFD."""
    lowered = raw.lower() if raw.isascii() else "".join(
        c.lower() if "A" <= c <= "Z" else c for c in raw)
    return lowered.replace("\0", "\ufffd") if "\0" in lowered else lowered


def character_data(raw: str, state: int) -> str:
    """The characters a text span of the tokenizer stands for, in ``state`` (one of
    :mod:`tracker.rewrite.tokenizer`'s DATA, RCDATA, RAWTEXT, SCRIPT, PLAINTEXT,
    CDATA): references are resolved in DATA and RCDATA only; NUL is kept in DATA
    and CDATA sections, U+FFFD elsewhere."""
    text = newlines(raw)
    if state <= 1:  # DATA, RCDATA
        text = decode(text, in_attribute=False)
    if state == 0 or state == 5 or "\0" not in text:
        return text
    return text.replace("\0", "\ufffd")


def comment_data(raw: str) -> str:
    """A comment's text (NUL as U+FFFD, CR/LF as LF)."""
    text = newlines(raw)
    return text.replace("\0", "\ufffd") if "\0" in text else text
