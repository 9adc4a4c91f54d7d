"""Left only for tracker.reports.clicks, which still reads ``fig.hourly`` and
``fig.edge_events``: their home is tracker.reports.hours. Delete this module once
clicks.py imports them from there (issue 17: one home per concept).

The figures' SQL lives by concept: periods (period geometry), hours (the
whole-hours-plus-edges reader), counts (events and outcomes), people (unique users),
devices, measurable (whether opens and conversions can be measured).
"""

from __future__ import annotations

from tracker.reports.hours import edge_events, hourly

__all__ = ["edge_events", "hourly"]
