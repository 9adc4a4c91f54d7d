"""The thin async layer around the engine: ids, suppression and delivery records.

Database work is done in bulk, once per batch of recipients, never per link:
one query for suppressions, one ``nextval`` per 1000 delivery ids, one COPY for
the deliveries. The CPU-bound rewriting in between holds no connection, and
yields to the event loop every few messages so a bulk request never stalls the
pixel and redirect traffic served by the same worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg

from tracker.domains import REFRESH_SECONDS, domain_of
from tracker.rewrite.engine import MessageIds, Rewriter, Rewritten
from tracker.rewrite.links import TRACKING_FULL, TRACKING_OFF, UTM, tracking_mode, utm_params
from tracker.store import campaigns as campaign_store
from tracker.store.deliveries import PreparedDelivery, Status, record_prepared
from tracker.store.suppressions import suppressed_among
from tracker.tokens import CHANNELS_BY_NAME, Channel

#: Campaign settings (UTM) are re-read at most this often per process.
CAMPAIGN_TTL_SECONDS = 5.0
#: Messages rewritten between two yields to the event loop (~10 ms of work).
YIELD_EVERY = 32

#: A suppressed recipient's delivery row: id, campaign, task, channel, user, has_html,
#: is_test, status (``sent_at`` is added when it is recorded).
_SuppressedRow = tuple[int, int, int, int, str, bool, bool, int]


@dataclass(slots=True)
class Recipient:
    """One message to send: a user and the body to rewrite for them.

    Give ``html`` and/or ``text``, or ``mime`` (a whole message as bytes)."""

    user_id: str
    html: str | None = None
    text: str | None = None
    mime: bytes | None = None
    is_test: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Suppressed:
    """A recipient on the suppression list: recorded as suppressed, nothing rewritten."""

    user_id: str
    delivery_id: int
    reason: str


@dataclass(slots=True)
class Prepared:
    user_id: str
    message: Rewritten


Result = Prepared | Suppressed


@contextlib.asynccontextmanager
async def _connection(db: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


class Sender:
    """Per-process state for sending: the rewriter, delivery id blocks and a short
    cache of campaign and schedule task ids (they never change once made)."""

    def __init__(self, rewriter: Rewriter) -> None:
        self.rewriter = rewriter
        self.delivery_ids = campaign_store.DeliveryIds()
        self._campaigns: dict[str, tuple[float, campaign_store.Campaign]] = {}
        self._tasks: dict[tuple[int, str], int] = {}
        self._domains_until = 0.0

    async def _campaign(self, conn: asyncpg.Connection, campaign_id: str,
                        channel: str) -> campaign_store.Campaign:
        now = time.monotonic()
        cached = self._campaigns.get(campaign_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        campaign = await campaign_store.ensure_campaign(conn, campaign_id, channel)
        self._campaigns[campaign_id] = (now + CAMPAIGN_TTL_SECONDS, campaign)
        return campaign

    async def _tracking_domains(self, conn: asyncpg.Connection) -> None:
        """Every configured tracking domain, re-read at most every REFRESH_SECONDS:
        links to any of them are the tracker's own and never wrapped. The campaign's
        own domain is always current (it comes with the campaign)."""
        now = time.monotonic()
        if now >= self._domains_until:
            domains = await campaign_store.tracking_domains(conn)
            self.rewriter.set_tracking_domains(frozenset(domains))
            self._domains_until = now + REFRESH_SECONDS

    async def _task(self, conn: asyncpg.Connection, campaign: int, task_id: str) -> int:
        key = (campaign, task_id)
        found = self._tasks.get(key)
        if found is None:
            found = self._tasks[key] = await campaign_store.ensure_schedule_task(
                conn, campaign, task_id)
        return found

    async def prepare(self, db: asyncpg.Pool | asyncpg.Connection, *, campaign_id: str,
                      schedule_task_id: str, channel: str,
                      recipients: list[Recipient], record: bool = True,
                      checked: frozenset[str] = frozenset()) -> Batch:
        """Mint ids, check suppressions and record every delivery; the messages are
        then rewritten one by one as :meth:`Batch.results` is iterated. With
        ``record=False`` nothing is written yet: the caller records the deliveries
        by :meth:`Batch.record` once the messages are out (the SMTP relay records
        only what its upstream took, with no transaction open meanwhile). Users in
        ``checked`` were just found off the suppression list by the caller (the
        relay, at RCPT) and are not looked up again.

        Why lazily: 10,000 copies of a 100 KB newsletter are a gigabyte; streamed
        out as they are made, a bulk request holds one message at a time. What is
        recorded does not depend on the rewriting (an email HTML body always gets
        its pixel), except for MIME input, which is rewritten here, before anything
        is recorded, so that a message that cannot be read (RewriteError) records
        nothing."""
        channel_code = CHANNELS_BY_NAME[channel]
        async with _connection(db) as conn:
            campaign = await self._campaign(conn, campaign_id, channel)
            task = await self._task(conn, campaign.id, schedule_task_id)
            await self._tracking_domains(conn)
            users = list({r.user_id: None for r in recipients if r.user_id not in checked})
            suppressed = await suppressed_among(conn, users, channel_code) if users else {}
            ids = await self.delivery_ids.mint_many(conn, len(recipients))
        tracking = tracking_mode(campaign.settings)
        batch = Batch(self.rewriter, campaign.id, task, channel_code,
                      utm_params(campaign.settings), tracking, domain_of(campaign.settings))
        prepared: list[PreparedDelivery] = []
        suppressed_rows: list[_SuppressedRow] = []
        for index, (recipient, delivery_id) in enumerate(zip(recipients, ids, strict=True)):
            reason = suppressed.get(recipient.user_id)
            batch.plans.append((recipient, delivery_id, reason))
            if reason is not None:
                suppressed_rows.append((delivery_id, campaign.id, task, channel_code,
                                        recipient.user_id, False, recipient.is_test,
                                        int(Status.SUPPRESSED)))
                continue
            if recipient.mime is not None:
                message = batch.rewrite(recipient, delivery_id, as_json=False)
                batch.eager[index] = message
                has_html = message.has_pixel
                if index % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)
            else:
                has_html = (channel_code == Channel.EMAIL and recipient.html is not None
                            and tracking != TRACKING_OFF)
            prepared.append(PreparedDelivery(delivery_id, campaign.id, task, channel_code,
                                             recipient.user_id, has_html=has_html,
                                             is_test=recipient.is_test))
        batch.unrecorded = (prepared, suppressed_rows)
        if record:
            await batch.record(db)
        return batch

    async def send(self, db: asyncpg.Pool | asyncpg.Connection, *, campaign_id: str,
                   schedule_task_id: str, channel: str,
                   recipients: list[Recipient], as_json: bool = False) -> list[Result]:
        """:meth:`prepare`, then every result in a list (order of ``recipients``)."""
        batch = await self.prepare(db, campaign_id=campaign_id,
                                   schedule_task_id=schedule_task_id, channel=channel,
                                   recipients=recipients)
        results: list[Result] = []
        for index, result in enumerate(batch.results(as_json=as_json)):
            results.append(result)
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return results


class Batch:
    """Recorded deliveries whose messages are made on demand, in order."""

    def __init__(self, rewriter: Rewriter, campaign: int, task: int, channel: int,
                 utm: UTM, tracking: str = TRACKING_FULL,
                 tracking_domain: str | None = None) -> None:
        self.rewriter = rewriter
        self.tracking = tracking
        self.tracking_domain = tracking_domain
        self.campaign = campaign
        self.task = task
        self.channel = channel
        self.utm = utm
        self.plans: list[tuple[Recipient, int, str | None]] = []
        self.eager: dict[int, Rewritten] = {}
        #: the delivery rows :meth:`record` stores: prepared, suppressed
        self.unrecorded: tuple[list[PreparedDelivery], list[_SuppressedRow]] = ([], [])

    async def record(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        """Store the deliveries :meth:`Sender.prepare` made, all or none (a COPY
        alone is; both kinds take a transaction)."""
        prepared, suppressed = self.unrecorded
        self.unrecorded = ([], [])
        async with _connection(db) as conn:
            if prepared and suppressed:
                async with conn.transaction():
                    await record_prepared(conn, prepared)
                    await _record_suppressed(conn, suppressed)
            else:
                await record_prepared(conn, prepared)
                await _record_suppressed(conn, suppressed)

    def __len__(self) -> int:
        return len(self.plans)

    def rewrite(self, recipient: Recipient, delivery_id: int, *, as_json: bool) -> Rewritten:
        ids = MessageIds(delivery_id, self.campaign, self.task, self.channel, recipient.is_test,
                         self.tracking, self.tracking_domain)
        if recipient.mime is not None:
            return self.rewriter.rewrite_mime(ids, recipient.mime, self.utm)
        return self.rewriter.rewrite(ids, html=recipient.html, text=recipient.text,
                                     utm=self.utm, headers=recipient.headers, as_json=as_json)

    def results(self, *, as_json: bool = False) -> Iterator[Result]:
        """One result per recipient, rewriting each message only when reached."""
        for index, (recipient, delivery_id, reason) in enumerate(self.plans):
            if reason is not None:
                yield Suppressed(recipient.user_id, delivery_id, reason)
                continue
            message = self.eager.get(index)
            if message is None:
                message = self.rewrite(recipient, delivery_id, as_json=as_json)
            yield Prepared(recipient.user_id, message)


async def _record_suppressed(conn: asyncpg.Connection, rows: list[_SuppressedRow]) -> None:
    """Suppressed recipients are deliveries too (F14: reported as ``suppressed``, not
    as failures), sent "now" with status suppressed."""
    if not rows:
        return
    now = await conn.fetchval("SELECT now()")
    await conn.copy_records_to_table(
        "deliveries", records=[(*row, now) for row in rows],
        columns=("delivery_id", "campaign", "schedule_task", "channel", "user_id", "has_html",
                 "is_test", "status", "sent_at"))
