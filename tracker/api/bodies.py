"""Reading and answering JSON safely: capped bodies, capped nesting, clear errors.

Every ingest endpoint goes through here so that every bad input gets the same
kind of answer: a 4xx with ``{"error": ..., "detail": ...}`` saying what was
wrong and how to fix it, and nothing stored.

Bodies are capped per route (413 past the cap, before a byte is kept when the
length is declared). A large body is parsed on a worker thread, one array element
at a time, so the event loop that serves pixels and redirects gets the
interpreter back every few milliseconds instead of waiting out one long parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from tracker import memory

#: the cap of a batch route (outcomes, conversions): ~100,000 outcomes
MAX_BODY_BYTES = 24 * 1024 * 1024
MAX_JSON_DEPTH = 32
#: bodies larger than this are parsed off the event loop
PARSE_ON_THREAD_BYTES = 256 * 1024
#: array elements parsed (and used by the caller) between two offers of the
#: interpreter to other threads: Python's own switch interval (5 ms) would make a
#: pixel wait that long at each of its few turns while a batch is parsed
YIELD_EVERY = 32

T = TypeVar("T")


class BadRequest(Exception):
    """Raised by handlers; turned into a JSON 4xx by ``error_response``."""

    def __init__(self, status: int, error: str, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


#: Bad rows listed in a refused batch; the rest are only counted.
MAX_LISTED_ERRORS = 1000


class BatchErrors:
    """The bad rows of a batch: the first MAX_LISTED_ERRORS by index, the rest only
    counted (a batch of 100,000 bad rows must not make 100,000 messages)."""

    __slots__ = ("count", "listed")

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.count = 0

    def add(self, index: int, error: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append({"index": index, "error": error})

    def __bool__(self) -> bool:
        return self.count > 0

    def refusal(self, what: str, total: int) -> BadRequest:
        """The 422 for a batch refused whole: each bad row by index, and what to do."""
        return BadRequest(422, f"invalid_{what}", {
            "message": f"{self.count} of {total} {what} are invalid; nothing was stored. "
                       "Fix the rows listed and send the whole batch again.",
            "rows": self.listed,
            "more": self.count - len(self.listed),
        })


def error_response(exc: BadRequest) -> JSONResponse:
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, "body_too_large",
                         f"the body is {declared} bytes; at most {limit} are accepted per request, "
                         "split it into several requests")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, "body_too_large",
                                 f"the body exceeds {limit} bytes; split it into several "
                                 "requests")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        if size >= PARSE_ON_THREAD_BYTES:
            memory.trim_soon()


def _too_deep(value: Any, depth: int = 1) -> bool:
    """Whether ``value`` (at ``depth``) nests arrays and objects deeper than
    MAX_JSON_DEPTH; walks the containers only, and stops at the first one too deep."""
    stack = [(value, depth)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _too_deep_error() -> BadRequest:
    return BadRequest(400, "too_deep",
                      f"JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten the structure")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value; send numbers as plain decimals")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large for a number; send a smaller value")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NEXT = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


def _loads(text: str) -> Any:
    """``json.loads`` without NaN and Infinity; a top-level array element by element."""
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if text.startswith("[", start):
        return list(_elements(text, start))
    value = _DECODER.decode(text)
    if isinstance(value, (dict, list)) and _too_deep(value):
        raise _too_deep_error()
    return value


def _elements(text: str, start: int) -> Iterator[Any]:
    """The elements of the array at ``text[start]``, parsed one at a time: short
    calls (a thread parsing yields the interpreter often) and one element alive at
    a time for a caller that keeps only what it makes of each."""
    blank = _WHITESPACE.match(text, start + 1)
    assert blank is not None, "it matches the empty string too"
    end = blank.end()
    count = 0
    if not text.startswith("]", end):
        # set by JSONDecoder.__init__, but typeshed does not declare it
        scan = _DECODER.scan_once  # type: ignore[attr-defined]
        while True:
            try:
                item, end = scan(text, end)
            except StopIteration as stop:
                raise json.JSONDecodeError("Expecting value", text, stop.value) from None
            if isinstance(item, (dict, list)) and _too_deep(item, 2):
                raise _too_deep_error()
            yield item
            count += 1
            if not count % YIELD_EVERY:
                time.sleep(0)  # hand the interpreter to the event loop, if it waits
            separator = _NEXT.match(text, end)
            if separator is None:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, end)
            end = separator.end()
            if separator.group(1) == "]":
                break
    else:
        end = _WHITESPACE.match(text, end + 1).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)


# A JSON escape (an odd number of backslashes before "u") of NUL or of a UTF-16
# surrogate. PostgreSQL text and jsonb can hold neither NUL nor an unpaired
# surrogate, so such input is refused here, once, for every endpoint.
_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _unstorable_escape(text: str) -> str | None:
    """Describe the first \\u0000 or unpaired surrogate escape in ``text``, or None."""
    if "\\u" not in text:
        return None
    pending_high: int | None = None
    for match in _ESCAPE.finditer(text):
        code = match.group(1).lower()
        if code == "0000":
            return "a \\u0000 (NUL) character"
        value = int(code, 16)
        if value < 0xDC00:  # high surrogate: must be followed at once by a low one
            if pending_high is not None:
                return "an unpaired UTF-16 surrogate"
            pending_high = match.end()
        else:
            if pending_high != match.start():
                return "an unpaired UTF-16 surrogate"
            pending_high = None
    return "an unpaired UTF-16 surrogate" if pending_high is not None else None


def _text(raw: bytes) -> str:
    """The body as text, refused if it holds what PostgreSQL cannot store."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, "bad_encoding", f"the body is not UTF-8 (byte {exc.start})") from exc
    if "\x00" in text:
        raise BadRequest(400, "bad_text", "the body holds a NUL character, which is not "
                                          "storable text; remove it")
    problem = _unstorable_escape(text)
    if problem is not None:
        raise BadRequest(400, "bad_text",
                         f"the JSON holds {problem}, which is not storable text; "
                         "remove it or send the character itself in UTF-8")
    return text


@contextlib.contextmanager
def _as_bad_request() -> Iterator[None]:
    try:
        yield
    except json.JSONDecodeError as exc:
        raise BadRequest(400, "bad_json",
                         f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from exc
    except ValueError as exc:  # NaN, Infinity
        raise BadRequest(400, "bad_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:  # nested far deeper than the limit
        raise _too_deep_error() from None


def parse_json(raw: bytes) -> Any:
    text = _text(raw)
    with _as_bad_request():
        return _loads(text)


def iter_array(raw: bytes, what: str) -> Iterator[Any]:
    """The elements of a body that must be a JSON array, parsed as they are taken:
    a batch's rows need not all exist as Python objects at once."""
    text = _text(raw)
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", start):
        with _as_bad_request():
            _DECODER.decode(text)  # not JSON at all: say where
        raise BadRequest(422, "invalid", f"the body must be a JSON array of {what}")
    elements = _elements(text, start)
    while True:
        with _as_bad_request():
            element = next(elements, _END)
        if element is _END:
            return
        yield element


_END = object()


async def off_the_loop(work: Callable[[bytes], T], raw: bytes) -> T:
    """``work(raw)``, on a worker thread when ``raw`` is large (see the module
    docstring); BadRequest passes through."""
    if len(raw) < PARSE_ON_THREAD_BYTES:
        return work(raw)
    return await asyncio.to_thread(_without_traceback, work, raw)


def _without_traceback(work: Callable[[bytes], T], raw: bytes) -> T:
    """``work(raw)``, a BadRequest raised as a fresh copy: the original's traceback
    holds the frames of the parse (and every row parsed) in a cycle with the
    future that carries it, until a full collection, which may be minutes away."""
    try:
        return work(raw)
    except BadRequest as exc:
        refusal = BadRequest(exc.status, exc.error, exc.detail)
    raise refusal  # outside the except: no __context__ pointing back at the original


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    return await off_the_loop(parse_json, await read_body(request, limit))


def require_object(value: Any, what: str = "the body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(422, "invalid", f"{what} must be a JSON object")
    return value
