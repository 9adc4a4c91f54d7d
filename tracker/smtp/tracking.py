"""One message, rewritten once per recipient by the engine of ``POST /v1/messages``.

How "nothing recorded unless relayed" is kept: :meth:`Sender.prepare` mints the
ids, checks suppressions and rewrites every copy but writes nothing
(``record=False``); :func:`recorded` stores the deliveries (:meth:`Batch.record`,
one COPY) only when the block that relays the copies ends without an exception,
so a refused or unreachable upstream leaves no delivery of the message. No
transaction is open while the upstream takes the copies: a slow upstream holds
one pooled connection and nothing else (a transaction around the relay cost four
round trips a message: BEGIN, SAVEPOINT, RELEASE, COMMIT). The campaign and
schedule task rows are made before, committed, because the Sender caches their
ids. Should the recording fail after the relay, the copies are out: the handler
says so and answers 250 (asking the client to retry would send them twice).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from tracker.rewrite.send import Prepared, Recipient, Sender
from tracker.smtp.headers import TrackerHeaders
from tracker.smtp.pool import Pool
from tracker.smtp.upstream import Copy
from tracker.store import campaigns as campaign_store


@dataclass(frozen=True, slots=True)
class Tracked:
    """The copies to relay; recipients found suppressed meanwhile get none."""

    copies: list[Copy]
    suppressed: list[str]


def _recipients(fields: TrackerHeaders, addresses: list[str], mime: bytes) -> list[Recipient]:
    return [Recipient(fields.user or address, mime=mime, is_test=fields.is_test)
            for address in addresses]


def _checked(fields: TrackerHeaders, addresses: list[str]) -> frozenset[str]:
    """The users whose suppression RCPT just checked (a round trip a message saved):
    the recipients' own addresses, when they are the users (no X-Tracker-User) and
    the channel is email, the one RCPT checks. (A suppression made between RCPT and
    DATA is missed, as one made while the copies are written would be.)"""
    if fields.user is None and fields.channel == "email":
        return frozenset(addresses)
    return frozenset()


#: Campaign and task rows made (or found) through a Sender (one per server), until
#: when they are trusted to be there without asking again: rows are never deleted,
#: and ensure_schedule_task is an upsert (a write) that one message per recipient
#: would otherwise repeat.
_ensured: weakref.WeakKeyDictionary[Sender, dict[tuple[str, str, str], float]] = (
    weakref.WeakKeyDictionary())
ENSURED_SECONDS = 60.0


async def _ensure_ids(conn: asyncpg.Connection, sender: Sender,
                      fields: TrackerHeaders) -> None:
    assert fields.campaign is not None, "only tracked messages are recorded"
    ensured = _ensured.setdefault(sender, {})
    key = (fields.campaign, fields.channel, fields.task)
    now = time.monotonic()
    if ensured.get(key, 0.0) > now:
        return
    campaign = await campaign_store.ensure_campaign(conn, fields.campaign, fields.channel)
    await campaign_store.ensure_schedule_task(conn, campaign.id, fields.task)
    if len(ensured) >= 10_000:
        ensured.clear()
    ensured[key] = now + ENSURED_SECONDS


@contextlib.asynccontextmanager
async def recorded(pool: Pool, sender: Sender, fields: TrackerHeaders,
                   addresses: list[str], mime: bytes) -> AsyncIterator[Tracked]:
    """Rewrite ``mime`` for each address and record the deliveries; committed only if
    the ``async with`` body returns. RewriteError (malformed MIME) records nothing."""
    assert fields.campaign is not None, "only tracked messages are recorded"
    async with pool.acquire() as conn:
        await _ensure_ids(conn, sender, fields)
        batch = await sender.prepare(conn, campaign_id=fields.campaign,
                                     schedule_task_id=fields.task, channel=fields.channel,
                                     recipients=_recipients(fields, addresses, mime),
                                     record=False, checked=_checked(fields, addresses))
        copies: list[Copy] = []
        suppressed: list[str] = []
        for address, result in zip(addresses, batch.results(), strict=True):
            if isinstance(result, Prepared) and result.message.mime is not None:
                copies.append(Copy(address, result.message.mime))
            else:
                suppressed.append(address)
        yield Tracked(copies, suppressed)  # an exception here (not relayed) records nothing
        await batch.record(conn)


async def record_refused(pool: Pool, sender: Sender, fields: TrackerHeaders,
                         addresses: list[str]) -> None:
    """Record the recipients refused at RCPT as suppressed deliveries of the message
    (F14), once it was relayed to the others: :meth:`Sender.prepare` finds them on
    the suppression list (by address, as checked at RCPT) and records them as
    ``suppressed``, as for the API. (One lifted between RCPT and DATA would be
    recorded as prepared and never sent: a window of one SMTP transaction.)"""
    if fields.campaign is None or not addresses:
        return
    async with pool.acquire() as conn:
        await _ensure_ids(conn, sender, fields)
        await sender.prepare(conn, campaign_id=fields.campaign, schedule_task_id=fields.task,
                             channel=fields.channel,
                             recipients=[Recipient(a, is_test=fields.is_test) for a in addresses])
