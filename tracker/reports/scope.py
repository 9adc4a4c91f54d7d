"""What a report covers: campaigns, schedule tasks, a channel; as SQL conditions, with
the parameters they take (Params) and how the transaction that reads them plans them.

The same scope is applied to rollups, deliveries and raw events, so every figure
of a report (and its CSV, docs/figures.md#f21) answers the same question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from tracker.tokens import CHANNEL_NAMES, Channel

#: the channel of an event whose delivery row is unknown: its campaign's
CHANNEL_OF_EVENT = (
    f"coalesce(d.channel, CASE c.channel WHEN '{CHANNEL_NAMES[Channel.PUSH]}' THEN"
    f" {int(Channel.PUSH)} WHEN '{CHANNEL_NAMES[Channel.LINE]}' THEN {int(Channel.LINE)}"
    f" ELSE {int(Channel.EMAIL)} END)"
)


class Params:
    """Collects query arguments and hands out their $n placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Scope:
    campaigns: tuple[int, ...] | None = None        # internal campaign ids
    schedule_tasks: tuple[int, ...] | None = None   # internal schedule task ids
    channel: int | None = None                       # 1 email, 2 push, 3 line

    def where(self, p: Params, alias: str, *, channel_sql: str | None = None) -> str:
        """AND-able conditions on a table with campaign, schedule_task, channel."""
        parts = ["true"]
        if self.campaigns is not None:
            parts.append(f"{alias}.campaign = ANY({p(list(self.campaigns))}::int[])")
        if self.schedule_tasks is not None:
            parts.append(f"{alias}.schedule_task = ANY({p(list(self.schedule_tasks))}::int[])")
        if self.channel is not None:
            parts.append(f"{channel_sql or alias + '.channel'} = {p(self.channel)}")
        return " AND ".join(parts)


async def plan_each_time(conn: asyncpg.Connection) -> None:
    """Plan report queries for their actual ids and period (this transaction only).

    asyncpg prepares statements; after five runs PostgreSQL may switch to a generic
    plan that cannot know one campaign or one month is selective, and reads every
    delivery: measured at 300+ ms per query instead of a few."""
    # and hash the (link, user) pairs of a year's click ranking in memory, not on disk;
    # one round trip for both
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan;"
                       " SET LOCAL work_mem = '64MB'")
