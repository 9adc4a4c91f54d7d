"""The project page: outcomes reconciled, rates, clicks by link, error codes, devices;
all from the project report (tracker.reports.project.build)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracker.reports import project as project_report
from tracker.reports.options import options
from tracker.store.campaigns import newest_campaigns
from tracker.web.pages.common import (
    PROJECT_DAY_COLUMNS,
    day_chart,
    error_rows,
    figure_text,
    guarded,
    headline,
    outcome_chart,
    render_page,
)
from tracker.web.pages.filters import csv_url, picker, report_params


async def campaign_choices(request: Request) -> list[tuple[str, str]]:
    """(campaign id, name) of the campaigns to filter by, last updated first."""
    async with request.app.state.pool.acquire() as conn:
        return await newest_campaigns(conn, limit=1000)


async def project_report_for(request: Request) -> dict[str, Any]:
    opts = options(report_params(request), request.app.state.settings.timezone)
    async with request.app.state.pool.acquire() as conn:
        return await project_report.build(conn, opts)


@guarded
async def project_page(request: Request, lang: str) -> Response:
    """The whole project: outcomes reconciled, rates, clicks by link, error codes."""
    report = await project_report_for(request)
    opens_ok = report["opens_measurable"]
    devices = report.get("devices") if isinstance(report.get("devices"), list) else None
    return render_page(
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
