"""Issue 18, branded tracking domains and HTTPS, against the real service.

A campaign's ``tracking_domain`` is the base of its pixel, click and unsubscribe
URLs; those links work whatever Host they arrive with (the service listens on
127.0.0.1, so the Host header is sent explicitly, as a DNS name pointing at the
tracker would make a browser send it); hits on hosts the tracker does not know are
served and counted; ``tracker serve --ssl-certfile/--ssl-keyfile`` serves TLS."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import Service, free_port, query, wait_for
from tracker.events import Kind

DOMAIN = "https://click.brand.example"
HTML = ('<html><body><a href="https://shop.example/sale">Sale</a>'
        ' <a href="https://click.brand.example/c/already-ours">ours</a>'
        ' <a href="https://CLICK.other-brand.example:443/landing">other brand</a>'
        ' <a href="{{unsubscribe_url}}">stop</a></body></html>')
TEXT = "Sale: https://shop.example/sale\nOurs: https://click.brand.example/o/x\n"


def _metric(service: Service, name: str) -> float:
    with service.api() as http:
        text = http.get("/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _put(service: Service, campaign: str, settings: dict) -> httpx.Response:
    with service.api() as http:
        return http.put(f"/v1/campaigns/{campaign}", json={"settings": settings})


@pytest.fixture(scope="module")
def sent(module_service: Service) -> dict:
    """A message of campaign 'branded' (on DOMAIN), after 'other-brand' got its own."""
    assert _put(module_service, "other-brand",
                {"tracking_domain": "https://click.other-brand.example"}).status_code == 200
    response = _put(module_service, "branded", {"tracking_domain": DOMAIN + "/"})
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["tracking_domain"] == DOMAIN  # stored canonical
    with module_service.api() as http:
        response = http.post("/v1/messages", json={
            "campaign_id": "branded", "schedule_task_id": "t", "user_id": "u1",
            "channel": "email", "html": HTML, "text": TEXT})
    assert response.status_code == 200, response.text
    return response.json()


def test_links_pixel_and_unsubscribe_are_on_the_campaigns_domain(sent: dict) -> None:
    html = sent["html"]
    clicks = re.findall(r'href="([^"]*/c/[^"]*)"', html)
    assert len(clicks) == 2 and all(c.startswith(f"{DOMAIN}/c/") for c in clicks)
    assert clicks[1] == f"{DOMAIN}/c/already-ours"  # the tracker's own link: not wrapped twice
    assert re.search(rf'<img[^>]+src="{re.escape(DOMAIN)}/o/[^"]+"', html)
    assert "https://CLICK.other-brand.example:443/landing" in html  # another tracking domain
    assert f'href="{DOMAIN}/u/' in html
    assert sent["headers"]["List-Unsubscribe"].startswith(f"<{DOMAIN}/u/")
    text = sent["text"]
    assert re.search(rf"^Sale: {re.escape(DOMAIN)}/c/\S+$", text, re.MULTILINE)
    assert f"Ours: {DOMAIN}/o/x" in text


def test_links_work_with_the_domains_host_and_any_other(module_service: Service,
                                                        sent: dict) -> None:
    click = re.search(rf'href="{re.escape(DOMAIN)}(/c/[^"]+)"', sent["html"]).group(1)
    pixel = re.search(rf'src="{re.escape(DOMAIN)}(/o/[^"]+)"', sent["html"]).group(1)
    unsubscribe = sent["headers"]["List-Unsubscribe"][len(DOMAIN) + 1:-1]
    before = _metric(module_service, "tracker_unknown_host_hits_total")
    with module_service.client() as http:
        on_domain = {"Host": "click.brand.example"}
        assert http.get(click, headers=on_domain).headers["location"] == \
            "https://shop.example/sale"
        assert http.get(pixel, headers=on_domain).status_code == 200
        assert http.get(pixel, headers={"Host": "CLICK.brand.example:443"}).status_code == 200
        assert http.get(pixel).status_code == 200  # the default public URL's host
        assert _metric(module_service, "tracker_unknown_host_hits_total") == before
        # a host nobody configured: still served (links in old mail must work), counted
        stranger = {"Host": "old-tracker.example"}
        assert http.get(click, headers=stranger).status_code == 302
        assert http.get(pixel, headers=stranger).status_code == 200
        assert http.post(unsubscribe, headers=on_domain,
                         data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _metric(module_service, "tracker_unknown_host_hits_total") == before + 2
    delivery = int(sent["delivery_id"])

    def landed() -> list:
        rows = query(module_service.dsn, "SELECT kind FROM events WHERE delivery_id = $1"
                     " AND kind IN ($2, $3)", delivery, Kind.OPEN, Kind.CLICK)
        return rows if len(rows) >= 6 else []

    assert len(wait_for(landed)) == 6  # 2 clicks + 4 opens, whatever the Host
    assert wait_for(lambda: query(module_service.dsn,
                                  "SELECT 1 FROM suppressions WHERE user_id = 'u1'"))


def test_tracking_domains_are_listed_with_their_campaigns(module_service: Service,
                                                          sent: dict) -> None:
    assert _put(module_service, "branded-too", {"tracking_domain": DOMAIN}).status_code == 200
    with module_service.api() as http:
        listed = http.get("/v1/tracking-domains").json()
    assert {"domain": DOMAIN, "campaigns": ["branded", "branded-too"]} in listed
    assert {"domain": "https://click.other-brand.example",
            "campaigns": ["other-brand"]} in listed
    # null goes back to TRACKER_PUBLIC_URL, and off the list
    assert _put(module_service, "branded-too", {"tracking_domain": None}).status_code == 200
    with module_service.api() as http:
        listed = http.get("/v1/tracking-domains").json()
    assert {"domain": DOMAIN, "campaigns": ["branded"]} in listed


@pytest.mark.parametrize(("value", "says"), [
    ("click.brand.example", "absolute https://"),
    ("ftp://click.brand.example", "absolute https://"),
    ("https://click.brand.example/track", "without a path"),
    ("https://click.brand.example?x=1", "without a path, query"),
    ("https://user:pw@click.brand.example", "user name or password"),
    ("https://click brand.example", "spaces"),
    ("https://bad_host!.example", "not a host name"),
    ("https://bücher.example", "xn--"),
    ("https://click.brand.example:99999", "not a valid URL"),
    (42, "must be a string"),
])
def test_bad_tracking_domains_are_refused_saying_why(module_service: Service, value: object,
                                                     says: str) -> None:
    response = _put(module_service, "bad-domain", {"tracking_domain": value})
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def test_serve_speaks_https_with_the_given_certificate(module_service: Service, sent: dict,
                                                        tmp_path: Path) -> None:
    if subprocess.run(["which", "openssl"], capture_output=True).returncode != 0:
        pytest.skip("the openssl command makes the test's self-signed certificate")
    cert, key = _certificate(tmp_path)
    port = free_port()
    env = dict(module_service.env, TRACKER_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "https.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--log-level", "warning", "--ssl-certfile", str(cert),
             "--ssl-keyfile", str(key)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=str(cert))  # once: ~25 ms each
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(base + "/healthz", verify=trusting, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        pixel = re.search(rf'src="{re.escape(DOMAIN)}(/o/[^"]+)"', sent["html"]).group(1)
        with httpx.Client(base_url=base, verify=trusting, timeout=30) as http:
            response = http.get(pixel, headers={"Host": "click.brand.example"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.http_version == "HTTP/1.1"
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{port}/healthz", verify=trusting, timeout=5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_serve_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    result = subprocess.run([sys.executable, "-m", "tracker", "serve", "--ssl-certfile",
                             str(cert)], capture_output=True, timeout=60,
                            env=dict(os.environ, TRACKER_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert b"--ssl-certfile and --ssl-keyfile go together" in result.stderr
