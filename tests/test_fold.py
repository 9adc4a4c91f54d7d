"""Landing's one fold (sql/067, tracker_fold_events) and the rebuild that gives it the
whole log (tracker_refold_counts): the same counters either way, whatever the
session's time zone, months of DST included."""

from __future__ import annotations

import asyncpg
import pytest

from tests.reports_support import MACHINE_OPEN, SCANNER, Data, at, flags
from tests.support import run
from tracker.events import Kind

COUNTERS = {
    "report_event_hours": "campaign, hour, schedule_task, channel, kind, human",
    "report_agent_hours": "campaign, hour, schedule_task, channel, ua_id, kind, human",
}


async def _counters(dsn: str, zone: str | None = None) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(dsn)
    try:
        if zone:
            await conn.execute(f"SET TIME ZONE '{zone}'")
            await conn.execute("SELECT tracker_refold_counts()")
        return {table: [tuple(r) for r in await conn.fetch(
                    f"SELECT {key}, n FROM {table} WHERE n <> 0 ORDER BY {key}")]
                for table, key in COUNTERS.items()}
    finally:
        await conn.close()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_rebuild_equals_landing_in_any_session_time_zone(database: str, zone: str) -> None:
    """Events on both sides of every month end from February to May (New York changes
    its clocks on 8 March; a month added in local time would end its UTC month hours
    early and leave the last days of March uncounted)."""
    data = Data(database)
    data.campaign("c1")
    data.campaign("p1", channel="push")
    email = data.deliveries([{"campaign": "c1", "user": f"u{i}", "sent_at": at("2026-02-01 00:00")}
                             for i in range(4)])
    test_send = data.delivery(campaign="c1", user="tester", sent_at=at("2026-02-01 00:00"),
                              is_test=True)
    push = data.delivery(campaign="p1", user="u1", channel="push",
                         sent_at=at("2026-02-01 00:00"))
    events = []
    for month_end in ("2026-02-28 23:30", "2026-03-31 23:59", "2026-03-29 00:30",
                      "2026-04-30 23:00", "2026-05-01 00:00"):
        t = at(month_end)
        events += [(email[0], t, Kind.OPEN, flags()), (email[1], t, Kind.OPEN,
                                                        flags(MACHINE_OPEN)),
                   (email[2], t, Kind.CLICK, flags(), "https://a.example/"),
                   (email[3], t, Kind.CLICK, flags(SCANNER), "https://a.example/"),
                   (push, t, Kind.OPEN, flags(head=True)), (test_send, t, Kind.OPEN, flags())]
    data.events(events)
    landed = run(_counters(database))
    assert sum(n for *_, n in landed["report_event_hours"]) == 25  # the test send's left out
    assert run(_counters(database, zone)) == landed
