"""Per-campaign tracking modes (issue 8, privacy): ``full`` (the default),
``anonymous`` (opens and clicks counted, never linked to a user) and ``off`` (no
link rewritten, no pixel; unsubscribing still works)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tests.support import SECRET_KEYS, Service, query, wait_for
from tracker.rewrite.links import ANONYMOUS_ID_BASE
from tracker.tokens import Purpose, TokenCodec

CODEC = TokenCodec(SECRET_KEYS.split(","))
HTML = ('<html><body><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a>'
        ' <a href="{{unsubscribe_url}}">stop</a></body></html>')


def _send(service: Service, campaign: str, mode: str | None) -> dict:
    settings = {} if mode is None else {"tracking": mode}
    with service.api() as http:
        assert http.put(f"/v1/campaigns/{campaign}",
                        json={"channel": "email", "settings": settings}).status_code == 200
        response = http.post("/v1/messages", json={
            "campaign_id": campaign, "schedule_task_id": "t", "user_id": f"{campaign}-user",
            "channel": "email", "html": HTML})
    assert response.status_code == 200, response.text
    return response.json()


def _tokens(html: str, path: str) -> list[str]:
    return re.findall(rf"/{path}/([A-Za-z0-9_\-.]+)", html)


def test_an_unknown_mode_is_refused(module_service: Service) -> None:
    with module_service.api() as http:
        response = http.put("/v1/campaigns/bad-mode", json={"settings": {"tracking": "some"}})
    assert response.status_code == 422
    assert "full, anonymous, off" in response.json()["detail"]


def test_anonymous_counts_opens_and_clicks_without_linking_them(module_service: Service) -> None:
    sent = _send(module_service, "anon", "anonymous")
    delivery_id = int(sent["delivery_id"])
    (click,) = _tokens(sent["html"], "c")
    (pixel,) = _tokens(sent["html"], "o")
    unsubscribe = sent["headers"]["List-Unsubscribe"].rsplit("/", 1)[1].rstrip(">")
    anonymous = CODEC.verify(Purpose.CLICK, click).delivery_id
    assert anonymous >= ANONYMOUS_ID_BASE
    assert CODEC.verify(Purpose.OPEN, pixel).delivery_id == anonymous
    # unsubscribing must still reach the right person
    assert CODEC.verify(Purpose.UNSUBSCRIBE, unsubscribe).delivery_id == delivery_id
    with module_service.client() as http:
        assert http.get(f"/o/{pixel}").status_code == 200
        assert http.get(f"/c/{click}").status_code == 302
    def landed() -> list:
        rows = query(module_service.dsn, "SELECT delivery_id FROM events WHERE campaign ="
                     " (SELECT id FROM campaigns WHERE campaign_id = 'anon')")
        return rows if len(rows) == 2 else []

    assert {r["delivery_id"] for r in wait_for(landed)} == {anonymous}
    assert query(module_service.dsn, "SELECT 1 FROM deliveries WHERE delivery_id = $1",
                 anonymous) == []
    today = datetime.now(UTC).date().isoformat()
    with module_service.api() as http:
        report = http.get("/v1/reports/campaigns/anon",
                          params={"from": today, "to": today, "include_bots": "true"}).json()
    assert (report["opens"], report["clicks"]) == (1, 1)
    assert (report["open_users"], report["click_users"]) == (0, 0)


def test_off_rewrites_nothing_but_the_unsubscribe_link(module_service: Service) -> None:
    sent = _send(module_service, "untracked", "off")
    unsubscribe = sent["headers"]["List-Unsubscribe"][1:-1]
    assert sent["html"] == HTML.replace("{{unsubscribe_url}}", unsubscribe)
    assert _tokens(sent["html"], "o") == [] and _tokens(sent["html"], "c") == []
    has_html = query(module_service.dsn, "SELECT has_html FROM deliveries WHERE delivery_id = $1",
                     int(sent["delivery_id"]))[0]["has_html"]
    assert has_html is False  # no pixel went out: opens are not measurable (F8)


def test_full_is_the_default(module_service: Service) -> None:
    sent = _send(module_service, "default-mode", None)
    (click,) = _tokens(sent["html"], "c")
    assert CODEC.verify(Purpose.CLICK, click).delivery_id == int(sent["delivery_id"])
