"""The raw ingredients of report rows: what every figure query fills (Figures), for
which groups (GROUPS), and how the parts of one row are put together (merge)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

GROUPS = ("total", "task", "day")


@dataclass
class Figures:
    """Raw ingredients of one report row (one period, task or day)."""

    events: dict[tuple[int, bool], int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    users: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, kind: int, human: bool | None = None) -> int:
        if human is None:
            return self.events[(kind, True)] + self.events[(kind, False)]
        return self.events[(kind, human)]


def merge(*parts: dict[object, Figures]) -> dict[object, Figures]:
    """The Figures of several reads (counts, outcomes, users) added up per key."""
    out: dict[object, Figures] = {}
    for part in parts:
        for key, f in part.items():
            target = out.setdefault(key, Figures())
            for event, n in f.events.items():
                target.events[event] += n
            for status, n in f.outcomes.items():
                target.outcomes[status] += n
            for name, n in f.users.items():
                target.users[name] += n
    return out
