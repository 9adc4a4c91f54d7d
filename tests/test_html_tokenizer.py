"""The rewriter's HTML tokenizer against the html5lib-tests tokenizer cases (issue 16).

The cases are the public conformance tests of the HTML standard's tokenizer
(html5lib-tests, MIT). They are read from ../shared/html5lib-tests/tokenizer when
that folder is there, and from the small copy in tests/data/html5lib/ (with its
LICENSE) otherwise, so a clone alone runs some of them.

Compared: every token and its data (tag and attribute names, attribute values with
their character references, comments, character data of every state), adjacent
characters merged as the tests expect. Not compared, and why:

- parse errors (the ``errors`` lists): the rewriter recovers as a browser does and
  reports nothing, so only the recovery (the tokens) matters;
- xmlViolation.test: the XML-compatible mode of the standard, which no mail
  client uses;
- inputs holding lone surrogates (unicodeCharsProblematic.test and a few others):
  a Python str from a decoded email never holds one, and the tests expect the
  preprocessing of UTF-16 code units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tracker.rewrite import tokenizer as tk
from tracker.rewrite.charrefs import attribute_value, character_data, comment_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "html5lib-tests" / "tokenizer"
BUNDLED = Path(__file__).resolve().parent / "data" / "html5lib"
STATES = {"Data state": tk.DATA, "PLAINTEXT state": tk.PLAINTEXT, "RCDATA state": tk.RCDATA,
          "RAWTEXT state": tk.RAWTEXT, "Script data state": tk.SCRIPT,
          "CDATA section state": tk.CDATA}
#: Files whose cases bear on what the rewriter reads (all but xmlViolation.test).
FILES = ["test1.test", "test2.test", "test3.test", "test4.test", "contentModelFlags.test",
         "escapeFlag.test", "domjs.test", "entities.test", "namedEntities.test",
         "numericEntities.test", "pendingSpecChanges.test", "unicodeChars.test",
         "unicodeCharsProblematic.test"]
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")


def html5lib_tokens(source: str, state: int = tk.DATA, last: str | None = None) -> list:
    """The tokenizer's output in the html5lib-tests format."""
    out: list = []
    for token in tk.tokens(source, state=state, last_start_tag=last, text=True):
        kind = token[0]
        if kind == tk.TEXT:
            data = character_data(source[token[1]:token[2]], token[3])
            if out and out[-1][0] == "Character":
                out[-1][1] += data
            elif data:
                out.append(["Character", data])
        elif kind == tk.START:
            attrs = {a.name: attribute_value(source[a.value_start:a.value_end])
                     for a in tk.attributes(source, token[4], token[5])}
            out.append(["StartTag", token[3], attrs] + ([True] if token[6] else []))
        elif kind == tk.END:
            out.append(["EndTag", token[3]])
        elif kind == tk.COMMENT:
            out.append(["Comment", comment_data(source[token[3]:token[4]])])
        else:
            name, public, system, correct = tk.doctype(source, token[1], token[2])
            out.append(["DOCTYPE", name, public, system, correct])
    return out


def _unescape(value):
    if isinstance(value, str):
        return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, dict):
        return {_unescape(k): _unescape(v) for k, v in value.items()}
    return value


def _expected(output: list) -> list:
    merged: list = []
    for token in output:
        token = list(token)
        if token[0] == "Character" and merged and merged[-1][0] == "Character":
            merged[-1][1] += token[1]
        else:
            merged.append(token)
    return merged


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


#: Large files of one kind of case (each character reference, each code point) run
#: as one test per file: 4,800 more test items would cost more than the cases.
GROUPED = {"namedEntities.test", "numericEntities.test", "unicodeChars.test"}


def cases(folder: Path) -> list:
    """pytest params, each a list of (case, initial state) to run."""
    params = []
    for name in FILES:
        path = folder / name
        if not path.exists():
            continue
        grouped = []
        for index, case in enumerate(json.loads(path.read_text(encoding="utf-8"))["tests"]):
            if case.get("doubleEscaped"):
                case = {**case, "input": _unescape(case["input"]),
                        "output": _unescape(case["output"])}
            marks = []
            if _has_surrogate(case["input"]):
                marks.append(pytest.mark.skip(reason="lone surrogate in the input: never in a "
                                                     "decoded email"))
            for state in case.get("initialStates", ["Data state"]):
                if name in GROUPED and not marks:
                    grouped.append((case, state))
                else:
                    params.append(pytest.param([(case, state)], marks=marks,
                                               id=f"{name}:{index}:{state.split()[0]}"))
        if grouped:
            params.append(pytest.param(grouped, id=f"{name}:all-{len(grouped)}"))
    return params


def run(pairs: list) -> None:
    wrong = []
    for case, state in pairs:
        got = html5lib_tokens(case["input"], STATES[state], case.get("lastStartTag"))
        if got != _expected(case["output"]):
            wrong.append((case["description"], state, got, case["output"]))
    assert not wrong, f"{len(wrong)} of {len(pairs)} cases differ, first: {wrong[0]}"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/html5lib-tests is not beside "
                    "the repository; the bundled subset runs instead")
@pytest.mark.parametrize("pairs", cases(SHARED) if SHARED.is_dir() else [])
def test_html5lib_tokenizer(pairs: list) -> None:
    run(pairs)


@pytest.mark.parametrize("pairs", cases(BUNDLED))
def test_bundled_html5lib_subset(pairs: list) -> None:
    run(pairs)


def test_bundled_subset_keeps_its_license() -> None:
    assert "Permission is hereby granted" in (BUNDLED / "LICENSE").read_text()
    assert cases(BUNDLED)


def test_offsets_cover_the_source() -> None:
    """Tokens never overlap and sit in order, so a rewrite by offsets keeps every
    other byte."""
    source = ('<!DOCTYPE html><p a="1>" b=\'x\' c=d>t&amp;<!-- c --><title><a></title>'
              "<script><!--<script></script>--></script><a href=x>y</a><!--[if mso]>z<![endif]-->")
    position = 0
    for token in tk.tokens(source, text=True):
        assert token[1] == position
        position = token[2]
    assert position == len(source)
