"""``POST /v1/conversions``: a JSON array of ``{user_id, name, ts, value?}``.

Validated whole before anything is stored (422 listing each bad row by index);
attribution is the store's job (tracker.store.conversions).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker.api.bodies import (
    BadRequest,
    BatchErrors,
    error_response,
    off_the_loop,
    parse_json,
    read_body,
)
from tracker.api.outcomes import Invalid, check_field_id, parse_timestamp
from tracker.store import conversions as store

FIELDS = ("user_id", "name", "ts", "value")
MAX_NAME_LENGTH = 200
MAX_ROWS = 100_000
#: conversions from the future are a clock or unit mistake, not a purchase
FUTURE_SLACK = timedelta(days=1)


def parse_conversion(row: Any, now: datetime) -> store.Conversion:
    if not isinstance(row, dict):
        raise Invalid(f"each conversion must be a JSON object, got {type(row).__name__}")
    problems: list[str] = []
    missing = [f for f in ("user_id", "name", "ts") if row.get(f) is None]
    if missing:
        problems.append(f"missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)[:200]}; allowed: "
                        f"{', '.join(FIELDS)}")
    user_id: str | None = None
    name: Any = None
    ts: datetime | None = None
    value: Decimal | None = None
    try:
        if "user_id" not in missing:
            user_id = check_field_id(row["user_id"], "user_id")
    except Invalid as exc:
        problems.append(str(exc))
    if "name" not in missing:
        name = row["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH \
                or "\x00" in name:
            problems.append(f"name must be a non-empty string of at most {MAX_NAME_LENGTH} "
                            "characters, e.g. buy")
    try:
        if "ts" not in missing:
            ts = parse_timestamp(row["ts"], "ts")
            if ts > now + FUTURE_SLACK:
                problems.append(f"ts {row['ts']} is in the future; send the time the "
                                "conversion happened")
    except Invalid as exc:
        problems.append(str(exc))
    raw_value = row.get("value")
    if raw_value is not None:
        if isinstance(raw_value, bool) or not isinstance(raw_value, int | float) \
                or not math.isfinite(raw_value) or abs(raw_value) >= 1e15:
            problems.append(f"value must be a number (below 10**15) or null, got "
                            f"{raw_value!r:.60}")
        else:
            value = Decimal(str(raw_value))
    if problems:
        raise Invalid("; ".join(problems))
    assert user_id is not None and isinstance(name, str) and ts is not None, "checked above"
    return store.Conversion(user_id, name, ts, value)


def validate(rows: Any) -> list[store.Conversion]:
    if not isinstance(rows, list):
        raise BadRequest(422, "invalid", "the body must be a JSON array of "
                                         "{user_id, name, ts, value?} objects")
    if not rows:
        raise BadRequest(422, "invalid", "the array holds no conversions; send at least one")
    if len(rows) > MAX_ROWS:
        raise BadRequest(413, "too_many_rows", f"{len(rows)} conversions in one request; send "
                                               f"at most {MAX_ROWS} per request")
    now = datetime.now(UTC)
    parsed: list[store.Conversion] = []
    errors = BatchErrors()
    for index, row in enumerate(rows):
        try:
            parsed.append(parse_conversion(row, now))
        except Invalid as exc:
            errors.add(index, str(exc))
    if errors:
        raise errors.refusal("conversions", len(rows))
    return parsed


async def post_conversions(request: Request) -> JSONResponse:
    try:
        conversions = await off_the_loop(lambda raw: validate(parse_json(raw)),
                                         await read_body(request))
    except BadRequest as exc:
        return error_response(exc)
    async with request.app.state.pool.acquire() as conn:
        result = await store.ingest(conn, conversions)
    return JSONResponse({
        "received": result.received,
        "stored": result.stored,
        "duplicates": result.received - result.stored,
        "attributed": result.attributed,
        "unattributed": result.stored - result.attributed,
    })


routes = [Route("/conversions", post_conversions, methods=["POST"])]
