"""The campaign list's counters (sql/055) when the shipper and the outcome API change
the same deliveries at the same time.

The cells count a delivery with its first events only once both are known: the
shipper's trigger reads the delivery, the outcome trigger reads the firsts. Without
the shared lock each would read the other's change as not yet committed and the
first opens would be missed. Here both orders are played with two real connections;
the counters must then equal a rebuild from scratch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tracker.store import effects, rollups
from tracker.store.events import EVENT_COLUMNS

BASE = datetime(2026, 5, 4, 9, tzinfo=UTC)
SNAPSHOT = ("SELECT * FROM report_delivery_cells WHERE n <> 0 ORDER BY 1, 2, 3, 4",
            "SELECT * FROM report_campaign_repeats ORDER BY 1, 2")


async def _setup(conn: asyncpg.Connection) -> tuple[int, int]:
    campaign = await conn.fetchval(
        "INSERT INTO campaigns (campaign_id, channel) VALUES ('c', 'email') RETURNING id")
    task = await conn.fetchval("INSERT INTO schedule_tasks (campaign, schedule_task_id)"
                               " VALUES ($1, 't') RETURNING id", campaign)
    # prepared at send time, outcomes still to come; u1 is reached twice
    await conn.copy_records_to_table("deliveries", records=[
        (did, campaign, task, BASE, 1, 0, True, user)
        for did, user in ((1, "u1"), (2, "u1"), (3, "u2"))], columns=(
        "delivery_id", "campaign", "schedule_task", "created_at", "channel", "status",
        "has_html", "user_id"))
    await conn.execute("SELECT tracker_ensure_month_partition($1)", BASE.date())
    return campaign, task


async def _land_opens(conn: asyncpg.Connection, campaign: int, task: int) -> None:
    rows = [(BASE + timedelta(minutes=30 + did), did, 0, 0, campaign, task, 1, 0, 0)
            for did in (1, 2, 3)]
    await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)
    await effects.apply(conn, rows)


async def _deliver(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE deliveries SET status = 1, sent_at = $1", BASE)


async def _race(dsn: str, first_writer: str) -> None:
    one, two = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        campaign, task = await _setup(one)
        writers = {"shipper": lambda conn: _land_opens(conn, campaign, task),
                   "outcomes": _deliver}
        second_writer = "outcomes" if first_writer == "shipper" else "shipper"
        tx = one.transaction()
        await tx.start()
        await writers[first_writer](one)

        async def second() -> None:
            async with two.transaction():
                await writers[second_writer](two)

        other = asyncio.create_task(second())
        await asyncio.sleep(0.5)
        assert not other.done(), "the second writer waits for the first one's commit"
        await tx.commit()
        await other
        kept = [await one.fetch(q) for q in SNAPSHOT]
        cells = {(r["figure"], r["n"]) for r in kept[0]}
        assert (0, 3) in cells and (2, 3) in cells, "three deliveries, three first opens"
        assert len(kept[1]) == 2, "u1's two deliveries are repeats"
        await rollups.rebuild(one)
        assert [await one.fetch(q) for q in SNAPSHOT] == kept
    finally:
        await one.close()
        await two.close()


@pytest.mark.parametrize("first_writer", ["shipper", "outcomes"])
def test_counters_stay_exact_when_shipper_and_outcomes_race(database, first_writer) -> None:
    asyncio.run(_race(database, first_writer))
