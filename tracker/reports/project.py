"""The project report (keys defined in docs/figures.md#keys): outcomes, rates, counts, click
ranking and error codes under the same filters (F5, F6, F7, F9, F14, F17, F21)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tracker.reports import clicks
from tracker.reports import figures as fig
from tracker.reports.campaign import merge
from tracker.reports.errors import classify
from tracker.reports.options import Options, resolve


def row(f: fig.Figures, *, opens_ok: bool, include_bots: bool) -> dict[str, Any]:
    human = None if include_bots else True
    deliveries = f.outcomes[fig.DELIVERED]
    bounces, soft, failures = (f.outcomes[fig.BOUNCED], f.outcomes[fig.SOFT_BOUNCED],
                               f.outcomes[fig.FAILED])
    targets = deliveries + bounces + soft + failures
    return {
        "targets": targets,
        "deliveries": deliveries,
        "bounces": bounces,
        "soft_bounces": soft,
        "failures": failures,
        "fail_count": bounces + soft + failures,
        "suppressed": f.outcomes[fig.SUPPRESSED],
        "bounce_rate": bounces / targets if targets else None,
        "unsubscribes": f.count(3),
        "resubscribes": f.count(4),
        "opens": f.count(1, human) if opens_ok else None,
        "clicks": f.count(2, human),
        "machine_opens": f.count(1, False) if opens_ok else None,
        "bot_clicks": f.count(2, False),
        "conversions": f.count(5),
    }


def error_table(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    table: dict[object, dict[str, Any]] = {}
    for r in rows:
        entry = table.get(r["code"])
        if entry is None:
            category, kind = classify(r["code"])
            entry = table[r["code"]] = {"category": category, "code": r["code"], "kind": kind,
                                        "count": r["total"], "top_messages": []}
        entry["top_messages"].append({"message": r["message"], "count": r["n"]})
    return list(table.values())


async def build(conn: asyncpg.Connection, opts: Options) -> dict[str, Any]:
    scope, _, _ = await resolve(conn, opts)
    period = opts.period
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await fig.plan_each_time(conn)
        opens_ok = await fig.opens_measurable(conn, scope)
        counts = await fig.counts_by_group(conn, scope, period, ("total", "day"))
        outcomes = await fig.outcomes_by_group(conn, scope, period, ("total", "day"))
        total = merge(counts["total"], outcomes["total"]).get(0, fig.Figures())
        days = merge(counts["day"], outcomes["day"])
        ranking = await clicks.click_ranking(conn, scope, period, opts.include_bots, opts.links)
        errors = error_table(await fig.error_codes(conn, scope, period))
        devices = await fig.devices(conn, scope, period, opens_ok=opens_ok,
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
        "devices": devices,
        "devices_caveat": fig.DEVICES_CAVEAT,
        "days": [{"date": d.isoformat(), **row(days.get(d, fig.Figures()), opens_ok=opens_ok,
                                                include_bots=opts.include_bots)}
                 for d in fig.dense_days(period, set(days))],
    }
