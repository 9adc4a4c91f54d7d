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

from tracker.store import effects, outcomes, rollups
from tracker.store.deliveries import Status
from tracker.store.events import EVENT_COLUMNS, us_from_ts

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
    await effects.apply(conn, [(us_from_ts(r[0]), *r[1:]) for r in rows])


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


class _SlowSuppressions(asyncpg.Connection):
    """The outcome API's connection, pausing before it writes suppressions: by then its
    deliveries trigger holds the counters' lock, and the shipper lands meanwhile."""

    async def execute(self, query: str, *args, **kwargs):
        if query.startswith("INSERT INTO suppressions"):
            await asyncio.sleep(0.8)
        return await super().execute(query, *args, **kwargs)


async def _unsubscribe_during_bounce(dsn: str) -> None:
    setup = await asyncpg.connect(dsn)
    outcome_conn = await asyncpg.connect(dsn, connection_class=_SlowSuppressions)
    shipper_conn = await asyncpg.connect(dsn)
    try:
        campaign, task = await _setup(setup)
        await setup.execute("UPDATE deliveries SET status = 1, sent_at = $1"
                            " WHERE delivery_id = 2", BASE)
        bounce = outcomes.ResolvedOutcome(1, campaign, task, "u1", 1, int(Status.BOUNCED),
                                          None, None, BASE)
        # the same user unsubscribes (suppressions row) and first opens (counters)
        rows = [(BASE + timedelta(minutes=5), 2, 0, 0, campaign, task, 3, 0, 0),
                (BASE + timedelta(minutes=6), 2, 0, 0, campaign, task, 1, 0, 0)]

        async def ship() -> None:
            await asyncio.sleep(0.3)
            async with shipper_conn.transaction():
                await shipper_conn.copy_records_to_table("events", records=rows,
                                                         columns=EVENT_COLUMNS)
                await effects.apply(shipper_conn,
                                    [(us_from_ts(r[0]), *r[1:]) for r in rows])

        await asyncio.wait_for(asyncio.gather(
            outcomes.ingest_resolved(outcome_conn, [bounce]), ship()), 30)
        assert await setup.fetchval("SELECT count(*) FROM events") == 2
        assert await setup.fetchval("SELECT status FROM deliveries WHERE delivery_id = 1") == 2
    finally:
        for conn in (setup, outcome_conn, shipper_conn):
            await conn.close()


def test_an_unsubscribe_landing_during_a_bounce_does_not_deadlock(database) -> None:
    """A review found it: the shipper wrote the suppressions row of an unsubscribe, then
    waited for the counters' lock in the firsts trigger, while the outcome API held
    that lock and waited for the suppressions row. The shipper now takes the lock
    before suppressions when its batch has (un)subscriptions."""
    asyncio.run(_unsubscribe_during_bounce(database))


NO_FIRSTS = ("first_open = NULL, first_human_open = NULL, first_click = NULL,"
             " first_human_click = NULL, first_conversion = NULL")


async def _firsts_removed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        campaign, task = await _setup(conn)
        await _deliver(conn)
        await _land_opens(conn, campaign, task)
        # firsts are columns of deliveries (sql/064): clearing them is deleting them
        await conn.execute(f"UPDATE deliveries SET {NO_FIRSTS} WHERE delivery_id = 2")
        kept = [await conn.fetch(q) for q in SNAPSHOT]
        await conn.execute("DELETE FROM events WHERE delivery_id = 2")
        await rollups.rebuild(conn)  # firsts now from events alone: delivery 2 has none
        assert [await conn.fetch(q) for q in SNAPSHOT] == kept
        await conn.execute(f"UPDATE deliveries SET {NO_FIRSTS}")
        assert not await conn.fetch("SELECT 1 FROM report_delivery_cells"
                                    " WHERE figure > 0 AND n <> 0")
        assert not await conn.fetch("SELECT 1 FROM report_campaign_repeats"
                                    " WHERE first_open IS NOT NULL")
    finally:
        await conn.close()


def test_deleting_or_truncating_firsts_takes_them_off_the_counters(database) -> None:
    asyncio.run(_firsts_removed(database))
