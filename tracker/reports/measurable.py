"""Whether a figure can be measured at all: opens where some email carried the pixel
(F8, F24), conversions where configured or ever attributed (F16). Reports show "not
measurable" / "not measured" instead of a zero otherwise."""

from __future__ import annotations

import json

import asyncpg

from tracker.events import Kind
from tracker.reports.scope import Params, Scope
from tracker.tokens import Channel

#: the predicate of the partial index deliveries_html_email (sql/051): a delivery that
#: makes opens measurable; queries must repeat it verbatim for the index to serve them
HTML_EMAIL = f"d.channel = {int(Channel.EMAIL)} AND d.has_html AND NOT d.is_test"


async def opens_measurable(conn: asyncpg.Connection, scope: Scope) -> bool:
    """Opens are measurable where some email in scope carried the pixel (F8, F24):
    one probe of the deliveries_html_email index, whatever the campaign's size."""
    if scope.channel is not None and scope.channel != Channel.EMAIL:
        return False
    p = Params()
    where = [HTML_EMAIL]
    if scope.campaigns is not None:
        where.append(f"d.campaign = ANY({p(list(scope.campaigns))}::int[])")
    if scope.schedule_tasks is not None:
        tasks = p(list(scope.schedule_tasks))
        if scope.campaigns is None:
            # the index leads with campaign: name the tasks' campaigns
            where.append(f"d.campaign IN (SELECT st.campaign FROM schedule_tasks st"
                         f" WHERE st.id = ANY({tasks}::int[]))")
        where.append(f"d.schedule_task = ANY({tasks}::int[])")
    # not EXISTS: PostgreSQL drops an EXISTS's ORDER BY and may then gamble on a
    # seq scan finding a match early; the index order makes the index the plan
    sql = f"""SELECT coalesce((SELECT true FROM deliveries d WHERE {' AND '.join(where)}
              ORDER BY d.campaign, d.schedule_task LIMIT 1), false)"""
    measurable: bool = await conn.fetchval(sql, *p.values)
    return measurable


async def conversions_measured(conn: asyncpg.Connection, campaign: asyncpg.Record) -> bool:
    """CV is measured when configured or when any conversion was ever attributed (F16)."""
    settings = campaign["settings"]
    if isinstance(settings, str):
        settings = json.loads(settings)
    if isinstance(settings, dict) and settings.get("conversion"):
        return True
    attributed: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM report_event_hours WHERE campaign = $1"
        f" AND kind = {int(Kind.CONVERSION)})",
        campaign["id"])
    return attributed
