"""The campaign list (/reports) against each campaign's report, over HTTP (issue 6).

The list asks figures.users_by_group for every campaign at once; the campaign
report asks it for one. This module seeds data that makes the two paths differ if
anything is off: deliveries sent on different days (some before the period, one
after "today"), users who got two tasks of one campaign or two campaigns, an event
made before its delivery's send, and periods short (firsts read by id range) and
long (hashed), and holds every row of the list to the JSON API's figures.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support import API_KEY, Databases, Service, wait_for

TIMEZONE = "Asia/Tokyo"
BROWSER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) "
                         "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"}
TRACKING = re.compile(r'(?:href|src)="(http://127\.0\.0\.1:\d+/[oc]/[^"]+)"')
HTML = '<html><body><a href="https://shop.example/a">A</a></body></html>'
CAMPAIGNS = ("mail-a", "mail-b", "line-c")


def local_today() -> datetime:
    return datetime.now(ZoneInfo(TIMEZONE))


def send(api: httpx.Client, campaign: str, task: str, users: list[str], channel: str,
         sent_at: datetime, html: str | None = HTML, text: str | None = None) -> list[dict]:
    """Messages through the real API, then each delivered at ``sent_at``."""
    r = api.post("/v1/messages", json={
        "campaign_id": campaign, "schedule_task_id": task, "channel": channel,
        "html": html, "text": text, "recipients": [{"user_id": u} for u in users]})
    assert r.status_code == 200, r.text
    messages = r.json()
    r = api.post("/v1/outcomes", json=[
        {"delivery_id": m["delivery_id"], "campaign_id": campaign, "schedule_task_id": task,
         "user_id": m["user_id"], "channel": channel, "status": "delivered",
         "sent_at": sent_at.isoformat()} for m in messages])
    assert r.status_code < 300, r.text
    return messages


def tracking(message: dict, kind: str) -> str:
    body = message["html"] or message["text"]
    return next(u for u in re.findall(r"http://127\.0\.0\.1:\d+/[oc]/[^\s\"<]+", body)
                if f"/{kind}/" in u)


def api_report(service: Service, cid: str, first: str, last: str) -> dict:
    with service.api() as api:
        r = api.get(f"/v1/reports/campaigns/{cid}", params={"from": first, "to": last})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def list_service(databases: Databases, tmp_path_factory: pytest.TempPathFactory):
    """Three campaigns sent over two weeks, one delivery 'sent' tomorrow, hits now."""
    service = Service(databases.fresh(), tmp_path_factory.mktemp("pages_list"),
                      env={"TRACKER_TIMEZONE": TIMEZONE}).start()
    try:
        now = datetime.now(ZoneInfo("UTC"))
        with service.api() as api:
            for cid, channel in zip(CAMPAIGNS, ("email", "email", "line"), strict=True):
                r = api.put(f"/v1/campaigns/{cid}", json={"name": cid, "channel": channel,
                                                          "status": "active"})
                assert r.status_code in (200, 201), r.text
            a1 = send(api, "mail-a", "a1", [f"u{i}" for i in range(6)], "email",
                      now - timedelta(days=10))
            # u3..u5 get both tasks of mail-a: one person each, not two
            a2 = send(api, "mail-a", "a2", [f"u{i}" for i in range(3, 9)], "email", now)
            b1 = send(api, "mail-b", "b1", [f"u{i}" for i in range(4)], "email",
                      now - timedelta(days=3))
            # stamped as sent tomorrow; its open happens now, before its send
            b2 = send(api, "mail-b", "b2", ["u9"], "email", now + timedelta(days=1))
            c1 = send(api, "line-c", "c1", ["u0", "u1", "u2"], "line",
                      now - timedelta(days=1), html=None, text="Deal https://line.example/d")
        hits = [tracking(a1[0], "o"), tracking(a1[3], "o"), tracking(a2[0], "o"),
                tracking(a1[1], "c"), tracking(a2[3], "c"), tracking(b1[2], "c"),
                tracking(b2[0], "o"), tracking(c1[1], "c")]
        with service.client(headers=BROWSER) as http:
            for url in hits:
                assert http.get(url).status_code in (200, 302)

        def landed() -> bool:
            a = api_report(service, "mail-a", "2020-01-01", "2031-01-01")
            b = api_report(service, "mail-b", "2020-01-01", "2031-01-01")
            c = api_report(service, "line-c", "2020-01-01", "2031-01-01")
            return (a["opens"], a["clicks"], b["opens"], b["clicks"], c["clicks"]) == \
                (3, 2, 1, 1, 1)

        wait_for(landed, timeout=15)
        yield service
    finally:
        service.stop()


def periods() -> list[tuple[str, str]]:
    today = local_today().date()

    def day(n: int) -> str:
        return (today + timedelta(days=n)).isoformat()

    return [
        (day(0), day(0)),        # today's sends and hits
        (day(-6), day(0)),       # a week: a1 sent before it, b1 and c1 inside
        (day(-12), day(-5)),     # a1 delivered inside, its hits (now) after the period
        (day(-30), day(1)),      # everything, b2 included (sent tomorrow)
        (day(1), day(1)),        # b2 alone: its open came before the period (raw check)
        ("2020-01-01", "2031-01-01"),  # longer than RANGED_DAYS: firsts hashed, not ranged
    ]


def list_rows(http: httpx.Client, first: str, last: str) -> dict[str, dict[str, str]]:
    page = http.get("/reports", params={"from": first, "to": last})
    assert page.status_code == 200, page.text
    rows = re.findall(r'<tr data-campaign="([^"]+)">(.*?)</tr>', page.text, re.S)
    return {cid: dict(re.findall(r'data-key="([a-z_]+)" data-value="([^"]*)"', row))
            for cid, row in rows}


def as_value(raw: str) -> Any:
    if raw == "null":
        return None
    return float(raw) if "." in raw or "e" in raw else int(raw)


@pytest.mark.slow
def test_list_figures_equal_each_campaign_report_for_every_period(
        list_service: Service) -> None:
    seen_values = set()
    with list_service.client() as http:
        r = http.post("/reports/login", data={"api_key": API_KEY, "next": "/reports"})
        assert r.status_code == 303, r.text
        for first, last in periods():
            rows = list_rows(http, first, last)
            assert set(rows) == set(CAMPAIGNS), (first, last)
            for cid in CAMPAIGNS:
                expected = api_report(list_service, cid, first, last)
                for key in ("deliveries", "open_rate", "click_rate"):
                    shown = as_value(rows[cid][key])
                    assert shown == expected[key], (first, last, cid, key, shown, expected)
                    seen_values.add((cid, key, shown))
    # the data is not degenerate: some figures are non-zero rates, some not measurable
    assert ("mail-a", "open_rate", 2 / 9) in seen_values  # u0, u3 of 9 people in a month
    assert ("line-c", "open_rate", None) in seen_values
    assert ("mail-a", "deliveries", 12) in seen_values  # 12 deliveries, 9 people


def test_an_event_before_its_send_counts_only_inside_its_window(
        list_service: Service) -> None:
    """b2 was stamped as sent tomorrow and opened now: in tomorrow's period it is a
    delivered person who opened nothing in the period (F4)."""
    tomorrow = (local_today().date() + timedelta(days=1)).isoformat()
    with list_service.client() as http:
        http.post("/reports/login", data={"api_key": API_KEY, "next": "/reports"})
        rows = list_rows(http, tomorrow, tomorrow)
    assert as_value(rows["mail-b"]["deliveries"]) == 1
    assert as_value(rows["mail-b"]["open_rate"]) == 0
    assert as_value(rows["mail-a"]["deliveries"]) == 0
