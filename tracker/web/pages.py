"""The report pages (issue 6): campaign list, campaign page, project page, CSV tables.

Every figure comes from ``tracker.reports.campaign.build`` and ``project.build``,
the functions behind the JSON API and the CLI, so the pages can never disagree
with them; this module only chooses the period and filters, lays the figures out
and draws them. The campaign list needs a few figures of every campaign at once:
it asks the reports' own ``figures.users_by_group`` for all campaigns in one query
(its "campaign" group) and turns them into figures with ``campaign.row``, and tests
hold it equal to the JSON API.

Pages need a session (tracker.web.session); without one they answer 401 with the
sign-in form, never a redirect. Every answer carries ``Content-Security-Policy:
default-src 'self'``; templates autoescape every value.
"""

from __future__ import annotations

import asyncio
import csv as _csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode
from zoneinfo import ZoneInfo

import asyncpg
from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tracker.api.bodies import BadRequest, read_body
from tracker.reports import campaign as campaign_report
from tracker.reports import figures as fig
from tracker.reports import project as project_report
from tracker.reports.csv import cell, report_csv
from tracker.reports.options import ReportError, options
from tracker.reports.scope import Scope
from tracker.web import charts, i18n, session

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
LIST_LIMIT = 500
MAX_FORM_BYTES = 4096
#: the query parameters a page passes on to its CSV links and language switch
FILTERS = ("from", "to", "period", "campaign_id", "schedule_task_id", "channel",
           "include_bots", "links")

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
RATES = {"open_rate", "click_rate", "click_to_open_rate", "conversion_rate", "bounce_rate"}
OPEN_FIGURES = {"opens", "open_users", "open_rate", "click_to_open_rate", "machine_opens"}
CV_FIGURES = {"conversions", "conversion_users", "conversion_rate"}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)


# ---------------------------------------------------------------- formatting

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


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


templates.filters["number"] = number
templates.filters["when"] = _date
templates.globals["campaign_path"] = campaign_path


# ---------------------------------------------------------------- responses

def _page(request: Request, lang: str, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("signed_in", True)
    body = templates.get_template(name).render(
        lang=lang, t=lambda key, **v: i18n.t(lang, key, **v), request=request,
        d=lambda key: i18n.t(lang, f"def_{key}") if f"def_{key}" in i18n.TEXTS else "",
        switch_url=_with(request, lang="ja" if lang == "en" else "en"), **context)
    headers = dict(SECURITY_HEADERS)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tracker reports"'
    response = HTMLResponse(body, status_code=status, headers=headers)
    if request.query_params.get("lang") == lang:  # the switch was used: remember it
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, path="/",
                            httponly=True, samesite="strict")
    return response


def _with(request: Request, **changes: str | None) -> str:
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
    return _page(request, lang, "login.html", status, next=target, message=message,
                 signed_in=False)


def error_page(request: Request, lang: str, exc: ReportError) -> Response:
    heading = "not_found" if exc.status == 404 else "bad_request"
    return _page(request, lang, "error.html", exc.status, detail=exc.detail, heading=heading)


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


# ---------------------------------------------------------------- sign-in

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
        return _page(request, lang, "login.html", exc.status, next="/reports",
                     message=str(exc.detail), signed_in=False)
    form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    given = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    if not given:
        return _page(request, lang, "login.html", 401, next=target,
                     message=i18n.t(lang, "missing_key"), signed_in=False)
    if not session.key_is_right(request.app.state.settings, given):
        return _page(request, lang, "login.html", 401, next=target,
                     message=i18n.t(lang, "wrong_key"), signed_in=False)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    await session.sign_in(request, response)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/reports/login", status_code=303, headers=SECURITY_HEADERS)
    await session.sign_out(request, response)
    return response


# ---------------------------------------------------------------- period and filters

def today(request: Request) -> date:
    return datetime.now(ZoneInfo(request.app.state.settings.timezone)).date()


def chosen_period(request: Request) -> tuple[str, str, str]:
    """(from, to, preset): explicit dates win (a custom range of any length, F15);
    else the last 7/30/90 days ending today in TRACKER_TIMEZONE."""
    q = request.query_params
    if q.get("from") or q.get("to"):
        return q.get("from", ""), q.get("to", ""), "custom"
    preset = q.get("period", str(DEFAULT_DAYS))
    days = int(preset) if preset.isdigit() and int(preset) in PRESETS else DEFAULT_DAYS
    last = today(request)
    return (last - timedelta(days=days - 1)).isoformat(), last.isoformat(), str(days)


def report_params(request: Request, **extra: str) -> dict[str, str | None]:
    first, last, _ = chosen_period(request)
    q = request.query_params
    params: dict[str, str | None] = {
        "from": first, "to": last,
        "schedule_task_id": q.get("schedule_task_id") or None,
        "channel": q.get("channel") or None,
        "include_bots": q.get("include_bots") or None,
        "links": q.get("links") or None,
        "campaign_id": q.get("campaign_id") or None,
    }
    params.update(extra)
    return params


def picker(request: Request) -> dict[str, Any]:
    first, last, preset = chosen_period(request)
    keep = {k: v for k, v in request.query_params.items()
            if k in FILTERS and k not in ("from", "to", "period") and v}
    presets = [(days, _with(request, period=str(days), **{"from": None, "to": None}),
                preset == str(days)) for days in PRESETS]
    return {"from": first, "to": last, "preset": preset, "presets": presets, "keep": keep,
            "timezone": request.app.state.settings.timezone}


def csv_url(request: Request, base: str, table: str) -> str:
    keep = {k: v for k, v in request.query_params.items() if k in FILTERS and v}
    first, last, _ = chosen_period(request)
    keep.update({"from": first, "to": last})
    keep.pop("period", None)
    return f"{base}/csv/{table}?{urlencode(keep)}"


# ---------------------------------------------------------------- campaign list

#: every campaign (newest send first) with its last send and whether opens are
#: measurable: figures.opens_measurable's predicate (HTML_EMAIL) and index order, so
#: each campaign is one probe of deliveries_html_email, whatever its channel and size
LIST_SQL = f"""
    SELECT c.id, c.campaign_id, c.name, c.channel, c.status,
           (SELECT max(d.sent_at) FROM deliveries d
            WHERE d.campaign = c.id AND NOT d.is_test AND d.status BETWEEN 1 AND 4
           ) AS last_send,
           coalesce((SELECT true FROM deliveries d WHERE d.campaign = c.id AND {fig.HTML_EMAIL}
                     ORDER BY d.campaign, d.schedule_task LIMIT 1), false) AS opens_ok
    FROM campaigns c
    ORDER BY last_send DESC NULLS LAST, c.updated_at DESC, c.campaign_id
    LIMIT {LIST_LIMIT}"""

TREND_SQL = """
    SELECT h.campaign, (h.hour AT TIME ZONE $3::text)::date AS day, sum(h.n)::bigint AS n
    FROM report_event_hours h
    WHERE h.hour >= $1 AND h.hour < $2 AND h.kind = 2 AND h.human
    GROUP BY 1, 2"""


async def _list_users(pool: asyncpg.Pool, period: Any) -> dict[object, fig.Figures]:
    """Every campaign's deliveries and user figures for the period: the reports' own
    ``users_by_group`` (its "campaign" group), planned as the reports plan it."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        await fig.plan_each_time(conn)
        return (await fig.users_by_group(conn, Scope(), period, ("campaign",)))["campaign"]


async def _list_rest(pool: asyncpg.Pool,
                     period: Any) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The campaigns with their last send and opens_ok, and the click trend."""
    async with pool.acquire() as conn:
        return (await conn.fetch(LIST_SQL),
                await conn.fetch(TREND_SQL, period.start, period.end, period.timezone))


async def campaign_rows(pool: asyncpg.Pool,
                        request: Request) -> tuple[list[dict[str, Any]], Any]:
    """The list's rows: the campaign report's ``deliveries``, ``delivered_users``,
    ``open_rate`` and ``click_rate`` (people only) for every campaign at once, and a
    per-day click trend. The user figures and the rest run side by side on two
    connections."""
    opts = options(report_params(request), request.app.state.settings.timezone)
    period = opts.period
    results = await asyncio.gather(_list_users(pool, period), _list_rest(pool, period),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    users, (campaigns, trend_rows) = results
    trend: dict[int, dict[date, int]] = {}
    for r in trend_rows:
        trend.setdefault(r["campaign"], {})[r["day"]] = r["n"]
    days = period.local_days() if period.days <= 400 else []
    out = []
    for r in campaigns:
        f = users.get(r["id"]) or fig.Figures()
        figures = campaign_report.row(f, opens_ok=r["opens_ok"], conversions_ok=False,
                                      include_bots=False)
        per_day = trend.get(r["id"], {})
        out.append({
            **dict(r),
            **{k: figures[k] for k in ("deliveries", "delivered_users", "open_users",
                                       "click_users", "open_rate", "click_rate")},
            "trend": [per_day.get(d, 0) for d in days],
            "trend_total": sum(per_day.values()),
        })
    return out, period


@guarded
async def campaign_list(request: Request, lang: str) -> Response:
    """``/reports``: every campaign with its headline figures and a trend."""
    rows, period = await campaign_rows(request.app.state.pool, request)
    for r in rows:
        r["spark"] = charts.sparkline(
            r["trend"], title=f"{i18n.t(lang, 'trend')}: {r['trend_total']:,}")
    first, last, preset = chosen_period(request)
    carry = {"from": first, "to": last} if preset == "custom" else {"period": preset}
    return _page(request, lang, "list.html", rows=rows, picker=picker(request), period=period,
                 page="list", picker_query=urlencode(carry))


# ---------------------------------------------------------------- campaign page

async def _campaign(request: Request, campaign_id: str) -> dict[str, Any]:
    """The campaign report under the page's filters (its error codes included)."""
    opts = options(report_params(request, campaign_id=campaign_id),
                   request.app.state.settings.timezone)
    async with request.app.state.pool.acquire() as conn:
        return await campaign_report.build(conn, opts)


async def task_names(request: Request, campaign_id: str) -> list[str]:
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT t.schedule_task_id FROM schedule_tasks t JOIN campaigns c"
            " ON c.id = t.campaign WHERE c.campaign_id = $1 ORDER BY t.created_at DESC,"
            " t.schedule_task_id LIMIT 500", campaign_id)
    return [r[0] for r in rows]


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


@guarded
async def campaign_page(request: Request, lang: str) -> Response:
    """A campaign: headline figures, per-day chart, funnel, links, tasks, outcomes."""
    campaign_id = request.path_params["campaign_id"]
    report = await _campaign(request, campaign_id)
    opens_ok = report["opens_measurable"]
    cv_ok = report["conversion_status"] == "measured"
    base = campaign_path(campaign_id)
    measurable, measured = i18n.t(lang, "not_measurable"), i18n.t(lang, "not_measured")
    funnel = charts.funnel([
        (i18n.t(lang, "delivered_users"), report["delivered_users"], "deliveries", ""),
        (i18n.t(lang, "open_users"), report["open_users"] if opens_ok else None, "opens",
         measurable),
        (i18n.t(lang, "click_users"), report["click_users"], "clicks", ""),
        (i18n.t(lang, "conversion_users"), report["conversion_users"] if cv_ok else None,
         "conversions", measured),
    ], width=460)
    return _page(
        request, lang, "campaign.html", page="campaign", report=report,
        picker=picker(request), tasks=await task_names(request, campaign_id),
        main=headline(lang, report, ["targets", "deliveries", "open_rate", "click_rate",
                                     "click_to_open_rate", "conversions"],
                      opens_ok=opens_ok, cv_ok=cv_ok),
        more=headline(lang, report, ["delivered_users", "opens", "open_users", "clicks",
                                     "click_users", "machine_opens", "bot_clicks",
                                     "conversion_users", "conversion_rate", "unsubscribes",
                                     "resubscribes"], opens_ok=opens_ok, cv_ok=cv_ok),
        outcomes=headline(lang, report, ["bounces", "soft_bounces", "failures", "suppressed"],
                          opens_ok=opens_ok),
        day_chart=day_chart(lang, report["days"], opens_ok), funnel=funnel,
        outcome_chart=outcome_chart(lang, report, 460), errors=error_rows(report),
        task_columns=TASK_COLUMNS, day_columns=DAY_COLUMNS,
        cell_text=lambda key, value: figure_text(lang, key, value, opens_ok=opens_ok,
                                                 cv_ok=cv_ok)[0],
        csv=lambda table: csv_url(request, base, table))


# ---------------------------------------------------------------- project page

async def campaign_choices(request: Request) -> list[tuple[str, str]]:
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch("SELECT campaign_id, name FROM campaigns"
                                " ORDER BY updated_at DESC, campaign_id LIMIT 1000")
    return [(r["campaign_id"], r["name"]) for r in rows]


async def _project(request: Request) -> dict[str, Any]:
    opts = options(report_params(request), request.app.state.settings.timezone)
    async with request.app.state.pool.acquire() as conn:
        return await project_report.build(conn, opts)


@guarded
async def project_page(request: Request, lang: str) -> Response:
    """The whole project: outcomes reconciled, rates, clicks by link, error codes."""
    report = await _project(request)
    opens_ok = report["opens_measurable"]
    devices = report.get("devices") if isinstance(report.get("devices"), list) else None
    return _page(
        request, lang, "project.html", page="project", report=report, picker=picker(request),
        campaigns=await campaign_choices(request),
        main=headline(lang, report, ["targets", "deliveries", "bounce_rate", "fail_count",
                                     "suppressed", "unsubscribes", "resubscribes"],
                      opens_ok=opens_ok),
        more=headline(lang, report, ["bounces", "soft_bounces", "failures", "opens", "clicks",
                                     "machine_opens", "bot_clicks"], opens_ok=opens_ok),
        outcome_chart=outcome_chart(lang, report),
        day_chart=day_chart(lang, report["days"], opens_ok), errors=error_rows(report),
        day_columns=PROJECT_DAY_COLUMNS, devices=devices,
        cell_text=lambda key, value: figure_text(lang, key, value, opens_ok=opens_ok)[0],
        csv=lambda table: csv_url(request, "/reports/project", table))


# ---------------------------------------------------------------- CSV downloads

def table_csv(header: list[str], rows: list[list[Any]]) -> str:
    """One table, every cell through the reports' formula-injection-safe ``cell``."""
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([cell(v) for v in r])
    return out.getvalue()


def _records(rows: list[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    return [[r.get(c) for c in columns] for r in rows]


def summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    skip = {"days", "schedule_tasks", "click_ranking", "error_codes", "filters", "devices"}
    rows = [[k, v] for k, v in report.items() if k not in skip]
    rows += [[f"filter_{k}", v] for k, v in report.get("filters", {}).items()]
    return rows


def tables_of(report: dict[str, Any],
              kind: str) -> dict[str, tuple[list[str], list[list[Any]]]]:
    day_columns = DAY_COLUMNS if kind == "campaign" else PROJECT_DAY_COLUMNS
    tables = {
        "summary": (["figure", "value"], summary_rows(report)),
        "days": (day_columns, _records(report["days"], day_columns)),
        "links": (LINK_COLUMNS, _records(report["click_ranking"], LINK_COLUMNS)),
        "errors": (ERROR_COLUMNS, error_rows(report)),
    }
    if kind == "campaign":
        tables["tasks"] = (TASK_COLUMNS, _records(report["schedule_tasks"], TASK_COLUMNS))
    return tables


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def csv_response(text: str, name: str) -> Response:
    filename = _UNSAFE_NAME.sub("_", name)[:150] + ".csv"
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers=headers)


def _unknown_table(table: str, known: list[str]) -> ReportError:
    return ReportError(404, "not_found",
                       f"no table {table[:40]!r}; the tables are {', '.join(known)}")


@guarded
async def campaign_csv(request: Request, lang: str) -> Response:
    """A table of the campaign page (or ``all``), under the filters shown (F21)."""
    campaign_id, table = request.path_params["campaign_id"], request.path_params["table"]
    report = await _campaign(request, campaign_id)
    tables = tables_of(report, "campaign")
    name = f"{campaign_id}-{table}-{report['from']}-{report['to']}"
    if table == "all":
        return csv_response(report_csv(report), name)
    if table not in tables:
        raise _unknown_table(table, ["all", *tables])
    return csv_response(table_csv(*tables[table]), name)


@guarded
async def project_csv(request: Request, lang: str) -> Response:
    """A table of the project page (or ``all``), under the filters shown (F21)."""
    table = request.path_params["table"]
    report = await _project(request)
    tables = tables_of(report, "project")
    scope = report["filters"].get("campaign_id") or "project"
    name = f"{scope}-{table}-{report['from']}-{report['to']}"
    if table == "all":
        return csv_response(report_csv(report), name)
    if table not in tables:
        raise _unknown_table(table, ["all", *tables])
    return csv_response(table_csv(*tables[table]), name)


routes = [
    Route("/reports", campaign_list, methods=["GET"]),
    Route("/reports/login", login_form, methods=["GET"]),
    Route("/reports/login", login, methods=["POST"]),
    Route("/reports/logout", logout, methods=["POST"]),
    Route("/reports/project", project_page, methods=["GET"]),
    Route("/reports/project/csv/{table}", project_csv, methods=["GET"]),
    # :path so a campaign id holding "/" still has a page; the CSV route goes first
    Route("/reports/campaigns/{campaign_id:path}/csv/{table}", campaign_csv, methods=["GET"]),
    Route("/reports/campaigns/{campaign_id:path}", campaign_page, methods=["GET"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]
