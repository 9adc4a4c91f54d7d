"""Reading and answering JSON safely: capped bodies, capped nesting, clear errors.

Every ingest endpoint goes through here so that every bad input gets the same
kind of answer: a 4xx with ``{"error": ..., "detail": ...}`` saying what was
wrong and how to fix it, and nothing stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 32


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


def _depth(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


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
    if _depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(400, "too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    problem = _unstorable_escape(text)
    if problem is not None:
        raise BadRequest(400, "bad_text",
                         f"the JSON holds {problem}, which is not storable text; "
                         "remove it or send the character itself in UTF-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, "bad_json",
                         f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from exc


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    return parse_json(await read_body(request, limit))


def require_object(value: Any, what: str = "the body") -> dict:
    if not isinstance(value, dict):
        raise BadRequest(422, "invalid", f"{what} must be a JSON object")
    return value
