"""Issue 4, unsubscribe (F17): the page, RFC 8058 one-click, resubscribe, and the
suppression list they change once the events land."""

from __future__ import annotations

import uuid

import pytest

from tests.support import Service, event_count, mint_url, query, scalar, wait_for
from tracker.events import Kind

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def user() -> str:
    return f"unsub-{uuid.uuid4().hex[:10]}"


def reason(service: Service, user_id: str) -> str | None:
    return scalar(service.dsn, "SELECT reason FROM suppressions WHERE user_id = $1 AND channel = 1",
                  user_id)


def assert_safe_page(response, status: int = 200) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in response.text and "style=" not in response.text


def test_get_shows_a_confirm_page_and_changes_nothing(module_service: Service) -> None:
    u = user()
    url = mint_url(module_service, "unsubscribe", user=u)
    before = event_count(module_service.dsn)
    unsubscribes = event_count(module_service.dsn, Kind.UNSUBSCRIBE)
    with module_service.client() as http:
        english = http.get(url)
        japanese = http.get(url, headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"})
        prefers_en = http.get(url, headers={"Accept-Language": "ja;q=0.4, en-GB;q=0.8"})
        head = http.head(url)
        css = http.get(f"{module_service.base_url}/u/page.css")
    assert_safe_page(english)
    assert '<html lang="en">' in english.text and "Do you want to stop" in english.text
    assert '<form method="post">' in english.text and 'value="unsubscribe"' in english.text
    assert_safe_page(japanese)
    assert '<html lang="ja">' in japanese.text and "配信を停止する" in japanese.text
    assert '<html lang="en">' in prefers_en.text
    assert head.status_code == 200 and head.content == b""
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # a mail scanner fetching the link unsubscribes nobody
    with module_service.client() as http:
        http.get(mint_url(module_service, "open", user=u))  # a later event, to wait on
    wait_for(lambda: event_count(module_service.dsn) == before + 1)
    assert event_count(module_service.dsn, Kind.UNSUBSCRIBE) == unsubscribes
    assert reason(module_service, u) is None


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_at_once(module_service: Service, multipart: bool) -> None:
    u = user()
    url = mint_url(module_service, "unsubscribe", user=u)
    before = event_count(module_service.dsn, Kind.UNSUBSCRIBE)
    with module_service.client() as http:
        if multipart:
            response = http.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        else:
            response = http.post(url, data=ONE_CLICK)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    wait_for(lambda: reason(module_service, u) == "unsubscribe")
    assert event_count(module_service.dsn, Kind.UNSUBSCRIBE) == before + 1
    with module_service.api() as http:
        answer = http.get(f"/v1/suppressions/{u}").json()
    assert (answer["suppressed"], answer["reason"], answer["channel"]) == (
        True, "unsubscribe", "email")
    # suppressed since the unsubscribe itself, to the microsecond
    assert scalar(module_service.dsn, "SELECT s.since = e.ts FROM suppressions s"
                  " JOIN deliveries d ON d.user_id = s.user_id"
                  " JOIN events e ON e.delivery_id = d.delivery_id AND e.kind = $2"
                  " WHERE s.user_id = $1", u, int(Kind.UNSUBSCRIBE)) is True


def test_form_unsubscribe_then_resubscribe(module_service: Service) -> None:
    u = user()
    url = mint_url(module_service, "unsubscribe", user=u)
    with module_service.client() as http:
        done = http.post(url, data={"action": "unsubscribe"},
                         headers={"Accept-Language": "ja"})
        assert_safe_page(done)
        assert "配信を停止しました" in done.text and 'value="resubscribe"' in done.text
        wait_for(lambda: reason(module_service, u) == "unsubscribe")
        # coming back later, the page offers to resubscribe
        again = http.get(url)
        assert 'value="resubscribe"' in again.text
        back = http.post(url, data={"action": "resubscribe"})
        assert_safe_page(back)
        assert "subscribed again" in back.text and 'value="unsubscribe"' in back.text
    wait_for(lambda: reason(module_service, u) is None)
    names = [r["event_name"] for r in query(
        module_service.dsn, 'SELECT event_name FROM message_event_log WHERE user_id = $1'
        ' AND event_name IN (\'message_unsubscribe\', \'message_subscribe\')'
        ' ORDER BY "timestamp"', u)]
    assert names == ["message_unsubscribe", "message_subscribe"]


def test_resubscribe_never_lifts_a_hard_bounce(module_service: Service) -> None:
    u = user()
    url = mint_url(module_service, "unsubscribe", user=u, campaign="hb", task="t1")
    delivery_id = scalar(module_service.dsn, "SELECT delivery_id FROM deliveries"
                         " WHERE user_id = $1", u)
    with module_service.api() as http:
        bounced = http.post("/v1/outcomes", json=[{
            "delivery_id": delivery_id, "campaign_id": "hb", "schedule_task_id": "t1",
            "user_id": u, "channel": "email", "status": "bounced",
            "error_code": "Permanent:General", "sent_at": "2024-05-01T00:00:00Z"}])
    assert bounced.status_code == 200, bounced.text
    before = event_count(module_service.dsn, Kind.SUBSCRIBE)
    with module_service.client() as http:
        assert http.post(url, data=ONE_CLICK).status_code == 200
        assert http.post(url, data={"action": "resubscribe"}).status_code == 200
    wait_for(lambda: event_count(module_service.dsn, Kind.SUBSCRIBE) == before + 1)
    assert reason(module_service, u) == "hard_bounce"


@pytest.mark.parametrize("token", ["nonsense", "a.bbbbbbbbbbbbbbbbbbbbbb", "<script>x</script>"])
def test_bad_token_gets_a_404_page_and_records_nothing(module_service: Service,
                                                       token: str) -> None:
    with module_service.client() as http:
        shown = http.get(f"{module_service.base_url}/u/{token}")
        posted = http.post(f"{module_service.base_url}/u/{token}", data=ONE_CLICK)
    for response in (shown, posted):
        assert_safe_page(response, 404)
        assert "not valid" in response.text and "script>x" not in response.text


def test_tampered_and_test_tokens_record_nothing(module_service: Service) -> None:
    u, tester = user(), user()
    real = mint_url(module_service, "unsubscribe", user=u)
    test_url = mint_url(module_service, "unsubscribe", user=tester, is_test=True)
    tampered = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
    before = event_count(module_service.dsn)
    with module_service.client() as http:
        assert http.post(tampered, data=ONE_CLICK).status_code == 404
        assert_safe_page(http.get(test_url))
        assert http.post(test_url, data=ONE_CLICK).status_code == 200
        assert http.post(test_url, data={"action": "unsubscribe"}).status_code == 200
        http.post(real, data=ONE_CLICK)  # a real one after them, to wait on
    wait_for(lambda: reason(module_service, u) == "unsubscribe")
    assert event_count(module_service.dsn) == before + 1
    assert reason(module_service, tester) is None


@pytest.mark.parametrize(("data", "content"), [
    ({"action": "delete"}, None),
    ({"List-Unsubscribe": "One-Click", "action": "resubscribe"}, None),
    (None, b"\xff\xfe" * 10),
    (None, b"x" * 10_000),
])
def test_bad_posts_get_a_4xx_and_record_nothing(module_service: Service, data, content) -> None:
    u = user()
    url = mint_url(module_service, "unsubscribe", user=u)
    before = event_count(module_service.dsn)
    unsubscribes = event_count(module_service.dsn, Kind.UNSUBSCRIBE)
    with module_service.client() as http:
        response = http.post(url, data=data, content=content,
                             headers={} if data else {
                                 "Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= response.status_code < 500
        http.get(mint_url(module_service, "open", user=u))  # a later event, to wait on
    wait_for(lambda: event_count(module_service.dsn) == before + 1)
    assert event_count(module_service.dsn, Kind.UNSUBSCRIBE) == unsubscribes
    assert reason(module_service, u) is None
