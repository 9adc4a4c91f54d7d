"""The report pages in a real browser (Debian's chromium driven by Playwright).

Against the real service seeded through the real API and real hits: sign in (a
wrong key is refused), open a campaign, change the period (a preset and a custom
range longer than a year), check the figures on the page equal the JSON API's,
download a CSV with a campaign filter, and save a screenshot of each page under
test-output/screenshots/. The browser also proves what HTTP tests cannot: no
script runs from a campaign name, no request leaves 127.0.0.1, and the
Content-Security-Policy blocks nothing the pages need.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support import API_KEY, ROOT, Databases, Service
from tests.test_pages import TIMEZONE, XSS, seed

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-output" / "screenshots"

pytestmark = [
    pytest.mark.slow,  # drives a real browser
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium "
                              "package (.ci/run does) to run the browser tests"),
]


@pytest.fixture(scope="module")
def service(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(databases.fresh(), tmp_path_factory.mktemp("browser"),
                      env={"TRACKER_TIMEZONE": TIMEZONE}).start()
    try:
        seed(started)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Watch:
    """Everything that must not happen on a report page, collected while browsing."""

    def __init__(self, page, base_url: str) -> None:
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.csp: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: None if r.url.startswith((base_url, "data:"))
                else self.foreign.append(r.url))
        page.on("console", lambda m: self.csp.append(m.text)
                if "Content Security Policy" in m.text else None)

    def clean(self) -> None:
        assert self.dialogs == [], f"a script ran: {self.dialogs}"
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert self.csp == [], f"blocked by the CSP: {self.csp}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def shown_figures(page) -> dict[str, object]:
    """data-key -> value of every headline card on the page (first one wins)."""
    out: dict[str, object] = {}
    for key, raw in page.eval_on_selector_all(
            ".card[data-key]", "els => els.map(e => [e.dataset.key, e.dataset.value])"):
        if key not in out:
            out[key] = None if raw == "null" else (float(raw) if "." in raw else int(raw))
    return out


def api(service: Service, path: str, **params: str) -> dict:
    with service.api() as http:
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def check_equal(page, expected: dict) -> None:
    shown = shown_figures(page)
    assert len(shown) >= 15
    for key, value in shown.items():
        assert value == expected[key], (key, value, expected[key])
    card = page.locator('.card[data-key="deliveries"] .value').first
    assert card.inner_text() == f"{expected['deliveries']:,}"


def local_today():
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def test_a_marketer_signs_in_reads_a_campaign_and_downloads_a_filtered_csv(
        service: Service, browser, tmp_path: Path) -> None:
    context = browser.new_context(locale="en-US", accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(page, service.base_url)

    # not signed in: the sign-in form, with 401
    response = page.goto(service.base_url + "/reports")
    assert response.status == 401
    page.fill("#api_key", "not-the-key")
    with page.expect_response(lambda r: r.url.endswith("/reports/login")) as refused:
        page.click("button[type=submit]")
    assert refused.value.status == 401
    assert "not right" in page.locator(".alert").inner_text()
    shot(page, "sign-in-refused")
    assert not [c for c in context.cookies() if c["name"] == "tracker_session"]

    page.fill("#api_key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_url("**/reports")
    cookie = next(c for c in context.cookies() if c["name"] == "tracker_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.locator("tr[data-campaign]").count() == 3
    xss_name = page.locator('tr[data-campaign="xss"] td.name a').inner_text()
    assert xss_name == XSS  # shown as text, never run
    shot(page, "campaigns")

    # open a campaign: the figures equal the JSON API's for the same period
    page.click('tr[data-campaign="spring"] td.name a')
    page.wait_for_url("**/reports/campaigns/spring**")
    end = local_today()
    check_equal(page, api(service, "/v1/reports/campaigns/spring",
                          **{"from": (end - timedelta(days=29)).isoformat(),
                             "to": end.isoformat()}))
    assert page.locator("svg.chart").count() >= 3
    assert page.locator('.card[data-key="conversions"].na').count() == 1  # CV not measured
    shot(page, "campaign")

    # change the period: a preset, then a custom range longer than a year (F15)
    page.click("text=Last 7 days")
    page.wait_for_url("**period=7**")
    check_equal(page, api(service, "/v1/reports/campaigns/spring",
                          **{"from": (end - timedelta(days=6)).isoformat(),
                             "to": end.isoformat()}))
    first = (end - timedelta(days=400)).isoformat()
    page.fill('input[name="from"]', first)
    page.fill('input[name="to"]', end.isoformat())
    page.select_option('select[name="schedule_task_id"]', "t1")
    page.click("form.picker button[type=submit]")
    page.wait_for_url(f"**from={first}**")
    check_equal(page, api(service, "/v1/reports/campaigns/spring",
                          **{"from": first, "to": end.isoformat(),
                             "schedule_task_id": "t1"}))
    assert page.locator("form.picker .chip.on").inner_text() == "Custom range"
    shot(page, "campaign-custom-period")

    # a LINE campaign: opens not measurable
    page.goto(service.base_url + "/reports/campaigns/xss")
    assert page.locator('.card[data-key="open_rate"] .value').inner_text() == "not measurable"
    assert page.locator("h1").inner_text() == XSS
    shot(page, "campaign-line")

    # project page filtered to one campaign; its link CSV holds only that campaign
    page.click("nav >> text=Project")
    page.wait_for_url("**/reports/project**")
    shot(page, "project")
    page.select_option('select[name="campaign_id"]', "xss")
    page.click("form.picker button[type=submit]")
    page.wait_for_url("**campaign_id=xss**")
    with page.expect_download() as download:
        page.click('a.csv[href*="/csv/links"]')
    path = tmp_path / "links.csv"
    download.value.save_as(path)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["url", "clicks", "click_users"]
    assert [r[0] for r in rows[1:]] == ["https://line.example/deal"]
    shot(page, "project-filtered")

    # the same pages in Japanese
    page.click("a.lang")
    assert page.locator("html").get_attribute("lang") == "ja"
    shot(page, "project-ja")
    page.goto(service.base_url + "/reports/campaigns/spring")
    assert "開封率" in page.inner_text("main")
    shot(page, "campaign-ja")

    watch.clean()
    context.close()
