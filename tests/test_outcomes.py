"""Issue 4, outcomes: POST /v1/outcomes end to end over HTTP against real PostgreSQL."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest

from tests.support import API_KEY, Service, query, run, scalar, shared
from tracker import errorcodes

SENT = "2024-05-01T09:00:00+09:00"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


_next_id = [10_000_000 + (uuid.uuid4().int % 1_000_000) * 1000]


def new_id() -> int:
    """Delivery ids for outcomes of deliveries the tracker never rewrote (push, LINE)."""
    _next_id[0] += 1
    return _next_id[0]


def outcome(delivery_id: int, campaign: str, user: str, status: str = "delivered", *,
            task: str = "t1", channel: str = "email", code: str | None = None,
            message: str | None = None, sent_at: str = SENT,
            occurred_at: str | None = None) -> dict:
    row = {"delivery_id": str(delivery_id), "campaign_id": campaign, "schedule_task_id": task,
           "user_id": user, "channel": channel, "status": status, "sent_at": sent_at}
    if occurred_at is not None:
        row["occurred_at"] = occurred_at
    if code is not None:
        row["error_code"] = code
    if message is not None:
        row["error_message"] = message
    return row


def post(service: Service, body: object, *, ndjson: bool = False):
    with service.api() as http:
        if ndjson:
            content = "\n".join(json.dumps(r) for r in body).encode()
            return http.post("/v1/outcomes", content=content,
                             headers={"Content-Type": "application/x-ndjson"})
        return http.post("/v1/outcomes", json=body)


def stored_state(dsn: str) -> tuple:
    """Everything an outcome batch can change, to prove a refused batch changed nothing."""
    return (
        scalar(dsn, "SELECT count(*) FROM deliveries"),
        scalar(dsn, "SELECT coalesce(sum(status), 0) FROM deliveries"),
        scalar(dsn, "SELECT count(*) FROM outcome_history"),
        scalar(dsn, "SELECT count(*) FROM suppressions"),
        scalar(dsn, "SELECT count(*) FROM campaigns"),
        scalar(dsn, "SELECT count(*) FROM schedule_tasks"),
    )


def test_faq_example_targets_delivered_bounces_give_soft_bounces(module_service: Service) -> None:
    """FAQ: targets 1000, delivered 700, bounces 100 => soft bounces 200 (F6)."""
    campaign = uid("faq")
    soft_codes = ["Transient:General", "Transient:MailboxFull", "Transient:ContentRejected",
                  "Transient:MessageTooLarge"]
    rows = []
    for i in range(1000):
        if i < 700:
            rows.append(outcome(new_id(), campaign, f"{campaign}-u{i}"))
        elif i < 800:
            rows.append(outcome(new_id(), campaign, f"{campaign}-u{i}", "bounced",
                                code="Permanent:General", message="Bounced",
                                occurred_at="2024-05-01T09:05:00+09:00"))
        else:
            rows.append(outcome(new_id(), campaign, f"{campaign}-u{i}", "soft_bounced",
                                code=soft_codes[i % 4], message="Bounced"))
    first = post(module_service, rows[:500])
    second = post(module_service, rows[500:], ndjson=True)
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert first.json()["created_deliveries"] + second.json()["created_deliveries"] == 1000
    figures = query(module_service.dsn,
                    "SELECT count(*) AS targets,"
                    " count(*) FILTER (WHERE d.status = 1) AS delivered,"
                    " count(*) FILTER (WHERE d.status = 2) AS bounces,"
                    " count(*) FILTER (WHERE d.status = 3) AS soft_bounces"
                    " FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
                    " WHERE c.campaign_id = $1 AND d.status BETWEEN 1 AND 4", campaign)[0]
    assert dict(figures) == {"targets": 1000, "delivered": 700, "bounces": 100,
                             "soft_bounces": 200}
    # the campaign was created for the sender on first sight, with its channel
    assert scalar(module_service.dsn, "SELECT channel FROM campaigns WHERE campaign_id = $1",
                  campaign) == "email"
    # hard bounces went on the suppression list, soft bounces never
    with module_service.api() as http:
        hard = http.get(f"/v1/suppressions/{campaign}-u750").json()
        soft = http.get(f"/v1/suppressions/{campaign}-u900").json()
        delivered = http.get(f"/v1/suppressions/{campaign}-u1", params={"channel": "email"}).json()
    assert hard["suppressed"] is True and hard["reason"] == "hard_bounce"
    # dated by the bounce (its occurred_at), not by the send
    assert hard["channel"] == "email" and hard["since"].startswith("2024-05-01T00:05:00")
    assert soft["suppressed"] is False and soft["reason"] is None
    assert delivered == {"user_id": f"{campaign}-u1", "suppressed": False, "reason": None,
                         "since": None, "channel": "email", "channels": []}


def test_hard_bounce_in_a_suppresses_in_b_and_is_not_a_failure_of_b(
        module_service: Service) -> None:
    campaign_a, campaign_b, user, other = uid("A"), uid("B"), uid("user"), uid("other")
    response = post(module_service, [
        outcome(new_id(), campaign_a, user, "bounced", code="Permanent:Suppressed",
                message="Bounced")])
    assert response.status_code == 200 and response.json()["suppressed"] == 1
    with module_service.api() as http:
        answer = http.get(f"/v1/suppressions/{user}", params={"channel": "email"}).json()
        push = http.get(f"/v1/suppressions/{user}", params={"channel": "push"}).json()
        sent = http.post("/v1/messages", json={
            "campaign_id": campaign_b, "schedule_task_id": "t1", "channel": "email",
            "recipients": [{"user_id": user}, {"user_id": other}],
            "html": "<p><a href='https://example.com/'>x</a></p>"})
    assert answer["suppressed"] is True and answer["reason"] == "hard_bounce"
    assert push["suppressed"] is False  # suppression is per channel
    # the store function the send side uses
    from tracker.store.suppressions import suppressed_among

    async def among() -> dict:
        import asyncpg
        conn = await asyncpg.connect(module_service.dsn)
        try:
            return await suppressed_among(conn, [user, other], 1)
        finally:
            await conn.close()

    assert run(among()) == {user: "hard_bounce"}
    assert sent.status_code == 200, sent.text
    by_user = {r["user_id"]: r for r in sent.json()}
    assert by_user[user]["suppressed"] is True and by_user[user]["reason"] == "hard_bounce"
    assert not by_user[other].get("suppressed")
    # B: the suppressed user is recorded as suppressed, not as a failure (F14)
    rows = query(module_service.dsn,
                 "SELECT d.user_id, d.status FROM deliveries d JOIN campaigns c"
                 " ON c.id = d.campaign WHERE c.campaign_id = $1", campaign_b)
    assert {r["user_id"]: r["status"] for r in rows} == {user: 5, other: 0}
    fail_count = scalar(module_service.dsn,
                        "SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
                        " WHERE c.campaign_id = $1 AND d.status IN (2, 3, 4)", campaign_b)
    assert fail_count == 0


def test_duplicates_count_once_and_later_outcomes_supersede_with_history(
        module_service: Service) -> None:
    campaign, user, delivery = uid("dup"), uid("u"), new_id()
    delivered = outcome(delivery, campaign, user)
    first = post(module_service, [delivered])
    again = post(module_service, [delivered, delivered])
    assert first.json()["changed"] == 1 and first.json()["created_deliveries"] == 1
    assert again.json() == {"received": 2, "changed": 0, "unchanged": 2,
                            "created_deliveries": 0, "suppressed": 0}
    bounce = outcome(delivery, campaign, user, "bounced", code="Permanent:General",
                     message="smtp; 550 5.1.1 user unknown")
    later = post(module_service, [bounce])
    assert later.json()["changed"] == 1
    post(module_service, [bounce])  # SNS-style redelivery: nothing new
    row = query(module_service.dsn, "SELECT status, error_code, error_message FROM deliveries"
                " WHERE delivery_id = $1", delivery)[0]
    assert tuple(row) == (2, "Permanent:General", "smtp; 550 5.1.1 user unknown")
    history = query(module_service.dsn, "SELECT status, error_code FROM outcome_history"
                    " WHERE delivery_id = $1 ORDER BY seq", delivery)
    assert [tuple(r) for r in history] == [(1, None), (2, "Permanent:General")]
    # within one batch, order decides: the last outcome of a delivery is its state
    other = new_id()
    batch = [outcome(other, campaign, user, "soft_bounced", code="Transient:MailboxFull"),
             outcome(other, campaign, user, "soft_bounced", code="Transient:MailboxFull"),
             outcome(other, campaign, user)]
    assert post(module_service, batch).json()["changed"] == 2
    assert scalar(module_service.dsn, "SELECT status FROM deliveries WHERE delivery_id = $1",
                  other) == 1
    assert scalar(module_service.dsn, "SELECT count(*) FROM outcome_history"
                  " WHERE delivery_id = $1", other) == 2


def test_outcome_for_a_rewritten_delivery_updates_it(module_service: Service) -> None:
    campaign, user = uid("rw"), uid("u")
    with module_service.api() as http:
        sent = http.post("/v1/messages", json={
            "campaign_id": campaign, "schedule_task_id": "t9", "channel": "email",
            "user_id": user, "html": "<p>hi</p>"})
    assert sent.status_code == 200, sent.text
    delivery = int(sent.json()["delivery_id"])
    assert post(module_service, [dict(outcome(delivery, campaign, user, task="t9"),
                                      delivery_id=delivery)]).status_code == 200
    row = query(module_service.dsn, "SELECT status, sent_at, has_html FROM deliveries"
                " WHERE delivery_id = $1", delivery)[0]
    assert row["status"] == 1 and row["has_html"] is True
    assert row["sent_at"].isoformat() == "2024-05-01T00:00:00+00:00"
    # the same delivery claimed for another user is refused, and nothing changes
    before = stored_state(module_service.dsn)
    wrong = post(module_service, [outcome(new_id(), campaign, user),
                                  outcome(delivery, campaign, "someone-else", task="t9")])
    assert wrong.status_code == 422
    assert [r["index"] for r in wrong.json()["detail"]["rows"]] == [1]
    assert "already stored" in wrong.json()["detail"]["rows"][0]["error"]
    assert stored_state(module_service.dsn) == before


def test_push_token_not_registered_suppresses_push_only(module_service: Service) -> None:
    campaign, user = uid("push"), uid("u")
    response = post(module_service, [outcome(
        new_id(), campaign, user, "failed", channel="push",
        code="messaging/registration-token-not-registered",
        message="Requested entity was not found.")])
    assert response.json()["suppressed"] == 1
    with module_service.api() as http:
        answer = http.get(f"/v1/suppressions/{user}").json()
        other_failure = post(module_service, [outcome(
            new_id(), campaign, uid("u"), "failed", channel="push",
            code="messaging/internal-error")])
    assert (answer["suppressed"], answer["reason"], answer["channel"]) == (
        True, "token_not_registered", "push")
    assert other_failure.json()["suppressed"] == 0


BAD_ROWS = [
    ({"delivery_id": "abc"}, "delivery_id"),
    ({"delivery_id": "-5"}, "delivery_id"),
    ({"delivery_id": 1.5}, "delivery_id"),
    ({"delivery_id": True}, "delivery_id"),
    ({"delivery_id": 0}, "delivery_id"),
    ({"delivery_id": "99999999999999999999"}, "delivery_id"),
    ({"status": "opened"}, "status must be one of"),
    ({"status": "suppressed"}, "POST /v1/messages"),
    ({"channel": "sms"}, "channel must be one of"),
    ({"sent_at": "yesterday"}, "ISO 8601"),
    ({"sent_at": "2024-05-01T09:00:00"}, "no time zone"),
    ({"sent_at": "2024-02-30T09:00:00Z"}, "ISO 8601"),
    ({"sent_at": 1714521600}, "ISO 8601"),
    ({"campaign_id": ""}, "campaign_id must be a non-empty string"),
    ({"user_id": ["u"]}, "user_id must be a non-empty string"),
    ({"user_id": "x" * 201}, "user_id must be at most"),
    ({"error_code": 5}, "error_code must be a string"),
    ({"error_message": "m" * 4001}, "error_message must be a string of at most 4000"),
    ({"is_test": "yes"}, "is_test must be true or false"),
    ({"colour": "blue"}, "unknown field(s) colour"),
    ({"status": "bounced", "error_code": "Transient:MailboxFull"}, "use status soft_bounced"),
    ({"status": "soft_bounced", "error_code": "Permanent:General"}, "use status bounced"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_ROWS, ids=[str(c) for c, _ in BAD_ROWS])
def test_each_kind_of_bad_row_refuses_the_batch(module_service: Service, change: dict,
                                                expected: str) -> None:
    campaign = uid("bad")
    good = outcome(new_id(), campaign, uid("u"))
    bad = {**outcome(new_id(), campaign, uid("u")), **change}
    before = stored_state(module_service.dsn)
    response = post(module_service, [good, good, bad])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_outcomes"
    assert "nothing was stored" in body["detail"]["message"]
    assert [r["index"] for r in body["detail"]["rows"]] == [2]
    assert expected in body["detail"]["rows"][0]["error"]
    assert stored_state(module_service.dsn) == before


def test_missing_fields_and_every_bad_row_are_listed(module_service: Service) -> None:
    before = stored_state(module_service.dsn)
    rows = [outcome(new_id(), uid("c"), uid("u")), {"delivery_id": "7"}, "not an object",
            outcome(new_id(), uid("c"), uid("u"), "weird")]
    response = post(module_service, rows)
    assert response.status_code == 422
    listed = {r["index"]: r["error"] for r in response.json()["detail"]["rows"]}
    assert set(listed) == {1, 2, 3}
    assert "missing required field(s): campaign_id, schedule_task_id, user_id" in listed[1]
    assert "must be a JSON object" in listed[2]
    assert stored_state(module_service.dsn) == before


def test_conflicting_rows_for_one_delivery_in_a_batch(module_service: Service) -> None:
    campaign, delivery = uid("c"), new_id()
    response = post(module_service, [outcome(delivery, campaign, "a"),
                                     outcome(delivery, campaign, "b")])
    assert response.status_code == 422
    assert response.json()["detail"]["rows"][0]["index"] == 1


@pytest.mark.parametrize(("content", "status", "error"), [
    (b"this is not json", 400, "bad_json"),
    (b"[1, 2", 400, "bad_json"),
    (b"", 400, "empty_body"),
    (b"[]", 422, "invalid"),
    (b"\xff\xfe[]", 400, "bad_encoding"),
    (b"[" * 100 + b"]" * 100, 400, "too_deep"),
    (b'{"delivery_id": "1"}\n{oops}\n', 400, "bad_json"),
    (b'"just a string"', 422, "invalid_outcomes"),
])
def test_malformed_bodies_get_a_4xx_and_store_nothing(module_service: Service, content: bytes,
                                                      status: int, error: str) -> None:
    before = stored_state(module_service.dsn)
    with module_service.api() as http:
        response = http.post("/v1/outcomes", content=content)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]
    assert stored_state(module_service.dsn) == before


def test_huge_body_is_refused_with_413_before_it_is_read(module_service: Service) -> None:
    parts = urlsplit(module_service.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n[")
        answer = b""
        while b"body_too_large" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


def test_outcomes_need_the_api_key(module_service: Service) -> None:
    with module_service.client() as http:
        response = http.post("/v1/outcomes", json=[outcome(new_id(), "c", "u")])
    assert response.status_code == 401


def test_error_code_table_covers_every_faq_code() -> None:
    """Every code the seed FAQ lists (first word of each table row) is in the table."""
    faq = shared("seeds", "000_80d4f00f6a8f19be.txt").read_text()  # skips when missing
    section = faq[faq.index("バウンスでのエラー"):faq.index("配信したキャンペーンのログ")]
    codes = {line.split(" ", 1)[0] for line in section.splitlines()
             if re.fullmatch(r"[A-Za-z][A-Za-z_/:-]*", line.split(" ", 1)[0])}
    codes -= {"FCM"}
    assert len(codes) == 16, codes
    assert codes <= set(errorcodes.BY_CODE), codes - set(errorcodes.BY_CODE)
    assert errorcodes.classify("Permanent:General") == ("bounce", "hard")
    assert errorcodes.classify("Transient:MailboxFull") == ("bounce", "soft")
    assert errorcodes.classify("messaging/invalid-payload") == ("push", None)
    assert errorcodes.classify("HandlebarsError") == ("other", None)
    assert errorcodes.classify("SOMETHING_NEW") == ("other", None)
    assert errorcodes.lookup("SOMETHING_NEW").code == "SOMETHING_NEW"
    assert all(e.meaning_en and e.meaning_ja for e in errorcodes.ERROR_CODES)


@pytest.mark.slow
def test_a_hundred_thousand_outcomes_go_in_with_copy(module_service: Service) -> None:
    campaign = uid("big")
    start = new_id()
    _next_id[0] += 100_000
    lines = "\n".join(json.dumps(outcome(start + i, campaign, f"{campaign}-{i}", task=f"t{i % 7}"))
                      for i in range(100_000)).encode()
    with module_service.api() as http:
        began = time.perf_counter()
        response = http.post("/v1/outcomes", content=lines, timeout=120)
        elapsed = time.perf_counter() - began
    assert response.status_code == 200, response.text
    assert response.json()["created_deliveries"] == 100_000
    print(f"\n100,000 outcomes ({len(lines) / 1e6:.1f} MB NDJSON) stored in {elapsed:.2f} s")
    assert elapsed < 60
    assert scalar(module_service.dsn, "SELECT count(*) FROM deliveries d JOIN campaigns c"
                  " ON c.id = d.campaign WHERE c.campaign_id = $1", campaign) == 100_000
