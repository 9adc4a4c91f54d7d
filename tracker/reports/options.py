"""Report options from query parameters or CLI flags, checked with clear errors.

Shared by the API and the CLI so both accept and refuse exactly the same input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from tracker.reports.periods import Period, PeriodError, period
from tracker.reports.scope import Scope
from tracker.tokens import CHANNELS_BY_NAME

MAX_LINKS = 10_000


class ReportError(Exception):
    """Bad report input: ``status`` (404 or 422), ``error`` and a helpful ``detail``."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class Options:
    period: Period
    campaign_id: str | None = None
    schedule_task_id: str | None = None
    channel: str | None = None
    include_bots: bool = False
    links: int = 100


#: A report built from its options: tracker.reports.campaign.build or project.build.
Builder = Callable[[asyncpg.Connection, Options], Awaitable[dict[str, Any]]]


def parse_bool(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ReportError(422, "invalid", f"{name} must be true or false, not {value[:40]!r}")


def options(params: dict[str, str | None], timezone: str) -> Options:
    """Check every parameter; raises ReportError (422) naming the bad one."""
    try:
        checked = period(params.get("from"), params.get("to"), timezone)
    except PeriodError as exc:
        raise ReportError(422, "invalid_period", str(exc)) from None
    channel = params.get("channel") or None
    if channel is not None and channel not in CHANNELS_BY_NAME:
        raise ReportError(422, "invalid",
                          f"channel must be one of {', '.join(CHANNELS_BY_NAME)},"
                          f" not {channel[:40]!r}")
    links_raw = params.get("links") or "100"
    if not links_raw.isdigit() or not 1 <= int(links_raw) <= MAX_LINKS:
        raise ReportError(422, "invalid",
                          f"links must be a whole number from 1 to {MAX_LINKS}, "
                          f"not {links_raw[:40]!r}")
    for name in ("campaign_id", "schedule_task_id"):
        value = params.get(name)
        if value is not None and (len(value) > 200 or "\x00" in value):
            raise ReportError(422, "invalid", f"{name} must be at most 200 characters")
    return Options(
        period=checked,
        campaign_id=params.get("campaign_id") or None,
        schedule_task_id=params.get("schedule_task_id") or None,
        channel=channel,
        include_bots=parse_bool(params.get("include_bots"), "include_bots"),
        links=int(links_raw),
    )


async def resolve(conn: asyncpg.Connection, opts: Options) -> tuple[Scope, dict[int, str],
                                                                     asyncpg.Record | None]:
    """The scope in internal ids, the schedule task names, and the campaign row (when
    one is named). Unknown campaign or schedule task: ReportError 404."""
    campaign = None
    campaigns = None
    if opts.campaign_id is not None:
        campaign = await conn.fetchrow("SELECT * FROM campaigns WHERE campaign_id = $1",
                                       opts.campaign_id)
        if campaign is None:
            raise ReportError(404, "not_found",
                              f"no campaign {opts.campaign_id!r}; check the id (campaigns are "
                              "created by PUT /v1/campaigns/{id} or their first message)")
        campaigns = (campaign["id"],)
    task_rows = await conn.fetch(
        "SELECT id, schedule_task_id FROM schedule_tasks"
        " WHERE ($1::int[] IS NULL OR campaign = ANY($1::int[]))"
        " AND ($2::text IS NULL OR schedule_task_id = $2)",
        list(campaigns) if campaigns else None, opts.schedule_task_id)
    tasks = None
    if opts.schedule_task_id is not None:
        if not task_rows:
            where = f" in campaign {opts.campaign_id!r}" if campaign else ""
            raise ReportError(404, "not_found",
                              f"no schedule task {opts.schedule_task_id!r}{where}; "
                              "check the id or leave schedule_task_id out")
        tasks = tuple(r["id"] for r in task_rows)
    names = {r["id"]: r["schedule_task_id"] for r in task_rows} if campaign or tasks else {}
    scope = Scope(campaigns, tasks, int(CHANNELS_BY_NAME[opts.channel]) if opts.channel else None)
    return scope, names, campaign
