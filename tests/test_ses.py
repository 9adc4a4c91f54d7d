"""Issue 4, SES: bounce, complaint and delivery notifications, raw and through SNS."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.support import API_KEY, Service, query, scalar

FIXTURES = Path(__file__).parent / "fixtures" / "ses"

#: fixture -> (status code in deliveries, error code, suppression reason or None)
BOUNCES = {
    "bounce-Permanent-General.json": (2, "Permanent:General", "hard_bounce"),
    "bounce-Permanent-NoEmail.json": (2, "Permanent:General", "hard_bounce"),
    "bounce-Permanent-Suppressed.json": (2, "Permanent:Suppressed", "hard_bounce"),
    "bounce-Permanent-OnAccountSuppressionList.json": (2, "Permanent:Suppressed", "hard_bounce"),
    "bounce-Transient-General.json": (3, "Transient:General", None),
    "bounce-Transient-MailboxFull.json": (3, "Transient:MailboxFull", None),
    "bounce-Transient-MessageTooLarge.json": (3, "Transient:MessageTooLarge", None),
    "bounce-Transient-ContentRejected.json": (3, "Transient:ContentRejected", None),
    "bounce-Transient-AttachmentRejected.json": (3, "Transient:AttachmentRejected", None),
    "bounce-Undetermined-Undetermined.json": (3, "Undetermined:Undetermined", None),
}


def fixture(name: str, delivery_id: int | str) -> dict:
    text = (FIXTURES / name).read_text().replace("__DELIVERY_ID__", str(delivery_id))
    return json.loads(text)


def in_envelope(note: dict) -> dict:
    envelope = json.loads((FIXTURES / "sns-notification-envelope.json").read_text())
    envelope["Message"] = json.dumps(note)
    return envelope


def send_email(service: Service) -> tuple[int, str]:
    """A delivery made the real way, through POST /v1/messages: (delivery_id, user_id)."""
    user = f"ses-{uuid.uuid4().hex[:10]}"
    with service.api() as http:
        response = http.post("/v1/messages", json={
            "campaign_id": "ses-campaign", "schedule_task_id": "t1", "channel": "email",
            "user_id": user, "html": "<p>Hello</p>"})
    assert response.status_code == 200, response.text
    return int(response.json()["delivery_id"]), user


def delivery_row(service: Service, delivery_id: int):
    return query(service.dsn, "SELECT status, error_code, error_message, sent_at"
                 " FROM deliveries WHERE delivery_id = $1", delivery_id)[0]


def suppression_reason(service: Service, user: str) -> str | None:
    with service.api() as http:
        return http.get(f"/v1/suppressions/{user}", params={"channel": "email"}).json()["reason"]


@pytest.mark.parametrize("name", sorted(BOUNCES))
@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "sns"])
def test_every_bounce_subtype_maps_to_its_code(module_service: Service, name: str,
                                               wrapped: bool) -> None:
    delivery_id, user = send_email(module_service)
    note = fixture(name, delivery_id)
    with module_service.api() as http:
        response = http.post("/v1/ses", json=in_envelope(note) if wrapped else note)
    assert response.status_code == 200, response.text
    status, code, reason = BOUNCES[name]
    assert response.json()["result"] == "applied"
    assert response.json()["error_code"] == code
    row = delivery_row(module_service, delivery_id)
    assert (row["status"], row["error_code"]) == (status, code)
    diagnostic = note["bounce"]["bouncedRecipients"][0].get("diagnosticCode", "Bounced")
    assert row["error_message"] == diagnostic
    assert row["sent_at"].isoformat() == "2016-01-27T14:59:38.237000+00:00"
    assert suppression_reason(module_service, user) == reason


def test_delivery_then_bounce_supersedes_and_redelivery_changes_nothing(
        module_service: Service) -> None:
    delivery_id, user = send_email(module_service)
    with module_service.api() as http:
        assert http.post("/v1/ses", json=fixture("delivery.json", delivery_id)).json()[
            "status"] == "delivered"
        bounce = fixture("bounce-Permanent-General.json", delivery_id)
        assert http.post("/v1/ses", json=bounce).json()["changed"] is True
        assert http.post("/v1/ses", json=bounce).json()["changed"] is False
    history = query(module_service.dsn, "SELECT status, error_code FROM outcome_history"
                    " WHERE delivery_id = $1 ORDER BY seq", delivery_id)
    assert [tuple(r) for r in history] == [(1, None), (2, "Permanent:General")]
    assert suppression_reason(module_service, user) == "hard_bounce"


def test_complaint_suppresses_without_changing_the_outcome(module_service: Service) -> None:
    delivery_id, user = send_email(module_service)
    with module_service.api() as http:
        http.post("/v1/ses", json=fixture("delivery.json", delivery_id))
        response = http.post("/v1/ses", json=fixture("complaint.json", delivery_id))
    assert response.json()["suppressed"] == "complaint"
    assert delivery_row(module_service, delivery_id)["status"] == 1
    assert suppression_reason(module_service, user) == "complaint"


def test_event_publishing_finds_the_delivery_by_message_tag(module_service: Service) -> None:
    delivery_id, user = send_email(module_service)
    note = fixture("event-bounce-tagged.json", delivery_id)
    assert not any(h["name"] == "X-Tracker-Delivery" for h in note["mail"]["headers"])
    with module_service.client() as http:
        response = http.post(f"/sns/ses?key={API_KEY}", json=in_envelope(note))
    assert response.status_code == 200, response.text
    assert delivery_row(module_service, delivery_id)["status"] == 2
    assert suppression_reason(module_service, user) == "hard_bounce"


def test_subscription_confirmation_is_recorded_and_logged_not_fetched(
        module_service: Service) -> None:
    body = json.loads((FIXTURES / "sns-subscription-confirmation.json").read_text())
    with module_service.client() as http:
        response = http.post(f"/sns/ses?key={API_KEY}", content=json.dumps(body),
                             headers={"Content-Type": "text/plain; charset=UTF-8"})
    assert response.status_code == 200, response.text
    assert response.json()["subscribe_url"] == body["SubscribeURL"]
    stored = scalar(module_service.dsn, "SELECT subscribe_url FROM ses_subscriptions"
                    " WHERE message_id = $1", body["MessageId"])
    assert stored == body["SubscribeURL"]
    assert body["SubscribeURL"] in module_service.log()


def test_unknown_or_unmarked_mail_is_kept_as_ignored(module_service: Service) -> None:
    note = fixture("bounce-Permanent-General.json", 987654321987)
    unmarked = fixture("bounce-Permanent-General.json", 1)
    unmarked["mail"]["headers"] = [h for h in unmarked["mail"]["headers"]
                                   if h["name"] != "X-Tracker-Delivery"]
    before = scalar(module_service.dsn, "SELECT count(*) FROM deliveries")
    with module_service.api() as http:
        unknown = http.post("/v1/ses", json=note)
        bare = http.post("/v1/ses", json=unmarked)
    assert unknown.status_code == 200 and "unknown" in unknown.json()["result"]
    assert bare.status_code == 200 and "X-Tracker-Delivery" in bare.json()["result"]
    assert scalar(module_service.dsn, "SELECT count(*) FROM deliveries") == before
    assert scalar(module_service.dsn, "SELECT count(*) FROM ses_notifications"
                  " WHERE delivery_id = 987654321987 AND result LIKE 'ignored%'") == 1


def test_authentication(module_service: Service) -> None:
    note = fixture("delivery.json", 1)
    with module_service.client() as http:
        assert http.post("/v1/ses", json=note).status_code == 401
        assert http.post("/sns/ses", json=note).status_code == 401
        wrong = http.post("/sns/ses?key=nope", json=note)
        assert wrong.status_code == 401 and "wrong key" in wrong.json()["detail"]


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400),
    (b"[]", 422),
    (b'{"hello": "world"}', 422),
    (b'{"Type": "Surprise"}', 422),
    (b'{"Type": "Notification", "Message": 5}', 422),
    (b'{"Type": "SubscriptionConfirmation"}', 422),
    (b'{"notificationType": "Bounce", "mail": "x"}', 422),
    (b"[" * 50 + b"]" * 50, 400),
])
def test_malformed_notifications_get_a_4xx_and_store_nothing(module_service: Service,
                                                             body: bytes, status: int) -> None:
    counts = ("SELECT (SELECT count(*) FROM ses_notifications),"
              " (SELECT count(*) FROM ses_subscriptions), (SELECT count(*) FROM deliveries)")
    before = tuple(query(module_service.dsn, counts)[0])
    with module_service.api() as http:
        response = http.post("/v1/ses", content=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert tuple(query(module_service.dsn, counts)[0]) == before


@pytest.mark.parametrize("change", [
    lambda n: n["bounce"].pop("bounceType"),
    lambda n: n["bounce"].update(bounceSubType=7),
    lambda n: n["mail"].update(timestamp="last tuesday"),
    lambda n: n.pop("bounce"),
], ids=["no-bounce-type", "subtype-not-string", "bad-timestamp", "no-bounce"])
def test_broken_bounce_fields_are_refused(module_service: Service, change) -> None:
    delivery_id, _ = send_email(module_service)
    note = fixture("bounce-Permanent-General.json", delivery_id)
    change(note)
    with module_service.api() as http:
        response = http.post("/v1/ses", json=note)
    assert response.status_code == 422, response.text
    assert delivery_row(module_service, delivery_id)["status"] == 0


def test_a_rewritten_mail_carries_the_header_that_ses_bounces_are_matched_by(
        module_service: Service) -> None:
    """Send side and ingest agree: the header set by rewriting finds the delivery."""
    user = f"ses-{uuid.uuid4().hex[:10]}"
    with module_service.api() as http:
        sent = http.post("/v1/messages", json={
            "campaign_id": "ses-campaign", "schedule_task_id": "t1", "channel": "email",
            "user_id": user, "html": "<p>Hi</p>"}).json()
        header_value = sent["headers"]["X-Tracker-Delivery"]
        assert header_value == sent["delivery_id"]
        response = http.post("/v1/ses", json=fixture("bounce-Permanent-General.json",
                                                     header_value))
    assert response.status_code == 200, response.text
    assert delivery_row(module_service, int(header_value))["status"] == 2
    assert suppression_reason(module_service, user) == "hard_bounce"
