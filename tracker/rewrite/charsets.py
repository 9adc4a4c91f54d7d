"""Which decoder reads a MIME part's ``charset``: labels as the WHATWG Encoding
standard resolves them, the way mail clients built on browser engines read mail.

The label table is ``webencodings`` (the standard's labels: ``x-mac-cyrillic``,
``latin1`` as windows-1252, ``ks_c_5601-1987`` as euc-kr, ...). A label the
standard does not know but Python's codecs do (``utf-7``, ``cp932``) is still read,
as mail clients do. Labels of the standard's "replacement" encoding
(``iso-2022-kr``, ``hz-gb-2312``, ...) and labels nobody knows give no decoder:
such a part is passed through untouched.

Each encoding is tried with the decoders mail clients use, most exact first, and
written back with the one that read it, so the bytes of an untouched character
come back as they were:

- windows-1252 is the full table of the standard (the five bytes Python's
  ``cp1252`` refuses are the C1 controls); a part labelled US-ASCII is read as
  ASCII, then as UTF-8 (8-bit mail mislabelled ASCII is almost always UTF-8),
  then as windows-1252;
- ``Shift_JIS`` and ``ISO-2022-JP`` fall back on their Microsoft supersets
  (``cp932``, ``iso2022_jp_ext``), ``EUC-KR`` on ``cp949``, ``Big5`` on
  ``big5hkscs``, ``GBK`` on ``gb18030``.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import NamedTuple

import webencodings


class Codec(NamedTuple):
    name: str
    decode: Callable[[bytes], str]  # raises UnicodeDecodeError
    encode: Callable[[str], bytes]


def _python(name: str | codecs.CodecInfo) -> Codec:
    info = codecs.lookup(name) if isinstance(name, str) else name
    return Codec(info.name, lambda data: info.decode(data)[0], lambda text: info.encode(text)[0])


def _windows_1252() -> Codec:
    table = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256))
    encoding = codecs.charmap_build(table)
    return Codec("windows-1252", lambda data: codecs.charmap_decode(data, "strict", table)[0],
                 lambda text: codecs.charmap_encode(text, "strict", encoding)[0])


_ASCII_LABELS = frozenset(("us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us", "cp367",
                           "ibm367", "csascii", "iso-ir-6", "iso_646.irv:1991"))
#: WHATWG encoding name -> Python decoders to try after the exact one.
_FALLBACKS = {
    "shift_jis": ("shift_jis", "cp932"),
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_3"),
    "euc-kr": ("euc_kr", "cp949"),
    "big5": ("big5", "big5hkscs"),
    "gbk": ("gbk", "gb18030"),
}
_cache: dict[str, tuple[Codec, ...]] = {}


def decoders(label: str) -> tuple[Codec, ...]:
    """The decoders to try for a charset label, in order (empty: none can read it)."""
    key = label.strip().lower()
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = _resolve(key)
    return found


def _resolve(label: str) -> tuple[Codec, ...]:
    encoding = webencodings.lookup(label)
    if encoding is None:
        try:
            return (_python(label),)  # not a web label, but mail clients read it (utf-7, ...)
        except LookupError:
            return ()
    name = encoding.name
    if name == "replacement":
        return ()
    if name == "windows-1252":
        if label in _ASCII_LABELS:
            return (_python("ascii"), _python("utf-8"), _windows_1252())
        return (_windows_1252(),)
    if name in _FALLBACKS:
        return tuple(_python(n) for n in _FALLBACKS[name])
    return (_python(encoding.codec_info),)  # x-user-defined is not in Python's registry


def decode(data: bytes, label: str) -> tuple[str, Codec] | None:
    """(text, the codec that read it), or None when no decoder for ``label`` reads
    ``data``."""
    for codec in decoders(label):
        try:
            return codec.decode(data), codec
        except UnicodeDecodeError:
            continue
    return None
