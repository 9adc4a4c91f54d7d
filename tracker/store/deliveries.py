"""Deliveries: one message to one user, with the facts reports need about it.

A delivery keeps its own user id, channel and campaign (docs/figures.md#f20: deleting the
audience list used for a send changes no report)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import asyncpg

#: The first delivery id the tracker mints (sql/059). Ids below it belong to senders,
#: who may report outcomes for deliveries the tracker did not mint; an outcome may
#: not create a delivery at or above it, so minted ids can never be taken early.
MINTED_FROM = 10**12


class Status(IntEnum):
    """``deliveries.status`` (and ``outcome_history.status``); SQL names them
    tracker_status_<name>() (sql/066). Stored: never renumber."""

    PREPARED = 0  #: minted at send time, no outcome yet
    DELIVERED = 1
    BOUNCED = 2
    SOFT_BOUNCED = 3
    FAILED = 4
    SUPPRESSED = 5  #: refused before sending: the user is on the suppression list


#: the outcome statuses by their API names (every status but PREPARED)
STATUS_CODES = {s.name.lower(): int(s) for s in Status if s is not Status.PREPARED}


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    delivery_id: int
    campaign: int
    schedule_task: int
    channel: int
    user_id: str
    has_html: bool | None
    is_test: bool


async def record_prepared(conn: asyncpg.Connection, deliveries: list[PreparedDelivery]) -> None:
    """Store deliveries minted at send time (before any outcome), in one COPY."""
    if not deliveries:
        return
    await conn.copy_records_to_table(
        "deliveries",
        records=[(d.delivery_id, d.campaign, d.schedule_task, d.channel, d.user_id, d.has_html,
                  d.is_test) for d in deliveries],
        columns=("delivery_id", "campaign", "schedule_task", "channel", "user_id", "has_html",
                 "is_test"),
    )
