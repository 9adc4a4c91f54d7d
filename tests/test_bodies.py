"""JSON that PostgreSQL cannot store (NUL, unpaired surrogates) is refused with a
clear 400 on every endpoint, and nothing is stored; found by schemathesis."""

from __future__ import annotations

import pytest

from tests.support import Service, scalar

UNSTORABLE = [r'"a\u0000b"', r'"\ud83d alone"', r'"\ude00"']


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_unstorable_text_is_refused_everywhere(module_service: Service, bad: str) -> None:
    with module_service.api() as http:
        put = http.put("/v1/campaigns/c-bodies", content='{"name": ' + bad + "}")
        messages = http.post("/v1/messages", content=(
            '{"campaign_id": "c-bodies", "schedule_task_id": "t", "user_id": ' + bad + "}"))
        outcomes = http.post("/v1/outcomes", content='[{"user_id": ' + bad + "}]")
    for response in (put, messages, outcomes):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "bad_text"
        assert "not storable" in response.json()["detail"]
    assert scalar(module_service.dsn,
                  "SELECT count(*) FROM campaigns WHERE campaign_id = 'c-bodies'") == 0


def test_escaped_pairs_and_escaped_backslashes_are_fine(module_service: Service) -> None:
    with module_service.api() as http:
        response = http.put("/v1/campaigns/c-emoji",
                            content=r'{"name": "sale \ud83d\ude00 \\u0000 literally"}')
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "sale \U0001f600 \\u0000 literally"


def test_a_json_object_where_a_channel_name_belongs_is_a_422(module_service: Service) -> None:
    with module_service.api() as http:
        messages = http.post("/v1/messages", json={
            "campaign_id": "c", "schedule_task_id": "t", "user_id": "u", "channel": {}})
        outcomes = http.post("/v1/outcomes", json=[{
            "delivery_id": "1000", "campaign_id": "c", "schedule_task_id": "t", "user_id": "u",
            "channel": {}, "status": "delivered", "sent_at": "2026-01-01T00:00:00Z"}])
    assert messages.status_code == 422 and "channel" in messages.text
    assert outcomes.status_code == 422 and "channel" in outcomes.text
