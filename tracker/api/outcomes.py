"""``POST /v1/outcomes``: delivery outcomes from the sender, a JSON array or NDJSON.

Every row is validated before anything is stored; one bad row refuses the whole
batch with a 422 listing each bad row by index (0-based, NDJSON lines too) and
what is wrong with it, so a sender can fix and resend the batch as it is.

``occurred_at`` (optional) is when the outcome's event happened (the delivery, the
bounce); without it the outcome happened when it arrives. A delivery's current
outcome is the one with the latest event time, so a sender that posts outcomes
some time after they happen, or in another order, should send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker.api.bodies import (
    BadRequest,
    BatchErrors,
    error_response,
    iter_array,
    off_the_loop,
    parse_json,
    read_body,
)
from tracker.api.campaigns import check_id
from tracker.errorcodes import is_hard_bounce_code, is_soft_bounce_code
from tracker.store import outcomes as store
from tracker.store.deliveries import STATUS_CODES
from tracker.tokens import CHANNELS_BY_NAME, channel_named

POSTABLE_STATUSES = ("delivered", "bounced", "soft_bounced", "failed")
REQUIRED = ("delivery_id", "campaign_id", "schedule_task_id", "user_id", "channel", "status",
            "sent_at")
OPTIONAL = ("error_code", "error_message", "is_test", "occurred_at")
MAX_DELIVERY_ID = 2**63 - 1
MAX_CODE_LENGTH = 200
MAX_MESSAGE_LENGTH = 4000
MAX_CLOCK_SKEW = timedelta(hours=1)  # how far ahead a sender's clock may run


class Invalid(ValueError):
    """One field of one row is wrong; the message says how to fix it."""


def parse_delivery_id(value: Any) -> int:
    """Our minted ids: a positive integer, or a string of decimal digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        raise Invalid("delivery_id must be the id the tracker minted: an integer or a string "
                      f"of decimal digits, got {value!r:.60}")
    if not 1 <= number <= MAX_DELIVERY_ID:
        raise Invalid(f"delivery_id must be from 1 to {MAX_DELIVERY_ID}, got {number}")
    return number


def parse_timestamp(value: Any, field: str) -> datetime:
    """ISO 8601 with a time zone (``2024-05-01T09:30:00+09:00`` or ``...Z``)."""
    if not isinstance(value, str) or len(value) > 40:
        raise Invalid(f"{field} must be an ISO 8601 string such as 2024-05-01T09:30:00+09:00, "
                      f"got {value!r:.60}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{field} {value!r} is not an ISO 8601 date and time; write it like "
                      "2024-05-01T09:30:00+09:00") from None
    if parsed.tzinfo is None:
        raise Invalid(f"{field} {value!r} has no time zone; add Z (UTC) or an offset like +09:00")
    try:
        in_utc = parsed.astimezone(UTC)  # 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
    except OverflowError:
        in_utc = None
    if in_utc is None or not 1970 <= in_utc.year <= 9998 or not 1970 <= parsed.year <= 9998:
        raise Invalid(f"{field} {value!r} is out of range (years 1970 to 9998)")
    return parsed


def _optional_text(row: dict[str, Any], field: str, limit: int) -> str | None:
    value = row.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise Invalid(f"{field} must be a string of at most {limit} characters (no NUL), "
                      "or null")
    return value or None


def check_field_id(value: Any, field: str) -> str:
    try:
        return check_id(value, field)
    except BadRequest as exc:
        raise Invalid(exc.detail) from None


def parse_outcome(row: Any) -> store.Outcome:
    """One row of the batch, or Invalid with every problem of the row."""
    if not isinstance(row, dict):
        raise Invalid(f"each outcome must be a JSON object, got {type(row).__name__}")
    problems: list[str] = []
    missing = [f for f in REQUIRED if row.get(f) is None]
    if missing:
        problems.append(f"missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)[:200]}; allowed: "
                        f"{', '.join(REQUIRED + OPTIONAL)}")
    values: dict[str, Any] = {}

    def take(field: str, parse: Any) -> None:
        if field in missing:
            return
        try:
            values[field] = parse()
        except Invalid as exc:
            problems.append(str(exc))

    take("delivery_id", lambda: parse_delivery_id(row["delivery_id"]))
    take("campaign_id", lambda: check_field_id(row["campaign_id"], "campaign_id"))
    take("schedule_task_id", lambda: check_field_id(row["schedule_task_id"], "schedule_task_id"))
    take("user_id", lambda: check_field_id(row["user_id"], "user_id"))
    take("channel", lambda: _channel(row["channel"]))
    take("status", lambda: _status(row["status"]))
    take("sent_at", lambda: parse_timestamp(row["sent_at"], "sent_at"))
    take("error_code", lambda: _optional_text(row, "error_code", MAX_CODE_LENGTH))
    take("error_message", lambda: _optional_text(row, "error_message", MAX_MESSAGE_LENGTH))
    take("is_test", lambda: _is_test(row.get("is_test", False)))
    take("occurred_at", lambda: _event_time(row.get("occurred_at")))
    status, code = values.get("status"), values.get("error_code")
    if status == "bounced" and is_soft_bounce_code(code):
        problems.append(f"status bounced (hard) contradicts the soft bounce code {code}; "
                        "use status soft_bounced")
    if status == "soft_bounced" and is_hard_bounce_code(code):
        problems.append(f"status soft_bounced contradicts the hard bounce code {code}; "
                        "use status bounced")
    if problems:
        raise Invalid("; ".join(problems))
    return store.Outcome(
        values["delivery_id"], values["campaign_id"], values["schedule_task_id"],
        values["user_id"], values["channel"], STATUS_CODES[values["status"]],
        values["error_code"], values["error_message"], values["sent_at"], values["is_test"],
        values["occurred_at"])


def _channel(value: Any) -> int:
    channel = channel_named(value)
    if channel is None:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS_BY_NAME)}, got {value!r:.60}")
    return int(channel)


def _status(value: Any) -> str:
    if value not in POSTABLE_STATUSES:
        hint = (" (suppressed is recorded by POST /v1/messages, not posted)"
                if value == "suppressed" else "")
        raise Invalid(f"status must be one of {', '.join(POSTABLE_STATUSES)}, "
                      f"got {value!r:.60}{hint}")
    return str(value)  # one of POSTABLE_STATUSES


def _event_time(value: Any) -> datetime | None:
    """``occurred_at``: absent means "when it arrives"; a time far in the future would
    outrank every real event of the delivery for good, so it is refused."""
    if value is None:
        return None
    when = parse_timestamp(value, "occurred_at")
    if when > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise Invalid(f"occurred_at {value!r} is in the future; send the time the delivery "
                      "or bounce happened, with its time zone, or leave it out")
    return when


def _is_test(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"is_test must be true or false, got {value!r:.60}")
    return value


def parse_batch(raw: bytes) -> Iterator[Any]:
    """A JSON array, or NDJSON (one JSON object per line; a lone object is one line),
    row by row as they are taken."""
    stripped = raw.lstrip()
    if not stripped:
        raise BadRequest(400, "empty_body", "the body is empty; send a JSON array of outcomes "
                                            "or NDJSON, one outcome per line")
    if stripped[:1] == b"[":
        return iter_array(raw, "outcomes")
    return _ndjson(raw)


def _ndjson(raw: bytes) -> Iterator[Any]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield parse_json(line)
        except BadRequest as exc:
            raise BadRequest(exc.status, exc.error, f"NDJSON line {number}: {exc.detail}") from None


def validate(rows: Iterable[Any]) -> list[store.Outcome]:
    """Every row parsed, or BadRequest 422 listing each bad row."""
    parsed: list[store.Outcome] = []
    errors = BatchErrors()
    first_seen: dict[int, tuple[int, tuple[str, str, str, int]]] = {}
    index = -1
    for index, row in enumerate(rows):
        try:
            outcome = parse_outcome(row)
        except Invalid as exc:
            errors.add(index, str(exc))
            continue
        identity = (outcome.campaign_id, outcome.schedule_task_id, outcome.user_id,
                    outcome.channel)
        seen = first_seen.setdefault(outcome.delivery_id, (index, identity))
        if seen[1] != identity:
            errors.add(index, (
                f"delivery_id {outcome.delivery_id} appears at index {seen[0]} with another "
                "campaign_id, schedule_task_id, user_id or channel; one delivery has one of each"))
        parsed.append(outcome)
    if index < 0:
        raise BadRequest(422, "invalid", "the batch holds no outcomes; send at least one")
    if errors:
        raise errors.refusal("outcomes", index + 1)
    return parsed


async def post_outcomes(request: Request) -> JSONResponse:
    try:
        outcomes = await off_the_loop(lambda raw: validate(parse_batch(raw)),
                                      await read_body(request))
        async with request.app.state.pool.acquire() as conn:
            result = await store.ingest(conn, outcomes)
    except BadRequest as exc:
        return error_response(exc)
    except store.OutcomeConflict as exc:
        return error_response(BadRequest(422, "invalid_outcomes", {
            "message": f"{len(exc.problems)} outcomes contradict deliveries already stored; "
                       "nothing was stored.",
            "rows": [{"index": i, "error": e} for i, e in exc.problems],
            "more": 0,
        }))
    return JSONResponse({
        "received": result.received,
        "changed": result.changed,
        "unchanged": result.received - result.changed,
        "created_deliveries": result.created,
        "suppressed": result.suppressed,
    })


routes = [Route("/outcomes", post_outcomes, methods=["POST"])]
