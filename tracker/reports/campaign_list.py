"""What the campaign list (/reports) reads: every campaign with its last send and
whether its opens are measurable, each campaign's people figures for the period (the
reports' own ``people.users_by_group``), and a per-day click trend."""

from __future__ import annotations

from datetime import date

import asyncpg

from tracker.events import Kind
from tracker.reports import people
from tracker.reports.ingredients import Figures
from tracker.reports.measurable import HTML_EMAIL
from tracker.reports.periods import Period
from tracker.reports.scope import Scope, plan_each_time
from tracker.store.deliveries import Status

#: the list shows the campaigns sent last, at most this many
LIST_LIMIT = 500

#: every campaign (newest send first) with its last send and whether opens are
#: measurable: measurable.opens_measurable's predicate (HTML_EMAIL) and index order, so
#: each campaign is one probe of deliveries_html_email, whatever its channel and size
_CAMPAIGNS = f"""
    SELECT c.id, c.campaign_id, c.name, c.channel, c.status,
           (SELECT max(d.sent_at) FROM deliveries d
            WHERE d.campaign = c.id AND NOT d.is_test
              AND d.status BETWEEN {int(Status.DELIVERED)} AND {int(Status.FAILED)}
           ) AS last_send,
           coalesce((SELECT true FROM deliveries d WHERE d.campaign = c.id AND {HTML_EMAIL}
                     ORDER BY d.campaign, d.schedule_task LIMIT 1), false) AS opens_ok
    FROM campaigns c
    ORDER BY last_send DESC NULLS LAST, c.updated_at DESC, c.campaign_id
    LIMIT {LIST_LIMIT}"""

_TREND = f"""
    SELECT h.campaign, (h.hour AT TIME ZONE $3::text)::date AS day, sum(h.n)::bigint AS n
    FROM report_event_hours h
    WHERE h.hour >= $1 AND h.hour < $2 AND h.kind = {int(Kind.CLICK)} AND h.human
    GROUP BY 1, 2"""


async def campaigns_by_last_send(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The campaigns the list shows, newest send first: id, campaign_id, name, channel,
    status, last_send, opens_ok."""
    rows: list[asyncpg.Record] = await conn.fetch(_CAMPAIGNS)
    return rows


async def click_trend(conn: asyncpg.Connection, period: Period) -> dict[int, dict[date, int]]:
    """People's clicks per campaign and local day of the period (whole UTC hours of
    report_event_hours, placed in the day their hour starts in)."""
    trend: dict[int, dict[date, int]] = {}
    for r in await conn.fetch(_TREND, period.start, period.end, period.timezone):
        trend.setdefault(r["campaign"], {})[r["day"]] = r["n"]
    return trend


async def people_by_campaign(conn: asyncpg.Connection, period: Period) -> dict[object, Figures]:
    """Every campaign's deliveries and user figures for the period: the reports' own
    ``users_by_group`` (its "campaign" group), planned as the reports plan it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await plan_each_time(conn)
        return (await people.users_by_group(conn, Scope(), period, ("campaign",)))["campaign"]
