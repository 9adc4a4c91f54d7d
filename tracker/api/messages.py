"""``POST /v1/messages``: rewrite a message (or one per recipient) and record it.

Body: ``{campaign_id, schedule_task_id, channel, is_test?, html?, text?, headers?}``
plus either ``user_id`` (answers one object) or ``recipients: [{user_id, html?,
text?, is_test?, headers?}, ...]`` (answers a list in the same order; a
recipient's own html/text/is_test/headers replace the shared ones). A message is
``{user_id, delivery_id, html, text, headers, links, warnings}``; a suppressed
recipient is ``{user_id, delivery_id, suppressed: true, reason}``. Everything is
validated before anything is minted or stored.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tracker.api.bodies import BadRequest, error_response, read_json, require_object
from tracker.api.campaigns import check_id
from tracker.rewrite.engine import Rewriter
from tracker.rewrite.errors import RewriteError
from tracker.rewrite.send import YIELD_EVERY, Batch, Prepared, Recipient, Result, Sender
from tracker.tokens import CHANNELS_BY_NAME, channel_named

#: Whole request: room for a large shared body plus 10,000 recipients.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
#: One html or text body. Gmail clips messages past 102 KB and providers refuse
#: mail over 10 MB; 5 M characters leaves room for any real message.
MAX_BODY_CHARS = 5_000_000
MAX_RECIPIENTS = 10_000
MAX_HEADERS = 50
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")


def _sender(request: Request) -> Sender:
    """One Sender per app (and worker process): caches ids and compiled bodies."""
    state = request.app.state
    sender = getattr(state, "message_sender", None)
    if sender is None:
        rewriter = Rewriter(state.codec, state.settings.public_url)
        sender = state.message_sender = Sender(rewriter)
    return sender


def _body(value: Any, field: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(422, "invalid", f"{where}{field} must be a string (or null)")
    if len(value) > MAX_BODY_CHARS:
        raise BadRequest(413, "body_too_large",
                         f"{where}{field} is {len(value)} characters; at most {MAX_BODY_CHARS} "
                         "are accepted per message body")
    return value


def _headers(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(422, "invalid", f"{where}headers must be an object of name: value")
    if len(value) > MAX_HEADERS:
        raise BadRequest(422, "invalid", f"{where}headers: at most {MAX_HEADERS} headers")
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise BadRequest(422, "invalid",
                             f"{where}headers: {name[:80]!r} is not a valid header name "
                             "(printable ASCII without ':' or spaces)")
        if not isinstance(text, str) or "\r" in text or "\n" in text or len(text) > 4000:
            raise BadRequest(422, "invalid",
                             f"{where}headers: the value of {name!r} must be a string of at "
                             "most 4000 characters without CR or LF")
    return value


def _is_test(value: Any, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(422, "invalid", f"{where}is_test must be true or false")
    return value


def _recipient(item: Any, index: int | None, shared: dict[str, Any]) -> Recipient:
    where = "" if index is None else f"recipients[{index}]."
    obj = require_object(item, f"recipients[{index}]") if index is not None else item
    user_id = check_id(obj.get("user_id"), f"{where}user_id")
    html = _body(obj["html"], "html", where) if "html" in obj else shared["html"]
    text = _body(obj["text"], "text", where) if "text" in obj else shared["text"]
    if html is None and text is None:
        raise BadRequest(422, "invalid",
                         f"{where or 'the message '}has neither html nor text; give at least "
                         "one body to rewrite")
    headers = _headers(obj["headers"], where) if "headers" in obj else shared["headers"]
    return Recipient(user_id, html=html, text=text,
                     is_test=_is_test(obj.get("is_test"), where, shared["is_test"]),
                     headers=headers)


def parse(body: Any) -> tuple[dict[str, Any], list[Recipient], bool]:
    """Validate the whole request: (ids, recipients, is_bulk); BadRequest otherwise."""
    body = require_object(body)
    ids = {
        "campaign_id": check_id(body.get("campaign_id"), "campaign_id"),
        "schedule_task_id": check_id(body.get("schedule_task_id"), "schedule_task_id"),
    }
    channel = body.get("channel", "email")
    if channel_named(channel) is None:
        raise BadRequest(422, "invalid",
                         f"channel must be one of {', '.join(CHANNELS_BY_NAME)}, not {channel!r}")
    ids["channel"] = channel
    shared = {
        "html": _body(body.get("html"), "html", ""),
        "text": _body(body.get("text"), "text", ""),
        "headers": _headers(body.get("headers"), ""),
        "is_test": _is_test(body.get("is_test"), "", False),
    }
    recipients = body.get("recipients")
    if recipients is None:
        if "user_id" not in body:
            raise BadRequest(422, "invalid", "give user_id for one message, or recipients: "
                             "[{user_id}, ...] for many")
        return ids, [_recipient(body, None, shared)], False
    if "user_id" in body:
        raise BadRequest(422, "invalid", "give either user_id or recipients, not both")
    if not isinstance(recipients, list) or not recipients:
        raise BadRequest(422, "invalid", "recipients must be a non-empty list of {user_id}")
    if len(recipients) > MAX_RECIPIENTS:
        raise BadRequest(422, "too_many_recipients",
                         f"{len(recipients)} recipients; at most {MAX_RECIPIENTS} per request, "
                         "split them into several requests")
    return ids, [_recipient(item, i, shared) for i, item in enumerate(recipients)], True


def _dumps(value: Any) -> bytes:
    """JSON in UTF-8 (Japanese headers and warnings at a third of the size of
    escapes); escaped only if a lone surrogate, which UTF-8 cannot carry, got in."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def as_json(result: Result) -> bytes:
    """One message as JSON bytes. The bodies arrive already encoded as JSON string
    literals from the engine (segments escaped once per compiled body), so a bulk
    answer of hundreds of 100 KB messages costs a join, not a json.dumps of each."""
    if isinstance(result, Prepared):
        m = result.message
        return b"".join((
            b'{"user_id":', _dumps(result.user_id), b',"delivery_id":"',
            str(m.delivery_id).encode(), b'","html":', m.html_json or b"null", b',"text":',
            m.text_json or b"null", b',"headers":', _dumps(m.headers), b',"links":',
            str(m.links).encode(), b',"warnings":', _dumps(m.warnings), b"}"))
    return _dumps({"user_id": result.user_id, "delivery_id": str(result.delivery_id),
                   "suppressed": True, "reason": result.reason})


async def post_messages(request: Request) -> Response | StreamedMessages:
    try:
        ids, recipients, bulk = parse(await read_json(request, MAX_REQUEST_BYTES))
        batch = await _sender(request).prepare(request.app.state.pool, recipients=recipients,
                                               **ids)
    except BadRequest as exc:
        return error_response(exc)
    except RewriteError as exc:
        return error_response(BadRequest(422, "cannot_rewrite", str(exc)))
    if not bulk:
        (result,) = batch.results(as_json=True)
        return Response(as_json(result), media_type="application/json")
    return StreamedMessages(batch)


class StreamedMessages:
    """A bulk answer, each message rewritten just before it is sent.

    The deliveries are already recorded; the messages are made and written one
    at a time (chunked transfer encoding), so memory stays at one message
    whatever the batch, and a 50 MB answer is never joined into one buffer."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        separator = b"["
        for index, result in enumerate(self.batch.results(as_json=True)):
            await send({"type": "http.response.body", "body": separator, "more_body": True})
            await send({"type": "http.response.body", "body": as_json(result),
                        "more_body": True})
            separator = b","
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # let pixel and redirect hits in between
        await send({"type": "http.response.body", "body": b"]", "more_body": False})


routes = [Route("/messages", post_messages, methods=["POST"])]
