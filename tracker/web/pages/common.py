"""What every report page shares: security headers, the templates and their filters,
rendering a page, the session guard, the tables' columns, headline figures and charts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tracker.reports.options import ReportError
from tracker.web import charts, i18n, session

#: tracker/web, where the templates and static files are
HERE = Path(__file__).parent.parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: table columns, shared by the HTML tables and their CSV downloads
DAY_COLUMNS = ["date", "targets", "deliveries", "delivered_users", "opens", "open_users",
               "clicks", "click_users", "open_rate", "click_rate", "bounces", "soft_bounces",
               "failures", "unsubscribes", "resubscribes", "conversions"]
PROJECT_DAY_COLUMNS = ["date", "targets", "deliveries", "bounces", "soft_bounces", "failures",
                       "suppressed", "opens", "clicks", "unsubscribes", "resubscribes"]
TASK_COLUMNS = ["schedule_task_id", "targets", "deliveries", "delivered_users", "open_users",
                "click_users", "open_rate", "click_rate", "click_to_open_rate", "bounces",
                "soft_bounces", "failures", "suppressed", "unsubscribes", "conversions"]
LINK_COLUMNS = ["url", "clicks", "click_users"]
ERROR_COLUMNS = ["category", "code", "kind", "count", "message_rank", "message",
                 "message_count"]
OPEN_FIGURES = {"opens", "open_users", "open_rate", "click_to_open_rate", "machine_opens"}
CV_FIGURES = {"conversions", "conversion_users", "conversion_rate"}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def figure_text(lang: str, key: str, value: Any, *, opens_ok: bool = True,
                cv_ok: bool = True) -> tuple[str, str]:
    """(text, css class): "not measurable" / "not measured" where a figure has none."""
    if key in OPEN_FIGURES and not opens_ok:
        return i18n.t(lang, "not_measurable"), "na"
    if key in CV_FIGURES and not cv_ok:
        return i18n.t(lang, "not_measured"), "na"
    return number(value), ""


def campaign_path(campaign_id: str) -> str:
    return "/reports/campaigns/" + quote(campaign_id, safe="")


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


templates.filters["number"] = number
templates.filters["when"] = when
templates.globals["campaign_path"] = campaign_path


def render_page(request: Request, lang: str, name: str, status: int = 200,
                **context: Any) -> Response:
    """The template ``name`` rendered in ``lang``, with the security headers."""
    context.setdefault("signed_in", True)
    body = templates.get_template(name).render(
        lang=lang, t=lambda key, **v: i18n.t(lang, key, **v), request=request,
        d=lambda key: i18n.t(lang, f"def_{key}") if f"def_{key}" in i18n.TEXTS else "",
        switch_url=url_with(request, lang="ja" if lang == "en" else "en"), **context)
    headers = dict(SECURITY_HEADERS)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tracker reports"'
    response = HTMLResponse(body, status_code=status, headers=headers)
    if request.query_params.get("lang") == lang:  # the switch was used: remember it
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, path="/",
                            httponly=True, samesite="strict")
    return response


def url_with(request: Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = {k: v for k, v in request.query_params.items()}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    query = urlencode(params)
    return request.url.path + ("?" + query if query else "")


def sign_in_page(request: Request, lang: str, message: str | None = None,
                 status: int = 401) -> Response:
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    if request.url.path in ("/reports/login", "/reports/logout"):
        target = "/reports"
    return render_page(request, lang, "login.html", status, next=target, message=message,
                       signed_in=False)


def error_page(request: Request, lang: str, exc: ReportError) -> Response:
    heading = "not_found" if exc.status == 404 else "bad_request"
    return render_page(request, lang, "error.html", exc.status, detail=exc.detail,
                       heading=heading)


def guarded(handler: Callable[[Request, str], Awaitable[Response]],
            ) -> Callable[[Request], Awaitable[Response]]:
    """A page or CSV that needs a session: 401 with the sign-in form without one."""
    async def endpoint(request: Request) -> Response:
        lang, _ = i18n.choose(request)
        if not await session.valid(request):
            expired = session.COOKIE in request.cookies
            return sign_in_page(request, lang, i18n.t(lang, "expired") if expired else None)
        try:
            return await handler(request, lang)
        except ReportError as exc:
            return error_page(request, lang, exc)
    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def headline(lang: str, report: dict[str, Any], keys: list[str], *, opens_ok: bool,
             cv_ok: bool = True) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        text, css = figure_text(lang, key, report.get(key), opens_ok=opens_ok, cv_ok=cv_ok)
        why = ""
        if css and key in OPEN_FIGURES:
            why = i18n.t(lang, "not_measurable_why")
        elif css:
            why = i18n.t(lang, "not_measured_why")
        definition = i18n.TEXTS.get(f"def_{key}")
        out.append({"key": key, "label": i18n.t(lang, key), "text": text, "css": css,
                    "value": report.get(key), "why": why,
                    "definition": i18n.t(lang, f"def_{key}") if definition else ""})
    return out


def error_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The error-code table flattened as report_csv does: one line per top message."""
    rows = []
    for e in report.get("error_codes", []):
        top = e["top_messages"] or [{"message": None, "count": None}]
        for rank, m in enumerate(top, 1):
            rows.append([e["category"], e["code"], e["kind"], e["count"], rank,
                         m["message"], m["count"]])
    return rows


def day_chart(lang: str, days: list[dict[str, Any]], opens_ok: bool) -> Any:
    dates = [d["date"] for d in days]
    return charts.daily(dates, [
        (i18n.t(lang, "deliveries"), "deliveries", [d["deliveries"] for d in days]),
        (i18n.t(lang, "opens"), "opens", [d["opens"] for d in days] if opens_ok
         else [None] * len(days)),
        (i18n.t(lang, "clicks"), "clicks", [d["clicks"] for d in days]),
    ], empty_text=i18n.t(lang, "not_measurable"))


def outcome_chart(lang: str, report: dict[str, Any], width: int = 760) -> Any:
    return charts.stacked([
        (i18n.t(lang, "deliveries"), report["deliveries"], "deliveries"),
        (i18n.t(lang, "bounces"), report["bounces"], "bounces"),
        (i18n.t(lang, "soft_bounces"), report["soft_bounces"], "soft_bounces"),
        (i18n.t(lang, "failures"), report["failures"], "failures"),
    ], i18n.t(lang, "targets"), width=width)


