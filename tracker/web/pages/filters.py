"""The period and filters a page reports on, from its query string: explicit dates or
a preset of the last 7/30/90 days, and the filters its CSV links and language switch
pass on."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request

from tracker.web.pages.common import url_with

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
#: the query parameters a page passes on to its CSV links and language switch
FILTERS = ("from", "to", "period", "campaign_id", "schedule_task_id", "channel",
           "include_bots", "links")


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
    presets = [(days, url_with(request, period=str(days), **{"from": None, "to": None}),
                preset == str(days)) for days in PRESETS]
    return {"from": first, "to": last, "preset": preset, "presets": presets, "keep": keep,
            "timezone": request.app.state.settings.timezone}


def csv_url(request: Request, base: str, table: str) -> str:
    keep = {k: v for k, v in request.query_params.items() if k in FILTERS and v}
    first, last, _ = chosen_period(request)
    keep.update({"from": first, "to": last})
    keep.pop("period", None)
    return f"{base}/csv/{table}?{urlencode(keep)}"
