"""The campaign report (keys defined in docs/figures.md#keys): totals, days, schedule tasks,
click ranking. Key definitions are binding; the SQL is in counts, people, clicks, devices
and measurable."""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.events import Kind
from tracker.reports import clicks, counts, devices, measurable, people
from tracker.reports.errors import error_table
from tracker.reports.ingredients import GROUPS, Figures, merge
from tracker.reports.options import Options, ReportError, resolve
from tracker.reports.periods import Period, dense_days
from tracker.reports.scope import Scope, plan_each_time
from tracker.store.deliveries import Status


def _rate(numerator: int | None, denominator: int | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def row(f: Figures, *, opens_ok: bool, conversions_ok: bool,
        include_bots: bool) -> dict[str, Any]:
    """One set of campaign figures from its ingredients (F4, F6, F8, F12, F14, F16)."""
    human = None if include_bots else True
    deliveries = f.outcomes[Status.DELIVERED]
    bounces, soft, failures = (f.outcomes[Status.BOUNCED], f.outcomes[Status.SOFT_BOUNCED],
                               f.outcomes[Status.FAILED])
    delivered_users = f.users["delivered_users"]
    open_users: int | None = f.users["open_users_all" if include_bots else "open_users"]
    click_users = f.users["click_users_all" if include_bots else "click_users"]
    opens = f.count(Kind.OPEN, human) if opens_ok else None
    open_users = open_users if opens_ok else None
    conversions = f.count(Kind.CONVERSION) if conversions_ok else None
    conversion_users = f.users["conversion_users"] if conversions_ok else None
    return {
        "targets": deliveries + bounces + soft + failures,
        "deliveries": deliveries,
        "delivered_users": delivered_users,
        "opens": opens,
        "open_users": open_users,
        "clicks": f.count(Kind.CLICK, human),
        "click_users": click_users,
        "open_rate": _rate(open_users, delivered_users),
        "click_rate": _rate(click_users, delivered_users),
        "click_to_open_rate": _rate(click_users, open_users) if opens_ok else None,
        "machine_opens": f.count(Kind.OPEN, False) if opens_ok else None,
        "bot_clicks": f.count(Kind.CLICK, False),
        "bounces": bounces,
        "soft_bounces": soft,
        "failures": failures,
        "suppressed": f.outcomes[Status.SUPPRESSED],
        "unsubscribes": f.count(Kind.UNSUBSCRIBE),
        "resubscribes": f.count(Kind.SUBSCRIBE),
        "conversions": conversions,
        "conversion_users": conversion_users,
        "conversion_rate": _rate(conversion_users, delivered_users),
        "conversion_status": "measured" if conversions_ok else "not_measured",
    }


async def grouped(conn: asyncpg.Connection, scope: Scope,
                  period: Period) -> dict[str, dict[Any, Figures]]:
    """Figures per group (total, day, task): counts and outcomes from rollups, the
    counts, the outcomes and the unique-user figures of all three groups each from
    one read. Keyed by 0 (total), the date (day) or the schedule task's id (task)."""
    users = await people.users_by_group(conn, scope, period)
    counted = await counts.counts_by_group(conn, scope, period)
    outcomes = await counts.outcomes_by_group(conn, scope, period)
    return {group: merge(counted[group], outcomes[group], users[group]) for group in GROUPS}


async def build(conn: asyncpg.Connection, opts: Options) -> dict[str, Any]:
    """The campaign report for ``opts.campaign_id`` (required)."""
    if opts.campaign_id is None:
        raise ReportError(422, "invalid", "campaign_id is required")
    scope, task_names, campaign = await resolve(conn, opts)
    assert campaign is not None, "resolve finds the campaign named or raises"
    period = opts.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await plan_each_time(conn)
        opens_ok = await measurable.opens_measurable(conn, scope)
        conversions_ok = await measurable.conversions_measured(conn, campaign)
        groups = await grouped(conn, scope, period)
        total = groups["total"].get(0, Figures())
        days, tasks = groups["day"], groups["task"]
        ranking = await clicks.click_ranking(conn, scope, period, opts.include_bots, opts.links)
        by_device = await devices.devices(conn, scope, period, opens_ok=opens_ok,
                                          include_bots=opts.include_bots)
        error_codes = await counts.error_codes(conn, scope, period)

    def figures(f: Figures) -> dict[str, Any]:
        return row(f, opens_ok=opens_ok, conversions_ok=conversions_ok,
                   include_bots=opts.include_bots)

    report = {
        "campaign_id": campaign["campaign_id"],
        "name": campaign["name"],
        "channel": campaign["channel"],
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": period.timezone,
        "filters": {"schedule_task_id": opts.schedule_task_id, "channel": opts.channel,
                    "include_bots": opts.include_bots},
        "opens_measurable": opens_ok,
        **figures(total),
        "days": [{"date": d.isoformat(), **figures(days.get(d, Figures()))}
                 for d in dense_days(period, set(days))],
        "schedule_tasks": [
            {"schedule_task_id": task_names.get(t, str(t)), **figures(f)}
            for t, f in sorted(tasks.items(), key=lambda kv: task_names.get(kv[0], ""))],
        "click_ranking": ranking,
        "error_codes": error_table(error_codes),
        "devices": by_device,
        "devices_caveat": devices.DEVICES_CAVEAT,
    }
    return report
