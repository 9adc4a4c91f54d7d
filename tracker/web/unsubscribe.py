"""The unsubscribe page (F17): ``GET /u/{token}`` shows, only ``POST /u/{token}`` acts.

Mail scanners fetch every GET in a message, so a GET never unsubscribes; it shows
a page (Japanese or English by ``Accept-Language``) with a confirm button.

``POST /u/{token}``:
- body ``List-Unsubscribe=One-Click`` (RFC 8058, sent by mail clients): unsubscribes
  and answers 200 ``text/plain`` at once;
- the page's form, field ``action=unsubscribe`` (or an empty body): unsubscribes and
  answers the page with a resubscribe button;
- ``action=resubscribe``: resubscribes (``message_subscribe``) and answers the page
  with an unsubscribe button.

Both are events in the journal (so they survive a database outage) and land with
the shipper, whose transaction updates the suppression list
(tracker_fold_events, sql/067). A bad token gets a 404 page and records nothing; a
test send's token shows the pages and records nothing. Every page is static text
plus escaped values, with ``Content-Security-Policy: default-src 'self'``.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracker.api.bodies import BadRequest, read_body
from tracker.events import Kind
from tracker.store.suppressions import reason_for_delivery
from tracker.tokens import InvalidToken, Purpose, TokenCodec, TokenData

log = logging.getLogger("tracker.unsubscribe")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}
MAX_FORM_BYTES = 4096

#: page texts: state -> language -> (title, message, button label or None, action)
TEXTS: dict[str, dict[str, tuple[str, str, str | None, str | None]]] = {
    "confirm": {
        "en": ("Unsubscribe", "Do you want to stop receiving these messages?",
               "Unsubscribe", "unsubscribe"),
        "ja": ("配信停止", "今後このメッセージの配信を停止しますか?", "配信を停止する",
               "unsubscribe"),
    },
    "unsubscribed": {
        "en": ("Unsubscribed", "You are unsubscribed and will no longer receive these messages. "
               "Changed your mind?", "Subscribe again", "resubscribe"),
        "ja": ("配信停止しました", "配信を停止しました。今後このメッセージは届きません。"
               "配信を再開しますか?", "配信を再開する", "resubscribe"),
    },
    "resubscribed": {
        "en": ("Subscribed again", "You are subscribed again.", "Unsubscribe", "unsubscribe"),
        "ja": ("配信を再開しました", "配信を再開しました。", "配信を停止する", "unsubscribe"),
    },
    "invalid": {
        "en": ("Link not valid", "This link is not valid. It may have been cut short or changed "
               "when it was copied; open it again from the original message.", None, None),
        "ja": ("無効なリンク", "このリンクは無効です。コピーの際に途切れたり"
               "変更されたりした可能性があります。元のメッセージからもう一度開いてください。",
               None, None),
    },
    "bad_request": {
        "en": ("Not understood", "This request was not understood. Use the button on the "
               "unsubscribe page.", None, None),
        "ja": ("処理できません", "このリクエストは処理できません。配信停止ページのボタンを"
               "お使いください。", None, None),
    },
    "unavailable": {
        "en": ("Please try again", "Your choice could not be saved just now. Please try again "
               "in a few minutes.", None, None),
        "ja": ("もう一度お試しください", "ただいま処理できませんでした。数分後にもう一度"
               "お試しください。", None, None),
    },
}

STYLE = (b"body{font-family:system-ui,sans-serif;margin:3em auto;max-width:32em;padding:0 1em;"
         b"line-height:1.6;color:#222}button{font-size:1em;padding:.6em 1.4em;cursor:pointer}")


def language(accept_language: str) -> str:
    """``ja`` when the client prefers Japanese over English, else ``en`` (RFC 9110 q-values)."""
    best, best_q = "en", 0.0
    for part in accept_language.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in ("en", "ja") and q > best_q:
            best, best_q = primary, q
    return best


def render(state: str, lang: str) -> bytes:
    title, message, button, action = TEXTS[state][lang]
    e = html.escape
    form = ""
    if button is not None and action is not None:  # a page has both or neither
        form = (f'<form method="post"><input type="hidden" name="action" value="{e(action)}">'
                f'<button type="submit">{e(button)}</button></form>')
    return (f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{e(title)}</title><link rel="stylesheet" href="/u/page.css"></head>'
            f"<body><h1>{e(title)}</h1><p>{e(message)}</p>{form}</body></html>").encode()


def page(state: str, lang: str, status: int = 200) -> Response:
    return Response(render(state, lang), status_code=status, headers=SECURITY_HEADERS,
                    media_type="text/html; charset=utf-8")


def _verify(request: Request) -> TokenData | None:
    codec: TokenCodec = request.app.state.codec
    try:
        return codec.verify(Purpose.UNSUBSCRIBE, request.path_params["token"])
    except InvalidToken:
        return None


async def _unsubscribed_now(request: Request, data: TokenData) -> bool:
    """Best effort: is this delivery's user unsubscribed on its channel? A slow or
    unreachable database only means the page offers the confirm button."""
    try:
        async with request.app.state.pool.acquire(timeout=1) as conn:
            reason = await reason_for_delivery(conn, data.delivery_id, timeout=1)
    except Exception:  # noqa: BLE001 - any failure: fall back to the confirm page
        return False
    return reason == "unsubscribe"


async def show(request: Request) -> Response:
    lang = language(request.headers.get("accept-language", ""))
    data = _verify(request)
    if data is None:
        return page("invalid", lang, 404)
    if not data.is_test and await _unsubscribed_now(request, data):
        return page("unsubscribed", lang)
    return page("confirm", lang)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=0, max_fields=10)
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(400, "bad_form", "the body is not a URL-encoded form") from exc
    return {k: v[0] for k, v in fields.items()}


async def act(request: Request) -> Response:
    lang = language(request.headers.get("accept-language", ""))
    data = _verify(request)
    if data is None:
        return page("invalid", lang, 404)
    try:
        fields = await _form(request)
    except BadRequest as exc:  # 400 for a malformed form, 413 for an oversized one
        return page("bad_request", lang, exc.status)
    except Exception:  # noqa: BLE001 - malformed multipart bodies raise parser errors
        return page("bad_request", lang, 400)
    one_click = fields.get("List-Unsubscribe") == "One-Click"
    action = fields.get("action", "unsubscribe")
    if action not in ("unsubscribe", "resubscribe") or (one_click and action != "unsubscribe"):
        return page("bad_request", lang, 400)
    kind = Kind.SUBSCRIBE if action == "resubscribe" else Kind.UNSUBSCRIBE
    if not data.is_test:
        recorded = await request.app.state.recorder.record(
            request.scope["headers"], "POST", data, kind)
        if not recorded:
            log.error("could not journal an %s for delivery %s", action, data.delivery_id)
            return page("unavailable", lang, 503)
    if one_click:
        return PlainTextResponse("unsubscribed\n", headers=SECURITY_HEADERS)
    return page("resubscribed" if kind == Kind.SUBSCRIBE else "unsubscribed", lang)


async def stylesheet(request: Request) -> Response:
    return Response(STYLE, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=86400"})


routes = [
    Route("/u/page.css", stylesheet, methods=["GET"]),
    Route("/u/{token:path}", show, methods=["GET"]),
    Route("/u/{token:path}", act, methods=["POST"]),
]
