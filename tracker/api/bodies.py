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
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

#: the cap of a batch route (outcomes, conversions): ~100,000 outcomes
MAX_BODY_BYTES = 24 * 1024 * 1024
MAX_JSON_DEPTH = 32
#: bodies larger than this are parsed off the event loop
PARSE_ON_THREAD_BYTES = 256 * 1024


class BadRequest(Exception):
    """Raised by handlers; turned into a JSON 4xx by ``error_response``."""

    def __init__(self, status: int, error: str, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


#: Bad rows listed in a refused batch; the rest are only counted.
MAX_LISTED_ERRORS = 1000


def invalid_batch(what: str, errors: list[dict], total: int) -> BadRequest:
    """The 422 for a batch refused whole: each bad row by index, and what to do."""
    return BadRequest(422, f"invalid_{what}", {
        "message": f"{len(errors)} of {total} {what} are invalid; nothing was stored. "
                   "Fix the rows listed and send the whole batch again.",
        "rows": errors[:MAX_LISTED_ERRORS],
        "more": max(0, len(errors) - MAX_LISTED_ERRORS),
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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "body_too_large",
                             f"the body exceeds {limit} bytes; split it into several requests")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests arrays and objects deeper than MAX_JSON_DEPTH; walks
    the containers only, and stops at the first one too deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


_TOO_DEEP = BadRequest(400, "too_deep",
                       f"JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten the structure")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value; send numbers as plain decimals")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NEXT = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


def _loads(text: str) -> Any:
    """``json.loads`` without NaN and Infinity, a top-level array one element at a
    time (short calls, so a thread parsing it yields the interpreter often)."""
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", start):
        return _DECODER.decode(text)
    items: list[Any] = []
    end = _WHITESPACE.match(text, start + 1).end()  # type: ignore[union-attr]
    if not text.startswith("]", end):
        scan = _DECODER.scan_once
        while True:
            try:
                item, end = scan(text, end)
            except StopIteration as stop:
                raise json.JSONDecodeError("Expecting value", text, stop.value) from None
            items.append(item)
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
    return items


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


def parse_json(raw: bytes) -> Any:
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
    try:
        value = _loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, "bad_json",
                         f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from exc
    except ValueError as exc:  # NaN, Infinity
        raise BadRequest(400, "bad_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError:  # nested far deeper than the limit
        raise _TOO_DEEP from None
    if isinstance(value, (dict, list)) and _too_deep(value):
        raise _TOO_DEEP
    return value


async def off_the_loop(work: Any, raw: bytes) -> Any:
    """``work(raw)``, on a worker thread when ``raw`` is large (see the module
    docstring); BadRequest passes through."""
    if len(raw) < PARSE_ON_THREAD_BYTES:
        return work(raw)
    return await asyncio.to_thread(work, raw)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    return await off_the_loop(parse_json, await read_body(request, limit))


def require_object(value: Any, what: str = "the body") -> dict:
    if not isinstance(value, dict):
        raise BadRequest(422, "invalid", f"{what} must be a JSON object")
    return value
