"""A campaign's page: headline figures, per-day chart, funnel, links, schedule tasks,
outcomes; all from the campaign report (tracker.reports.campaign.build)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracker.reports import campaign as campaign_report
from tracker.reports.options import options
from tracker.store.campaigns import newest_schedule_task_ids
from tracker.web import charts, i18n
from tracker.web.pages.common import (
    DAY_COLUMNS,
    TASK_COLUMNS,
    campaign_path,
    day_chart,
    error_rows,
    figure_text,
    guarded,
    headline,
    outcome_chart,
    render_page,
)
from tracker.web.pages.filters import csv_url, picker, report_params


async def campaign_report_for(request: Request, campaign_id: str) -> dict[str, Any]:
    """The campaign report under the page's filters (its error codes included)."""
    opts = options(report_params(request, campaign_id=campaign_id),
                   request.app.state.settings.timezone)
    async with request.app.state.pool.acquire() as conn:
        return await campaign_report.build(conn, opts)


async def task_names(request: Request, campaign_id: str) -> list[str]:
    """The campaign's schedule task ids for the filter, newest first."""
    async with request.app.state.pool.acquire() as conn:
        return await newest_schedule_task_ids(conn, campaign_id, limit=500)


@guarded
async def campaign_page(request: Request, lang: str) -> Response:
    """A campaign: headline figures, per-day chart, funnel, links, tasks, outcomes."""
    campaign_id = request.path_params["campaign_id"]
    report = await campaign_report_for(request, campaign_id)
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
    return render_page(
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
