"""Issue 4, conversions (F11, F16): credited to the user's last click within the window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import Service, event_count, mint_url, query, scalar, wait_for
from tracker.events import Kind

#: a person's browser: clicks by HTTP libraries are judged bots and earn no credit
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
           " Chrome/124.0.0.0 Safari/537.36")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def click(service: Service, campaign: str, user: str) -> int:
    """A real click through /c/, landed; returns its delivery id."""
    url = mint_url(service, "click", url="https://shop.example/item", campaign=campaign,
                   user=user)
    before = event_count(service.dsn, Kind.CLICK)
    with service.client() as http:
        assert http.get(url, headers={"User-Agent": BROWSER}).status_code == 302
    wait_for(lambda: event_count(service.dsn, Kind.CLICK) == before + 1)
    return scalar(service.dsn, "SELECT delivery_id FROM deliveries WHERE user_id = $1"
                  " ORDER BY created_at DESC LIMIT 1", user)


def at(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).isoformat()


def post(service: Service, body: object):
    with service.api() as http:
        return http.post("/v1/conversions", json=body)


def stored(service: Service) -> tuple:
    return (scalar(service.dsn, "SELECT count(*) FROM conversions"),
            event_count(service.dsn, Kind.CONVERSION))


def test_conversion_goes_to_the_last_click_in_the_window(module_service: Service) -> None:
    user, first, last = uid("u"), uid("A"), uid("B")
    click(module_service, first, user)
    delivery = click(module_service, last, user)
    ts = at(timedelta(minutes=5))
    response = post(module_service, [{"user_id": user, "name": "buy", "ts": ts, "value": 1200}])
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "attributed": 1,
                               "unattributed": 0}
    row = query(module_service.dsn, "SELECT c.delivery_id, k.campaign_id, c.value, c.ts"
                " FROM conversions c JOIN campaigns k ON k.id = c.campaign"
                " WHERE c.user_id = $1", user)[0]
    assert (row["delivery_id"], row["campaign_id"], row["value"]) == (delivery, last, 1200)
    assert row["ts"] == datetime.fromisoformat(ts)
    logged = query(module_service.dsn, 'SELECT campaign_id, delivery_id, "timestamp"'
                   " FROM message_event_log WHERE event_name = 'message_conversion'"
                   " AND user_id = $1", user)
    assert [(r["campaign_id"], r["delivery_id"]) for r in logged] == [(last, delivery)]
    assert logged[0]["timestamp"] == datetime.fromisoformat(ts)
    # the same conversion again is kept once
    again = post(module_service, [{"user_id": user, "name": "buy", "ts": ts, "value": 1200}])
    assert again.json()["duplicates"] == 1 and again.json()["attributed"] == 0
    assert scalar(module_service.dsn, "SELECT count(*) FROM events WHERE kind = 5"
                  " AND delivery_id = $1", delivery) == 1


def test_outside_the_default_48_hours_or_before_any_click_stays_raw(
        module_service: Service) -> None:
    old_user, late_user, stranger = uid("old"), uid("late"), uid("nobody")
    delivery = click(module_service, uid("C"), old_user)
    # that click happened 49 hours ago (test setup: move it back in time)
    query(module_service.dsn, "SELECT tracker_ensure_month_partition((now() - interval"
          " '49 hours')::date)")
    query(module_service.dsn, "UPDATE events SET ts = ts - interval '49 hours'"
          " WHERE delivery_id = $1", delivery)
    click(module_service, uid("D"), late_user)
    before = stored(module_service)
    response = post(module_service, [
        {"user_id": old_user, "name": "buy", "ts": at(timedelta(0))},
        {"user_id": late_user, "name": "buy", "ts": at(timedelta(hours=-1))},  # before the click
        {"user_id": stranger, "name": "buy", "ts": at(timedelta(0))},
    ])
    assert response.json()["attributed"] == 0 and response.json()["unattributed"] == 3
    assert stored(module_service) == (before[0] + 3, before[1])
    assert scalar(module_service.dsn, "SELECT count(*) FROM conversions WHERE user_id = ANY($1)"
                  " AND delivery_id IS NULL", [old_user, late_user, stranger]) == 3
    # 47 hours is inside the default window
    query(module_service.dsn, "UPDATE events SET ts = ts + interval '2 hours'"
          " WHERE delivery_id = $1", delivery)
    inside = post(module_service, [{"user_id": old_user, "name": "buy",
                                    "ts": at(timedelta(seconds=1))}])
    assert inside.json()["attributed"] == 1


def test_campaign_settings_override_name_and_window(module_service: Service) -> None:
    campaign, user = uid("S"), uid("u")
    with module_service.api() as http:
        assert http.put(f"/v1/campaigns/{campaign}", json={
            "name": "signups", "channel": "email",
            "settings": {"conversion": {"name": "signup", "window_hours": 1}}}).status_code == 200
    click(module_service, campaign, user)
    response = post(module_service, [
        {"user_id": user, "name": "buy", "ts": at(timedelta(minutes=10))},  # not its event
        {"user_id": user, "name": "signup", "ts": at(timedelta(hours=2))},  # window passed
        {"user_id": user, "name": "signup", "ts": at(timedelta(minutes=30))},
    ])
    assert response.json()["attributed"] == 1
    rows = query(module_service.dsn, "SELECT name, delivery_id IS NOT NULL AS credited"
                 " FROM conversions WHERE user_id = $1 ORDER BY ts", user)
    assert [(r["name"], r["credited"]) for r in rows] == [
        ("buy", False), ("signup", True), ("signup", False)]


BAD = [
    ({"name": "buy", "ts": "2024-05-01T00:00:00Z"}, "missing required field(s): user_id"),
    ({"user_id": "u", "name": "", "ts": "2024-05-01T00:00:00Z"}, "name must be"),
    ({"user_id": "u", "name": "buy", "ts": "2024-05-01"}, "no time zone"),
    ({"user_id": "u", "name": "buy", "ts": "soon"}, "ISO 8601"),
    ({"user_id": "u", "name": "buy", "ts": "2999-01-01T00:00:00Z"}, "in the future"),
    ({"user_id": "u", "name": "buy", "ts": "2024-05-01T00:00:00Z", "value": "12"},
     "value must be a number"),
    ({"user_id": "u", "name": "buy", "ts": "2024-05-01T00:00:00Z", "value": True},
     "value must be a number"),
    ({"user_id": {"id": 1}, "name": "buy", "ts": "2024-05-01T00:00:00Z"}, "user_id must be"),
    ({"user_id": "u", "name": "buy", "ts": "2024-05-01T00:00:00Z", "price": 3},
     "unknown field(s) price"),
    ("a string", "must be a JSON object"),
]


@pytest.mark.parametrize(("row", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_rows_refuse_the_batch(module_service: Service, row, expected: str) -> None:
    good = {"user_id": uid("u"), "name": "buy", "ts": "2024-05-01T00:00:00Z"}
    before = stored(module_service)
    response = post(module_service, [good, row])
    assert response.status_code == 422, response.text
    listed = response.json()["detail"]["rows"]
    assert [r["index"] for r in listed] == [1] and expected in listed[0]["error"]
    assert stored(module_service) == before


@pytest.mark.parametrize(("content", "status"), [
    (b"nope", 400), (b"{}", 422), (b"[]", 422), (b"[" * 40 + b"]" * 40, 400), (b"", 400),
])
def test_malformed_bodies(module_service: Service, content: bytes, status: int) -> None:
    before = stored(module_service)
    with module_service.api() as http:
        response = http.post("/v1/conversions", content=content)
        unauthenticated = module_service.client().post("/v1/conversions", content=b"[]")
    assert response.status_code == status and response.json()["detail"]
    assert unauthenticated.status_code == 401
    assert stored(module_service) == before


def test_bot_clicks_earn_no_credit(module_service: Service) -> None:
    user = uid("u")
    url = mint_url(module_service, "click", url="https://shop.example/", campaign=uid("bot"),
                   user=user)
    before = event_count(module_service.dsn, Kind.CLICK)
    with module_service.client() as http:  # python-httpx: an HTTP library, judged a bot
        assert http.get(url).status_code == 302
    wait_for(lambda: event_count(module_service.dsn, Kind.CLICK) == before + 1)
    response = post(module_service, [{"user_id": user, "name": "buy",
                                      "ts": at(timedelta(minutes=1))}])
    assert response.json()["attributed"] == 0
