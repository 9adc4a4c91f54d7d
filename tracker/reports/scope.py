"""What a report covers: campaigns, schedule tasks, a channel; as SQL conditions.

The same scope is applied to rollups, deliveries and raw events, so every figure
of a report (and its CSV, docs/figures.md#f21) answers the same question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the channel of an event whose delivery row is unknown: its campaign's
CHANNEL_OF_EVENT = (
    "coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END)"
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
