"""Issue 3 over HTTP and the command line: the real service and PostgreSQL.

Every email of the repository's own corpus (tests/data/emails), and of the shared
one (../shared/emails) when it is beside the repository, goes through POST
/v1/messages (HTML) or `tracker rewrite` (MIME); every click URL in the answer is
followed against the running service and must land (302) on exactly the original
target."""

from __future__ import annotations

import html
import json
from pathlib import Path

import httpx
import pytest

from tests.rewrite_support import (
    Email,
    acceptable_untracked,
    check_identical,
    click_pattern,
    load_email,
    mime_leaves,
    own_emails,
    part_text,
    shared_emails,
    strip_pixel,
    untracked_http_links,
    without_no_track_markers,
)
from tests.support import SECRET_KEYS, Service, query, scalar
from tracker.tokens import Purpose, TokenCodec
from tracker.urls import to_location

CODEC = TokenCodec(SECRET_KEYS.split(","))


def post(service: Service, body: object, **kw) -> httpx.Response:
    with service.api() as http:
        return http.post("/v1/messages", json=body, **kw)


def delivery(service: Service, delivery_id: str):
    rows = query(service.dsn, "SELECT d.*, c.campaign_id, t.schedule_task_id FROM deliveries d"
                 " JOIN campaigns c ON c.id = d.campaign"
                 " JOIN schedule_tasks t ON t.id = d.schedule_task WHERE delivery_id = $1",
                 int(delivery_id))
    return rows[0] if rows else None


def deliveries(service: Service) -> int:
    return scalar(service.dsn, "SELECT count(*) FROM deliveries")


def rewrite_and_follow(service: Service, emails: list[Email]) -> int:
    """Send each email through POST /v1/messages, check the answer byte for byte and
    follow every click URL in it; the number of clicks that landed."""
    public = service.base_url
    clicks = 0
    with service.client() as http:
        for email in emails:
            source = load_email(email, public)
            user = f"u-{email.id}"
            response = post(service, {"campaign_id": "emails", "schedule_task_id": "t1",
                                      "user_id": user, "html": source})
            assert response.status_code == 200, response.text
            answer = response.json()
            body, pixels = strip_pixel(answer["html"], public, CODEC)
            assert pixels == 1, email.id
            links = check_identical(without_no_track_markers(source), body, public, CODEC)
            assert answer["links"] == len(links)
            if email.links is not None:
                assert answer["links"] == email.links, (email.id, "the manifest's link count")
            left = [u for u in untracked_http_links(body, public) if not acceptable_untracked(u)]
            assert sorted(left) == sorted(email.kept), (email.id, left[:3])
            sent = click_pattern(public).findall(body)
            for (raw, data), token in zip(links, sent, strict=True):
                assert str(data.delivery_id) == answer["delivery_id"]
                hit = http.get(f"/c/{token}")
                assert hit.status_code == 302, (email.id, raw)
                assert hit.headers["location"].encode("ascii") == to_location(data.url)
                clicks += 1
            row = delivery(service, answer["delivery_id"])
            assert (row["user_id"], row["status"], row["has_html"], row["campaign_id"],
                    row["schedule_task_id"]) == (user, 0, True, "emails", "t1")
    return clicks


def test_own_emails_rewritten_and_every_click_lands_on_its_target(
        module_service: Service) -> None:
    emails = own_emails()
    assert rewrite_and_follow(module_service, emails) == sum(e.links for e in emails)


@pytest.mark.slow  # the shared corpus, in addition to the own one
def test_shared_emails_rewritten_and_every_click_lands_on_its_target(
        module_service: Service) -> None:
    emails = shared_emails()  # skips when ../shared/emails is missing
    assert rewrite_and_follow(module_service, emails) > 200  # 215 in the corpus as committed


@pytest.mark.parametrize("message", own_emails(mime=True), ids=lambda e: e.id)
def test_cli_rewrites_corpus_messages_and_every_click_lands(
        module_service: Service, message: Email) -> None:
    """`tracker rewrite` over each MIME message of the own corpus (Japanese charsets,
    windows-1252, quoted-printable and base64): every click URL in the decoded parts
    redirects to a target that appears, decoded, in the original part."""
    raw = message.path.read_bytes()
    done = module_service.cli("rewrite", "--campaign", "mime", "--task", "t1",
                              "--user", f"m-{message.id}", input=raw)
    delivery_id = done.stderr.decode().splitlines()[0]
    clicks = 0
    with module_service.client() as http:
        for (old, rewritable), (new, _) in zip(mime_leaves(raw), mime_leaves(done.stdout),
                                               strict=True):
            if not rewritable:
                continue
            original = html.unescape(part_text(old)).replace("\n", "").replace("\r", "")
            for token in click_pattern(module_service.base_url).findall(part_text(new)):
                data = CODEC.verify(Purpose.CLICK, token)
                assert str(data.delivery_id) == delivery_id
                hit = http.get(f"/c/{token}")
                assert hit.status_code == 302, (message.id, data.url)
                assert hit.headers["location"].encode("ascii") == to_location(data.url)
                assert data.url in original
                clicks += 1
    assert clicks == message.links
    row = delivery(module_service, delivery_id)
    assert (row["user_id"], row["has_html"], row["campaign_id"]) == (
        f"m-{message.id}", True, "mime")


def test_click_urls_in_the_answer_are_followed_as_sent(module_service: Service) -> None:
    """The literal URLs of the answer (not re-minted tokens) redirect and are recorded."""
    response = post(module_service, {
        "campaign_id": "follow", "schedule_task_id": "t1", "user_id": "walker",
        "html": '<a href="https://example.com/a?b=1&amp;c=%20">x</a>',
        "text": "and https://例え.jp/パス?q=値 is not a text URL but https://example.org/ is"})
    answer = response.json()
    urls = [answer["html"].split('href="')[1].split('"')[0],
            "http" + answer["text"].split(" http")[-1].split(" ")[0]]
    with module_service.client() as http:
        targets = [http.get(u).headers["location"] for u in urls]
    assert targets == ["https://example.com/a?b=1&c=%20", "https://example.org/"]


def test_bulk_with_suppressed_and_personalised_recipients(module_service: Service) -> None:
    query(module_service.dsn, "INSERT INTO suppressions (user_id, channel, reason)"
          " VALUES ('gone', 1, 'hard_bounce')")
    before = deliveries(module_service)
    response = post(module_service, {
        "campaign_id": "bulk", "schedule_task_id": "t1", "channel": "email",
        "html": '<body><a href="https://shop.example/">shop</a></body>',
        "recipients": [{"user_id": "a"}, {"user_id": "gone"},
                       {"user_id": "b", "html": '<a href="https://b.example/">b</a>',
                        "is_test": True}, {"user_id": "c", "html": None, "text": "hi"}]})
    assert response.status_code == 200, response.text
    a, gone, b, c = response.json()
    assert [m["user_id"] for m in (a, gone, b, c)] == ["a", "gone", "b", "c"]
    assert gone == {"user_id": "gone", "delivery_id": gone["delivery_id"], "suppressed": True,
                    "reason": "hard_bounce"}
    assert len({m["delivery_id"] for m in (a, gone, b, c)}) == 4
    assert "shop.example" not in a["html"] and "/c/" in a["html"]
    token = b["html"].split("/c/")[1].split('"')[0]
    assert CODEC.verify(Purpose.CLICK, token).url == "https://b.example/"
    assert CODEC.verify(Purpose.CLICK, token).is_test
    assert c["html"] is None and c["text"] == "hi"
    assert a["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert deliveries(module_service) == before + 4
    row = delivery(module_service, gone["delivery_id"])
    assert row["status"] == 5 and row["sent_at"] is not None and row["has_html"] is False
    assert delivery(module_service, b["delivery_id"])["is_test"] is True
    assert delivery(module_service, c["delivery_id"])["has_html"] is False


def test_push_and_line_get_no_pixel_or_list_headers(module_service: Service) -> None:
    for channel in ("push", "line"):
        answer = post(module_service, {
            "campaign_id": f"c-{channel}", "schedule_task_id": "t", "user_id": "p",
            "channel": channel, "text": "Open https://app.example/deal now",
            "html": "<body>x</body>"}).json()
        assert answer["headers"] == {} and answer["html"] == "<body>x</body>"
        assert answer["text"].startswith(f"Open {module_service.base_url}/c/")
        row = delivery(module_service, answer["delivery_id"])
        assert row["has_html"] is False and row["channel"] == {"push": 2, "line": 3}[channel]


def test_campaign_utm_settings_tag_links(module_service: Service) -> None:
    with module_service.api() as http:
        put = http.put("/v1/campaigns/utm-c", json={"settings": {"utm": {
            "utm_source": "newsletter", "utm_medium": "email"}}})
        assert put.status_code == 200, put.text
    answer = post(module_service, {
        "campaign_id": "utm-c", "schedule_task_id": "t", "user_id": "u",
        "html": '<a href="https://x.example/?utm_source=own">x</a>'}).json()
    token = answer["html"].split("/c/")[1].split('"')[0]
    assert CODEC.verify(Purpose.CLICK, token).url == (
        "https://x.example/?utm_source=own&utm_medium=email")


BASE = {"campaign_id": "bad", "schedule_task_id": "t", "user_id": "u", "html": "<a>x</a>"}


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"campaign_id": None}, 422, "campaign_id"),
    ({"schedule_task_id": ""}, 422, "schedule_task_id"),
    ({"user_id": "x" * 201}, 422, "user_id"),
    ({"channel": "sms"}, 422, "channel must be one of"),
    ({"html": 5}, 422, "html must be a string"),
    ({"html": None}, 422, "neither html nor text"),
    ({"is_test": "yes"}, 422, "is_test"),
    ({"headers": {"X-A": "b\r\nBcc: x@y"}}, 422, "without CR or LF"),
    ({"headers": {"Bad Name": "v"}}, 422, "valid header name"),
    ({"recipients": [{"user_id": "a"}]}, 422, "not both"),
    ({"user_id": None, "recipients": []}, 422, "non-empty list"),
    ({"user_id": None, "recipients": [{"user_id": "a"}, "b"]}, 422, "recipients[1]"),
    ({"user_id": None, "recipients": [{"user_id": "u"}] * 10_001}, 422, "at most 10000"),
    ({"html": "x" * (10 * 1024 * 1024)}, 413, "at most 5000000"),
])
def test_bad_requests_get_a_clear_4xx_and_store_nothing(
        module_service: Service, change: dict, status: int, words: str) -> None:
    before = deliveries(module_service)
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None or k == "html"}
    if change.get("html", "") is None:
        body["html"] = None
    response = post(module_service, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"error", "detail"} and words in answer["detail"]
    assert deliveries(module_service) == before


def test_unreadable_bodies_and_missing_key(module_service: Service) -> None:
    with module_service.api() as http:
        assert http.post("/v1/messages", content=b"{not json").status_code == 400
        huge = http.post("/v1/messages", content=b" " * (33 * 1024 * 1024),
                         headers={"content-type": "application/json"})
        assert huge.status_code == 413 and "split" in huge.json()["detail"]
    with module_service.client() as http:
        assert http.post("/v1/messages", json=BASE).status_code == 401


MIME = (b"From: shop@example.com\nTo: u@example.com\nSubject: Sale\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="b"\n\n--b\n'
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        b"Sale: https://shop.example/sale \xe2\x9c\x93\n--b\n"
        b"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        b'<html><body><a href=3D"https://shop.example/sale">Sale</a></body></html>\n--b--\n')


def test_cli_rewrites_a_mime_message(module_service: Service) -> None:
    done = module_service.cli("rewrite", "--campaign", "cli", "--task", "t1", "--user", "carol",
                              input=MIME)
    delivery_id = done.stderr.decode().splitlines()[0]
    assert delivery_id.isdigit()
    out = done.stdout
    assert out.startswith(b"From: shop@example.com\nTo: u@example.com\nSubject: Sale\n")
    assert b"List-Unsubscribe: <" + module_service.base_url.encode() + b"/u/" in out
    assert b"https://shop.example/sale" not in out and b"\xe2\x9c\x93" in out
    row = delivery(module_service, delivery_id)
    assert (row["user_id"], row["has_html"], row["campaign_id"]) == ("carol", True, "cli")


def test_cli_bare_html_and_bad_input(module_service: Service) -> None:
    done = module_service.cli("rewrite", "--campaign", "cli", "--task", "t1", "--user", "dan",
                              "--html", input='<a href="https://x.example/">x</a>')
    lines = done.stderr.decode().splitlines()
    assert lines[0].isdigit() and lines[1].startswith("List-Unsubscribe: <")
    assert done.stdout.decode().startswith(f'<a href="{module_service.base_url}/c/')
    before = deliveries(module_service)
    bad = module_service.cli("rewrite", "--campaign", "cli", "--task", "t1", "--user", "dan",
                             input=b"Content-Type: text/plain\nContent-Transfer-Encoding: "
                                   b"x-uuencode\n\nhttps://a.b/\n", check=False)
    assert bad.returncode == 1 and b"x-uuencode" in bad.stderr
    assert b"nothing was recorded" in bad.stderr
    assert deliveries(module_service) == before
    usage = module_service.cli("rewrite", "--campaign", "c", "--task", "t", input=b"x",
                               check=False)
    assert usage.returncode == 2 and b"--user or --recipients" in usage.stderr


def test_cli_recipients_file(module_service: Service, tmp_path: Path) -> None:
    query(module_service.dsn, "INSERT INTO suppressions (user_id, channel, reason)"
          " VALUES ('cli-gone', 1, 'unsubscribe') ON CONFLICT DO NOTHING")
    users = tmp_path / "users.csv"
    users.write_text("user_id,name\nr1,Ann\n\ncli-gone,Bob\nr2,Cy\n")
    out = tmp_path / "out"
    done = module_service.cli("rewrite", "--campaign", "cli", "--task", "t2", "--recipients",
                              str(users), "--out", str(out), "--text",
                              input="Hi https://x.example/ bye")
    index = [json.loads(line) for line in (out / "index.ndjson").read_text().splitlines()]
    assert [line["user_id"] for line in index] == ["r1", "cli-gone", "r2"]
    assert index[1]["suppressed"] is True and index[1]["reason"] == "unsubscribe"
    for line in (index[0], index[2]):
        text = (out / line["file"]).read_text()
        assert text.startswith(f"Hi {module_service.base_url}/c/") and text.endswith(" bye")
        assert delivery(module_service, line["delivery_id"])["user_id"] == line["user_id"]
    assert b"2 messages written" in done.stderr


@pytest.mark.slow  # load: 10,000 recipients in one request
def test_ten_thousand_recipients_in_one_request(module_service: Service) -> None:
    before = deliveries(module_service)
    response = post(module_service, {
        "campaign_id": "big", "schedule_task_id": "t1",
        "html": '<body><a href="https://x.example/">x</a></body>',
        "recipients": [{"user_id": f"user-{i}"} for i in range(10_000)]})
    assert response.status_code == 200
    answer = response.json()
    assert [m["user_id"] for m in answer] == [f"user-{i}" for i in range(10_000)]
    assert len({m["delivery_id"] for m in answer}) == 10_000
    assert all(m["links"] == 1 for m in answer)
    assert deliveries(module_service) == before + 10_000
