"""The project report (keys defined in docs/figures.md#keys): outcomes, rates, counts, click
ranking and error codes under the same filters (F5, F6, F7, F9, F14, F17, F21)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.events import Kind
from tracker.reports import clicks, counts, devices, measurable
from tracker.reports.errors import error_table
from tracker.reports.ingredients import Figures, merge
from tracker.reports.options import Options, resolve
from tracker.reports.periods import dense_days
from tracker.reports.scope import plan_each_time
from tracker.store.deliveries import Status


def row(f: Figures, *, opens_ok: bool, include_bots: bool) -> dict[str, Any]:
    human = None if include_bots else True
    deliveries = f.outcomes[Status.DELIVERED]
    bounces, soft, failures = (f.outcomes[Status.BOUNCED], f.outcomes[Status.SOFT_BOUNCED],
                               f.outcomes[Status.FAILED])
    targets = deliveries + bounces + soft + failures
    return {
        "targets": targets,
        "deliveries": deliveries,
        "bounces": bounces,
        "soft_bounces": soft,
        "failures": failures,
        "fail_count": bounces + soft + failures,
        "suppressed": f.outcomes[Status.SUPPRESSED],
        "bounce_rate": bounces / targets if targets else None,
        "unsubscribes": f.count(Kind.UNSUBSCRIBE),
        "resubscribes": f.count(Kind.SUBSCRIBE),
        "opens": f.count(Kind.OPEN, human) if opens_ok else None,
        "clicks": f.count(Kind.CLICK, human),
        "machine_opens": f.count(Kind.OPEN, False) if opens_ok else None,
        "bot_clicks": f.count(Kind.CLICK, False),
        "conversions": f.count(Kind.CONVERSION),
    }


async def build(conn: asyncpg.Connection, opts: Options) -> dict[str, Any]:
    scope, _, _ = await resolve(conn, opts)
    period = opts.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await plan_each_time(conn)
        opens_ok = await measurable.opens_measurable(conn, scope)
        counted = await counts.counts_by_group(conn, scope, period, ("total", "day"))
        outcomes = await counts.outcomes_by_group(conn, scope, period, ("total", "day"))
        total = merge(counted["total"], outcomes["total"]).get(0, Figures())
        days = merge(counted["day"], outcomes["day"])
        ranking = await clicks.click_ranking(conn, scope, period, opts.include_bots, opts.links)
        errors = error_table(await counts.error_codes(conn, scope, period))
        by_device = await devices.devices(conn, scope, period, opens_ok=opens_ok,
                                          include_bots=opts.include_bots)
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": period.timezone,
        "filters": {"campaign_id": opts.campaign_id, "schedule_task_id": opts.schedule_task_id,
                    "channel": opts.channel, "include_bots": opts.include_bots},
        "opens_measurable": opens_ok,
        **row(total, opens_ok=opens_ok, include_bots=opts.include_bots),
        "click_ranking": ranking,
        "error_codes": errors,
        "devices": by_device,
        "devices_caveat": devices.DEVICES_CAVEAT,
        "days": [{"date": d.isoformat(), **row(days.get(d, Figures()), opens_ok=opens_ok,
                                                include_bots=opts.include_bots)}
                 for d in dense_days(period, set(days))],
    }
