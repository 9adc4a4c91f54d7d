"""``/reports``: every campaign with its headline figures and a click trend."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from tracker.reports import campaign as campaign_report
from tracker.reports import campaign_list as list_report
from tracker.reports.ingredients import Figures
from tracker.reports.options import options
from tracker.web import charts, i18n
from tracker.web.pages.common import guarded, render_page
from tracker.web.pages.filters import chosen_period, picker, report_params


async def _list_people(pool: asyncpg.Pool, period: Any) -> dict[object, Figures]:
    async with pool.acquire() as conn:
        return await list_report.people_by_campaign(conn, period)


async def _list_rest(pool: asyncpg.Pool,
                     period: Any) -> tuple[list[asyncpg.Record], dict[int, dict[date, int]]]:
    """The campaigns with their last send and opens_ok, and the click trend."""
    async with pool.acquire() as conn:
        return (await list_report.campaigns_by_last_send(conn),
                await list_report.click_trend(conn, period))


async def campaign_rows(pool: asyncpg.Pool,
                        request: Request) -> tuple[list[dict[str, Any]], Any]:
    """The list's rows: the campaign report's ``deliveries``, ``delivered_users``,
    ``open_rate`` and ``click_rate`` (people only) for every campaign at once, and a
    per-day click trend. The user figures and the rest run side by side on two
    connections."""
    opts = options(report_params(request), request.app.state.settings.timezone)
    period = opts.period
    results = await asyncio.gather(_list_people(pool, period), _list_rest(pool, period),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    users, (campaigns, trend) = results
    days = period.local_days() if period.days <= 400 else []
    out = []
    for r in campaigns:
        f = users.get(r["id"]) or Figures()
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
    return render_page(request, lang, "list.html", rows=rows, picker=picker(request),
                       period=period, page="list", picker_query=urlencode(carry))
