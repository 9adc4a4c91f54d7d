"""``GET /v1/reports/campaigns/{id}`` and ``GET /v1/reports/project`` (JSON or CSV).

Parameters are checked by tracker.reports.options (the CLI uses the same), so bad
input gets a 4xx saying what to fix and never reaches the database."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker.api.bodies import BadRequest, error_response
from tracker.api.campaigns import check_id
from tracker.reports import campaign, project
from tracker.reports.csv import report_csv
from tracker.reports.options import Builder, ReportError, options

FORMATS = ("json", "csv")


def _params(request: Request, **extra: str) -> dict[str, str | None]:
    params: dict[str, str | None] = dict(request.query_params)
    params.update(extra)
    return params


def _answer(report: dict[str, Any], fmt: str, filename: str) -> Response:
    if fmt == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return JSONResponse(report)


async def _report(request: Request, builder: Builder, extra: dict[str, str],
                  filename: str) -> Response:
    fmt = request.query_params.get("format", "json")
    try:
        if fmt not in FORMATS:
            raise ReportError(422, "invalid", f"format must be json or csv, not {fmt[:40]!r}")
        opts = options(_params(request, **extra), request.app.state.settings.timezone)
        async with request.app.state.pool.acquire() as conn:
            report = await builder(conn, opts)
    except ReportError as exc:
        return error_response(BadRequest(exc.status, exc.error, exc.detail))
    return _answer(report, fmt, filename)


async def campaign_report(request: Request) -> Response:
    try:
        campaign_id = check_id(request.path_params["campaign_id"], "campaign_id")
    except BadRequest as exc:
        return error_response(exc)
    return await _report(request, campaign.build, {"campaign_id": campaign_id},
                         "campaign-report.csv")


async def project_report(request: Request) -> Response:
    return await _report(request, project.build, {}, "project-report.csv")


routes = [
    Route("/reports/campaigns/{campaign_id:path}", campaign_report, methods=["GET"]),
    Route("/reports/project", project_report, methods=["GET"]),
]
