"""A minted delivery id that a sender already used (an outcome for a delivery the
tracker never minted, under the sender's own id) is skipped, never a 500
(found by schemathesis)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support import SECRET_KEYS, Service, scalar
from tracker.rewrite.engine import Rewriter
from tracker.rewrite.send import Recipient, Sender
from tracker.store import campaigns
from tracker.tokens import TokenCodec


def test_an_id_a_sender_already_used_is_minted_again(
        module_service: Service) -> None:
    async def scenario() -> tuple[list[int], int]:
        sender = Sender(Rewriter(TokenCodec(SECRET_KEYS.split(",")), module_service.base_url))
        conn = await asyncpg.connect(module_service.dsn)
        try:
            campaign = await campaigns.ensure_campaign(conn, "ids", "push")
            task = await campaigns.ensure_schedule_task(conn, campaign.id, "t")
            reserved = await sender.delivery_ids.mint(conn)  # this process holds a block
            # the sender's own id, inside that block, arrived through an outcome
            inserted = await conn.execute(
                "INSERT INTO deliveries (delivery_id, campaign, schedule_task, channel, user_id,"
                " status) VALUES ($1, $2, $3, 2, 'other', 1)", reserved + 1, campaign.id, task)
            assert inserted == "INSERT 0 1"
            batch = await sender.prepare(conn, campaign_id="ids", schedule_task_id="t",
                                         channel="push",
                                         recipients=[Recipient("late", text="hi")])
            return [plan[1] for plan in batch.plans], reserved + 1
        finally:
            await conn.close()

    ids, taken = asyncio.run(scenario())
    assert ids and taken not in ids
    assert scalar(module_service.dsn, "SELECT user_id FROM deliveries WHERE delivery_id = $1",
                  ids[0]) == "late"
