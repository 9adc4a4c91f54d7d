"""Delivery outcomes (delivered, bounced, soft_bounced, failed) into PostgreSQL, set-based.

A batch is COPYed into a temporary table, then a handful of statements apply it
as a whole, in one transaction: append to ``outcome_history`` the outcomes not
seen before, set each delivery's current outcome from its history, and put hard
bounces and dead push tokens on the suppression list. Row by row this would be
~3,500 rows/s; set-based it is a few seconds for 100,000.

Every outcome carries the time of its own event (``occurred_at``: SES gives one,
a sender may; otherwise the arrival time). A delivery's current outcome is the one
of its history with the latest event time, ties going to the later arrival: SNS
does not keep order, so a Delivery stamped 00:40:30 that arrives after the Bounce
stamped 00:41:02 joins the history and leaves the bounce in place. The order of
arrival therefore never changes the figures, the history or the suppression list.

Idempotent: an outcome already in the history (same status, code and event time)
changes nothing; one without an event time changes nothing while it equals the
delivery's current (status, error_code), as before event times existed. A
delivery's ``sent_at`` is the earliest any of its outcomes gave, so a bounce
never moves the delivery into another reporting period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import asyncpg

from tracker.errorcodes import TOKEN_NOT_REGISTERED
from tracker.store.deliveries import MINTED_FROM, Status
from tracker.store.suppressions import UPSERT_TAIL
from tracker.tokens import CHANNEL_NAMES, Channel


class Outcome(NamedTuple):
    """One outcome as the sender names things (its own campaign and task ids)."""

    delivery_id: int
    campaign_id: str
    schedule_task_id: str
    user_id: str
    channel: int
    status: int
    error_code: str | None
    error_message: str | None
    sent_at: datetime
    is_test: bool = False
    occurred_at: datetime | None = None  # the event's own time; None: when it arrives


class ResolvedOutcome(NamedTuple):
    """One outcome with the tracker's internal campaign and schedule task ids."""

    delivery_id: int
    campaign: int
    schedule_task: int
    user_id: str
    channel: int
    status: int
    error_code: str | None
    error_message: str | None
    sent_at: datetime
    is_test: bool = False
    occurred_at: datetime | None = None  # the event's own time; None: when it arrives


@dataclass(frozen=True)
class IngestResult:
    received: int
    changed: int  # outcomes new to the history (each is one history row)
    created: int  # deliveries the tracker had not seen before
    suppressed: int  # suppression list rows added or hardened


class OutcomeConflict(Exception):
    """Rows that contradict deliveries already stored: [(index, what is wrong)]."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} outcomes contradict stored deliveries")
        self.problems = problems


_COLUMNS = ("ord", "delivery_id", "campaign", "schedule_task", "user_id", "channel", "status",
            "error_code", "error_message", "sent_at", "is_test", "occurred_at")


async def resolve_ids(conn: asyncpg.Connection,
                      outcomes: list[Outcome]) -> list[ResolvedOutcome]:
    """Map sender campaign and task ids to internal ones, creating what is missing
    (push and LINE senders post outcomes for deliveries the tracker never saw)."""
    channel_of: dict[str, str] = {}
    for o in outcomes:
        channel_of.setdefault(o.campaign_id, CHANNEL_NAMES[Channel(o.channel)])
    names = list(channel_of)
    await conn.execute(
        "INSERT INTO campaigns (campaign_id, name, channel)"
        " SELECT c, c, ch FROM unnest($1::text[], $2::text[]) AS t(c, ch)"
        " ORDER BY c ON CONFLICT (campaign_id) DO NOTHING",
        names, [channel_of[n] for n in names])
    campaign_ids = {r["campaign_id"]: r["id"] for r in await conn.fetch(
        "SELECT id, campaign_id FROM campaigns WHERE campaign_id = ANY($1::text[])", names)}
    pairs = sorted({(campaign_ids[o.campaign_id], o.schedule_task_id) for o in outcomes})
    await conn.execute(
        "INSERT INTO schedule_tasks (campaign, schedule_task_id)"
        " SELECT * FROM unnest($1::integer[], $2::text[]) ON CONFLICT DO NOTHING",
        [p[0] for p in pairs], [p[1] for p in pairs])
    task_ids = {(r["campaign"], r["schedule_task_id"]): r["id"] for r in await conn.fetch(
        "SELECT s.id, s.campaign, s.schedule_task_id FROM schedule_tasks s"
        " JOIN unnest($1::integer[], $2::text[]) AS t(c, st)"
        " ON s.campaign = t.c AND s.schedule_task_id = t.st",
        [p[0] for p in pairs], [p[1] for p in pairs])}
    resolved = []
    for o in outcomes:
        campaign = campaign_ids[o.campaign_id]
        resolved.append(ResolvedOutcome(
            o.delivery_id, campaign, task_ids[(campaign, o.schedule_task_id)], o.user_id,
            o.channel, o.status, o.error_code, o.error_message, o.sent_at, o.is_test,
            o.occurred_at))
    return resolved


async def ingest(conn: asyncpg.Connection, outcomes: list[Outcome]) -> IngestResult:
    """Store a validated batch atomically; raises OutcomeConflict (storing nothing)
    when rows contradict deliveries already stored."""
    async with conn.transaction():
        resolved = await resolve_ids(conn, outcomes)
        return await _apply(conn, resolved)


async def ingest_resolved(conn: asyncpg.Connection,
                          outcomes: list[ResolvedOutcome]) -> IngestResult:
    async with conn.transaction():
        return await _apply(conn, outcomes)


async def _apply(conn: asyncpg.Connection, outcomes: list[ResolvedOutcome]) -> IngestResult:
    if not outcomes:
        return IngestResult(0, 0, 0, 0)
    # the deliveries' counters lock before any delivery row: the shipper holds it
    # while it sets firsts on delivery rows (sql/064), so the two never hold one each
    # and wait for the other's
    await conn.execute("SELECT tracker_lock_delivery_counters()")
    await conn.execute(
        "CREATE TEMP TABLE outcomes_in (ord integer, delivery_id bigint, campaign integer,"
        " schedule_task integer, user_id text, channel smallint, status smallint,"
        " error_code text, error_message text, sent_at timestamptz, is_test boolean,"
        " occurred_at timestamptz) ON COMMIT DROP")
    await conn.copy_records_to_table(
        "outcomes_in", records=[(i, *o) for i, o in enumerate(outcomes)], columns=_COLUMNS)
    await conn.execute("ANALYZE outcomes_in")
    await _refuse_unminted(conn)
    await _refuse_contradictions(conn)
    changed = await _add_history(conn)
    created = await _set_current(conn)
    suppressed = await _suppress(conn)
    return IngestResult(len(outcomes), changed, created, suppressed)


# An outcome without its own time happened when it arrived (now(): the transaction's
# start, one instant for the whole batch, whose order then breaks the ties).
_EVENT_TIME = "coalesce(i.occurred_at, now())"


async def _add_history(conn: asyncpg.Connection) -> int:
    """Append the batch's outcomes that are new: not in the history already (same
    status, code and event time), not repeated earlier in the batch, and, for an
    outcome without its own time, not equal to the outcome before it (the delivery's
    current one, or the batch's previous row for the delivery)."""
    added: int = await conn.fetchval(
        "WITH staged AS ("
        f"  SELECT i.*, {_EVENT_TIME} AS occ,"
        "         row_number() OVER w AS rn, lag(status) OVER w AS prev_status,"
        "         lag(error_code) OVER w AS prev_code,"
        "         row_number() OVER (PARTITION BY delivery_id, status, error_code,"
        f"                            {_EVENT_TIME} ORDER BY ord) AS copy"
        "  FROM outcomes_in i WINDOW w AS (PARTITION BY delivery_id ORDER BY ord)"
        "), added AS ("
        "  INSERT INTO outcome_history (delivery_id, sent_at, status, error_code, error_message,"
        "                               occurred_at)"
        "  SELECT s.delivery_id, s.sent_at, s.status, s.error_code, s.error_message, s.occ"
        "  FROM staged s LEFT JOIN deliveries d ON d.delivery_id = s.delivery_id"
        "  WHERE s.copy = 1"
        "    AND NOT EXISTS (SELECT 1 FROM outcome_history h"
        "                    WHERE h.delivery_id = s.delivery_id AND h.status = s.status"
        "                      AND h.error_code IS NOT DISTINCT FROM s.error_code"
        "                      AND coalesce(h.occurred_at, h.received_at) = s.occ)"
        "    AND (s.occurred_at IS NOT NULL OR CASE WHEN s.rn = 1 THEN d.delivery_id IS NULL"
        "          OR (d.status, d.error_code) IS DISTINCT FROM (s.status, s.error_code)"
        "        ELSE (s.prev_status, s.prev_code) IS DISTINCT FROM (s.status, s.error_code) END)"
        "  ORDER BY s.ord RETURNING 1"
        ") SELECT count(*) FROM added")
    return added


async def _set_current(conn: asyncpg.Connection) -> int:
    """Give each delivery of the batch the outcome of its history with the latest event
    time (ties: the later arrival) and the earliest ``sent_at`` any outcome gave; returns
    how many deliveries were created. A delivery already so is not written (its
    counters' triggers then have nothing to do)."""
    created: int = await conn.fetchval(
        "WITH current AS ("
        "  SELECT DISTINCT ON (h.delivery_id) h.delivery_id, h.status, h.error_code,"
        "         h.error_message, coalesce(h.occurred_at, h.received_at) AS occurred_at"
        "  FROM outcome_history h"
        "  WHERE h.delivery_id IN (SELECT delivery_id FROM outcomes_in)"
        "  ORDER BY h.delivery_id, coalesce(h.occurred_at, h.received_at) DESC, h.seq DESC"
        "), batch AS ("
        "  SELECT DISTINCT ON (delivery_id) delivery_id, campaign, schedule_task, user_id,"
        "         channel, is_test, min(sent_at) OVER (PARTITION BY delivery_id) AS sent_at"
        "  FROM outcomes_in ORDER BY delivery_id, ord"
        "), up AS ("
        "  INSERT INTO deliveries (delivery_id, campaign, schedule_task, user_id, channel,"
        "                          status, error_code, error_message, sent_at, is_test,"
        "                          occurred_at)"
        "  SELECT b.delivery_id, b.campaign, b.schedule_task, b.user_id, b.channel, c.status,"
        "         c.error_code, c.error_message, b.sent_at, b.is_test, c.occurred_at"
        "  FROM batch b JOIN current c ON c.delivery_id = b.delivery_id"
        "  ORDER BY b.delivery_id"
        "  ON CONFLICT (delivery_id) DO UPDATE SET status = EXCLUDED.status,"
        "    error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,"
        "    occurred_at = EXCLUDED.occurred_at,"
        "    sent_at = least(deliveries.sent_at, EXCLUDED.sent_at)"
        "  WHERE (deliveries.status, deliveries.error_code, deliveries.error_message,"
        "         deliveries.occurred_at, deliveries.sent_at)"
        "        IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.error_code, EXCLUDED.error_message,"
        "         EXCLUDED.occurred_at, least(deliveries.sent_at, EXCLUDED.sent_at))"
        "  RETURNING (xmax = 0) AS inserted"
        ") SELECT count(*) FILTER (WHERE inserted) FROM up")
    return created


async def _suppress(conn: asyncpg.Connection) -> int:
    """Hard bounces and dead push tokens put the user on the channel's list, dated by
    the event (F14); the earliest such event names the reason and the date, whatever
    the order they arrive in (``tracker.store.suppressions.UPSERT_TAIL``)."""
    result = await conn.execute(
        "INSERT INTO suppressions (user_id, channel, reason, since)"
        " SELECT DISTINCT ON (user_id, channel) user_id, channel,"
        "   CASE WHEN status = $1 THEN 'hard_bounce' ELSE 'token_not_registered' END,"
        f"   {_EVENT_TIME}"
        " FROM outcomes_in i WHERE status = $1 OR error_code = $2"
        f" ORDER BY user_id, channel, {_EVENT_TIME}, ord" + UPSERT_TAIL,
        int(Status.BOUNCED), TOKEN_NOT_REGISTERED)
    return int(result.rsplit(" ", 1)[1])


async def _refuse_unminted(conn: asyncpg.Connection, limit: int = 1000) -> None:
    """An outcome may create a delivery the tracker did not mint only under an id
    below MINTED_FROM: the ids above are the tracker's to hand out."""
    rows = await conn.fetch(
        "SELECT i.ord, i.delivery_id FROM outcomes_in i WHERE i.delivery_id >= $1"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.delivery_id = i.delivery_id)"
        " ORDER BY i.ord LIMIT $2", MINTED_FROM, limit)
    if rows:
        raise OutcomeConflict([
            (r["ord"], f"delivery_id {r['delivery_id']} was never minted by the tracker, and ids "
                       f"from {MINTED_FROM} up are the tracker's own; give a delivery the "
                       f"tracker did not send an id below {MINTED_FROM}")
            for r in rows])


async def _refuse_contradictions(conn: asyncpg.Connection, limit: int = 1000) -> None:
    rows = await conn.fetch(
        "SELECT i.ord, c.campaign_id, s.schedule_task_id, d.user_id, d.channel"
        " FROM outcomes_in i JOIN deliveries d ON d.delivery_id = i.delivery_id"
        " JOIN campaigns c ON c.id = d.campaign JOIN schedule_tasks s ON s.id = d.schedule_task"
        " WHERE (d.campaign, d.schedule_task, d.user_id, d.channel)"
        "       IS DISTINCT FROM (i.campaign, i.schedule_task, i.user_id, i.channel)"
        " ORDER BY i.ord LIMIT $1", limit)
    if rows:
        raise OutcomeConflict([
            (r["ord"], f"delivery_id is already stored for campaign_id {r['campaign_id']!r}, "
                       f"schedule_task_id {r['schedule_task_id']!r}, user_id {r['user_id']!r}, "
                       f"channel {CHANNEL_NAMES[Channel(r['channel'])]}; send the same values "
                       "(or check that delivery_id is right)")
            for r in rows])


class KnownDelivery(NamedTuple):
    delivery_id: int
    campaign: int
    schedule_task: int
    user_id: str
    channel: int
    is_test: bool


async def known_delivery(conn: asyncpg.Connection, delivery_id: int) -> KnownDelivery | None:
    row = await conn.fetchrow(
        "SELECT delivery_id, campaign, schedule_task, user_id, channel, is_test"
        " FROM deliveries WHERE delivery_id = $1", delivery_id)
    return KnownDelivery(*row.values()) if row else None


async def current(conn: asyncpg.Connection, delivery_id: int) -> asyncpg.Record | None:
    """A delivery's current outcome: (status, error_code, occurred_at)."""
    return await conn.fetchrow(
        "SELECT status, error_code, occurred_at FROM deliveries WHERE delivery_id = $1",
        delivery_id)


async def history(conn: asyncpg.Connection, delivery_id: int) -> list[asyncpg.Record]:
    """A delivery's outcomes in the order they happened (ties: as they were received);
    the last one is the delivery's current outcome."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT status, error_code, error_message, sent_at, received_at,"
        " coalesce(occurred_at, received_at) AS occurred_at FROM outcome_history"
        " WHERE delivery_id = $1 ORDER BY coalesce(occurred_at, received_at), seq",
        delivery_id)
    return rows
