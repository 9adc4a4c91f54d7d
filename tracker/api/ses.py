"""Amazon SES notifications (bounce, complaint, delivery): ``POST /v1/ses`` and ``/sns/ses``.

The body is a raw SES notification (``notificationType`` for identity
notifications, ``eventType`` for configuration-set event publishing) or one
wrapped in an SNS envelope (``Type: Notification``, the SES JSON in ``Message``).

Which delivery: the header ``X-Tracker-Delivery`` that the rewriting step sets on
the message (SES includes the original headers when "Include original headers" is
on), or else the SES message tag ``tracker_delivery_id`` (sent as
``X-SES-MESSAGE-TAGS`` or through the SendEmail API's tags, present in event
publishing). A notification for a mail without either, or for a delivery the
tracker does not know, is kept in ``ses_notifications`` as ignored and answered
200, so SNS does not retry it for days.

Authentication: ``/v1/ses`` takes the bearer key like all of ``/v1``; SNS cannot
send headers, so ``/sns/ses?key=<TRACKER_API_KEY>`` is the same endpoint with the
key in the URL (use HTTPS in front of it). ``SubscriptionConfirmation`` messages
are recorded in ``ses_subscriptions`` and their ``SubscribeURL`` is logged: this
service never reaches the internet, so an operator opens that URL to confirm.

What each notification becomes (the contract; README "Ingest" says the same):

- ``Delivery``: outcome ``delivered`` at ``delivery.timestamp``.
- ``Bounce``: ``bounced`` (hard, suppresses) for ``Permanent``, ``soft_bounced`` for
  ``Transient`` and ``Undetermined`` (SES could not tell why: never a reason to
  suppress), at ``bounce.timestamp``, coded ``Type:SubType`` by ``BOUNCE_CODES``; a
  subtype not listed there keeps its name verbatim (``Permanent:Whatever``) and is
  reported under "other" (F9, ``tracker.errorcodes``).
- ``Complaint``: no outcome (the mail was delivered); the user is suppressed on
  email as ``complaint`` since ``complaint.timestamp``; ``not-spam`` feedback does
  nothing.
- ``Reject`` (SES refused to send, e.g. a virus): ``failed``, code ``FAILED``;
  ``Rendering Failure`` (a template could not be rendered): ``failed``, code
  ``RENDERING_FAILURE``; both at ``mail.timestamp`` (they happen at sending).
- ``DeliveryDelay``, and ``Send``, ``Open``, ``Click``, ``Subscription`` events:
  recorded in ``ses_notifications`` and changing nothing (a delay is not an outcome:
  SES keeps trying, and the Delivery or Bounce that follows decides).

Each outcome carries its event's own time, and a delivery's current outcome is the
one with the latest (``tracker.store.outcomes``): SNS does not keep order, so a
Delivery arriving after an earlier-stamped Bounce changes nothing but the history.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracker import events
from tracker.api.auth import key_matches
from tracker.api.bodies import BadRequest, error_response, parse_json, read_body
from tracker.api.outcomes import Invalid, parse_delivery_id, parse_timestamp
from tracker.store import outcomes as outcome_store
from tracker.store import suppressions as suppression_store
from tracker.store.deliveries import STATUS_CODES
from tracker.tokens import Channel

log = logging.getLogger("tracker.ses")

MAX_SES_BODY = 1024 * 1024  # SNS messages are at most 256 KB
DELIVERY_HEADER = events.DELIVERY_HEADER.lower()
DELIVERY_TAG = "tracker_delivery_id"
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}

#: SES bounceType:bounceSubType -> (our status, error code). NoEmail and
#: OnAccountSuppressionList are folded into the codes of docs/figures.md#f9.
BOUNCE_CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("Permanent", "General"): ("bounced", "Permanent:General"),
    ("Permanent", "NoEmail"): ("bounced", "Permanent:General"),
    ("Permanent", "Suppressed"): ("bounced", "Permanent:Suppressed"),
    ("Permanent", "OnAccountSuppressionList"): ("bounced", "Permanent:Suppressed"),
    ("Transient", "General"): ("soft_bounced", "Transient:General"),
    ("Transient", "MailboxFull"): ("soft_bounced", "Transient:MailboxFull"),
    ("Transient", "MessageTooLarge"): ("soft_bounced", "Transient:MessageTooLarge"),
    ("Transient", "ContentRejected"): ("soft_bounced", "Transient:ContentRejected"),
    ("Transient", "AttachmentRejected"): ("soft_bounced", "Transient:AttachmentRejected"),
    ("Undetermined", "Undetermined"): ("soft_bounced", "Undetermined:Undetermined"),
}


def bounce_outcome(bounce_type: str, sub_type: str) -> tuple[str, str]:
    """(status, code) for an SES bounce; an unlisted subtype keeps its name verbatim."""
    found = BOUNCE_CODES.get((bounce_type, sub_type))
    if found:
        return found
    status = "bounced" if bounce_type == "Permanent" else "soft_bounced"
    return status, f"{bounce_type}:{sub_type}"[:200]


def delivery_reference(mail: dict[str, Any]) -> str | None:
    """The delivery id the rewriting step put on the mail, from headers or tags."""
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if (isinstance(header, dict) and isinstance(header.get("name"), str)
                    and header["name"].lower() == DELIVERY_HEADER):
                value = header.get("value")
                return value.strip() if isinstance(value, str) else None
    tags = mail.get("tags")
    if isinstance(tags, dict):
        values = tags.get(DELIVERY_TAG)
        if isinstance(values, list) and values and isinstance(values[0], str):
            return values[0].strip()
    return None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(422, "invalid", f"{what} must be a JSON object as SES sends it")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(422, "invalid", f"{what} must be a non-empty string as SES sends it")
    return value


def _event_time(note: dict[str, Any], key: str) -> datetime | None:
    """When the notification's own event happened (``bounce.timestamp``,
    ``delivery.timestamp``); None (the arrival time) if SES left it out."""
    detail = note.get(key)
    if not isinstance(detail, dict) or detail.get("timestamp") is None:
        return None
    return parse_timestamp(detail["timestamp"], f"{key}.timestamp")


async def _record(conn: asyncpg.Connection, kind: str, mail: dict[str, Any],
                  delivery_id: int | None, result: str, body: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO ses_notifications (type, message_id, delivery_id, result, body)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        kind, str(mail.get("messageId", ""))[:200] or None, delivery_id, result,
        json.dumps(body))


async def handle_notification(request: Request, note: dict[str, Any]) -> dict[str, Any]:
    """Apply one SES notification; returns what became of it."""
    kind = note.get("notificationType") or note.get("eventType")
    if not isinstance(kind, str):
        raise BadRequest(422, "invalid", "not an SES notification: expected notificationType "
                         "or eventType (Bounce, Complaint, Delivery), or an SNS envelope")
    mail = _object(note.get("mail"), "mail")
    outcome: tuple[str, str | None, str | None] | None = None
    complaint_at = None
    try:
        sent_at = parse_timestamp(mail.get("timestamp"), "mail.timestamp")
        occurred_at: datetime | None = sent_at  # Reject, Rendering Failure: at sending
        if kind == "Bounce":
            bounce = _object(note.get("bounce"), "bounce")
            occurred_at = _event_time(note, "bounce")
            status, code = bounce_outcome(_text(bounce.get("bounceType"), "bounce.bounceType"),
                                          _text(bounce.get("bounceSubType"),
                                                "bounce.bounceSubType"))
            recipients = bounce.get("bouncedRecipients")
            message = "Bounced"
            if isinstance(recipients, list) and recipients and isinstance(recipients[0], dict):
                diagnostic = recipients[0].get("diagnosticCode")
                if isinstance(diagnostic, str) and diagnostic:
                    message = diagnostic[:4000]
            outcome = (status, code, message)
        elif kind == "Complaint":
            complaint = _object(note.get("complaint"), "complaint")
            complaint_at = parse_timestamp(complaint.get("timestamp"), "complaint.timestamp")
            if complaint.get("complaintFeedbackType") == "not-spam":
                complaint_at = None
        elif kind == "Delivery":
            occurred_at = _event_time(note, "delivery")
            outcome = ("delivered", None, None)
        elif kind in ("Reject", "Rendering Failure"):
            detail = note.get("reject") or note.get("failure") or {}
            reason = detail.get("reason") or detail.get("errorMessage") if isinstance(
                detail, dict) else None
            code = "FAILED" if kind == "Reject" else "RENDERING_FAILURE"
            outcome = ("failed", code, str(reason or kind)[:4000])
    except Invalid as exc:
        raise BadRequest(422, "invalid", str(exc)) from None
    reference = delivery_reference(mail)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        if outcome is None and complaint_at is None:
            result = (f"ignored: {kind} notifications change nothing here" + (
                "; SES keeps trying, and the Delivery or Bounce that follows decides"
                if kind == "DeliveryDelay" else ""))
            await _record(conn, kind, mail, None, result, note)
            return {"type": kind, "result": result}
        if reference is None:
            result = ("ignored: the mail has no X-Tracker-Delivery header (enable \"include "
                      f"original headers\") nor a {DELIVERY_TAG} message tag")
            await _record(conn, kind, mail, None, result, note)
            return {"type": kind, "result": result}
        try:
            delivery_id = parse_delivery_id(reference)
        except Invalid as exc:
            result = f"ignored: {exc}"
            await _record(conn, kind, mail, None, result, note)
            return {"type": kind, "result": result}
        known = await outcome_store.known_delivery(conn, delivery_id)
        if known is None:
            result = f"ignored: delivery {delivery_id} is unknown to the tracker"
            await _record(conn, kind, mail, delivery_id, result, note)
            return {"type": kind, "result": result, "delivery_id": str(delivery_id)}
        applied: dict[str, Any] = {"type": kind, "delivery_id": str(delivery_id)}
        if outcome is not None:
            status, error_code, error_message = outcome
            ingested = await outcome_store.ingest_resolved(conn, [outcome_store.ResolvedOutcome(
                delivery_id, known.campaign, known.schedule_task, known.user_id, known.channel,
                STATUS_CODES[status], error_code, error_message, sent_at, known.is_test,
                occurred_at)])
            applied.update(status=status, error_code=error_code, changed=bool(ingested.changed))
            # the delivery's outcome now: another one when this event happened before it
            now = await outcome_store.current(conn, delivery_id)
            if now is not None:
                applied["current"] = {"status": STATUS_NAMES[now["status"]],
                                      "error_code": now["error_code"]}
        if complaint_at is not None:
            await suppression_store.suppress(
                conn, [(known.user_id, int(Channel.EMAIL), "complaint", complaint_at)])
            applied["suppressed"] = "complaint"
        applied["result"] = "applied"
        await _record(conn, kind, mail, delivery_id, "applied", note)
        return applied


async def handle(request: Request) -> JSONResponse:
    try:
        body = _object(parse_json(await read_body(request, MAX_SES_BODY)), "the body")
        envelope = body.get("Type")
        if envelope in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            return JSONResponse(await _subscription(request, body))
        if envelope == "Notification":
            message = body.get("Message")
            if not isinstance(message, str):
                raise BadRequest(422, "invalid", "an SNS Notification needs Message, a string "
                                 "holding the SES notification JSON")
            try:
                # the same checks as any body: no NUL or lone surrogate, bounded nesting
                note = parse_json(message.encode("utf-8"))
            except BadRequest as exc:
                if exc.error != "bad_json":
                    raise BadRequest(exc.status, exc.error, f"Message: {exc.detail}") from None
                note = None
            if not isinstance(note, dict):
                # e.g. "Successfully validated SNS topic for Amazon SES event publishing."
                async with request.app.state.pool.acquire() as conn:
                    await _record(conn, "text", {}, None, "ignored: not JSON", body)
                return JSONResponse({"type": "text", "result": "ignored: not JSON"})
            return JSONResponse(await handle_notification(request, note))
        if envelope is not None:
            raise BadRequest(422, "invalid", f"unknown SNS message Type {envelope!r:.60}; "
                             "expected Notification or SubscriptionConfirmation")
        return JSONResponse(await handle_notification(request, body))
    except BadRequest as exc:
        return error_response(exc)


async def _subscription(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    url = body.get("SubscribeURL")
    if body["Type"] == "SubscriptionConfirmation" and not isinstance(url, str):
        raise BadRequest(422, "invalid", "a SubscriptionConfirmation needs SubscribeURL")
    async with request.app.state.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO ses_subscriptions (type, topic_arn, subscribe_url, message_id, body)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            body["Type"], str(body.get("TopicArn", ""))[:500] or None,
            url if isinstance(url, str) else None,
            str(body.get("MessageId", ""))[:200] or None, json.dumps(body))
    log.warning("SNS %s for topic %s: this service does not fetch URLs; to confirm, open %s",
                body["Type"], body.get("TopicArn"), url)
    return {"type": body["Type"], "result": "recorded: open SubscribeURL to confirm",
            "subscribe_url": url}


async def handle_with_url_key(request: Request) -> JSONResponse:
    """``/sns/ses?key=...``: SNS cannot send an Authorization header."""
    key = request.query_params.get("key")
    if key is None or not key_matches(key, request.app.state.settings.api_key):
        detail = ("missing key: subscribe SNS to /sns/ses?key=<TRACKER_API_KEY>" if key is None
                  else "wrong key in ?key=: use TRACKER_API_KEY")
        return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401)
    return await handle(request)


routes = [Route("/ses", handle, methods=["POST"])]
public_routes = [Route("/sns/ses", handle_with_url_key, methods=["POST"])]
