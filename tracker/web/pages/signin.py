"""Signing in and out of the report pages (the session itself: tracker.web.session)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tracker.api.bodies import BadRequest, read_body
from tracker.web import i18n, session
from tracker.web.pages.common import SECURITY_HEADERS, render_page, sign_in_page

MAX_FORM_BYTES = 4096


def _safe_next(value: str | None) -> str:
    """Only our own report pages: never an open redirect to another host."""
    if value and value.startswith("/reports") and "\\" not in value and "//" not in value:
        return value
    return "/reports"


async def login_form(request: Request) -> Response:
    lang, _ = i18n.choose(request)
    if await session.valid(request):
        return RedirectResponse("/reports", status_code=303, headers=SECURITY_HEADERS)
    return sign_in_page(request, lang)


async def login(request: Request) -> Response:
    lang, _ = i18n.choose(request)
    try:
        raw = await read_body(request, MAX_FORM_BYTES)
    except BadRequest as exc:
        return render_page(request, lang, "login.html", exc.status, next="/reports",
                           message=str(exc.detail), signed_in=False)
    form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    given = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    if not given:
        return render_page(request, lang, "login.html", 401, next=target,
                           message=i18n.t(lang, "missing_key"), signed_in=False)
    if not session.key_is_right(request.app.state.settings, given):
        return render_page(request, lang, "login.html", 401, next=target,
                           message=i18n.t(lang, "wrong_key"), signed_in=False)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    await session.sign_in(request, response)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/reports/login", status_code=303, headers=SECURITY_HEADERS)
    await session.sign_out(request, response)
    return response
