"""Delivery ids the tracker mints and ids senders choose never meet: senders name
deliveries the tracker did not send below MINTED_FROM, and an outcome can never
create one at or above it, where the sequence hands ids out (issue "Hostile
traffic": ids in the next blocks, taken early by outcomes, broke bulk sends and
``tracker token``)."""

from __future__ import annotations

import re

from tests.support import Service, scalar
from tracker.store.deliveries import MINTED_FROM


def _outcome(delivery_id: int) -> dict:
    return {"delivery_id": delivery_id, "campaign_id": "ids", "schedule_task_id": "t",
            "user_id": f"sender-{delivery_id}", "channel": "push", "status": "delivered",
            "sent_at": "2026-11-01T00:00:00Z"}


def test_outcomes_cannot_take_the_ids_the_tracker_will_mint(module_service: Service) -> None:
    with module_service.api() as api:
        # a sender's own id, below the minted range: a delivery the tracker did not send
        assert api.post("/v1/outcomes", json=[_outcome(42)]).status_code == 200
        # the next blocks the tracker would mint: refused, nothing stored
        ahead = [_outcome(MINTED_FROM + n) for n in (0, 1, 999, 1000, 5000)]
        refused = api.post("/v1/outcomes", json=ahead)
        assert refused.status_code == 422, refused.text
        assert "never minted by the tracker" in refused.text
        assert scalar(module_service.dsn,
                      "SELECT count(*) FROM deliveries WHERE delivery_id >= $1", MINTED_FROM) == 0
        # so the tracker mints those ids itself, for a thousand recipients at once
        sent = api.post("/v1/messages", json={
            "campaign_id": "ids", "schedule_task_id": "t", "channel": "push",
            "recipients": [{"user_id": f"r{i}", "text": "hi"} for i in range(1000)]})
        assert sent.status_code == 200, sent.text[:300]
        ids = [int(m) for m in re.findall(r'"delivery_id":\s*"?(\d+)', sent.text)]
        assert len(ids) == 1000 and min(ids) >= MINTED_FROM and len(set(ids)) == 1000
        # and an outcome for a minted delivery is the sender's to report
        minted = dict(_outcome(ids[0]), user_id="r0")
        assert api.post("/v1/outcomes", json=[minted]).status_code == 200
    token = module_service.cli("token", "open", "--campaign", "ids", "--task", "t",
                               "--user", "cli")
    assert token.returncode == 0 and "/o/" in token.stdout.decode()
