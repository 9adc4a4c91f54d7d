"""Issue 2 end to end: the real service, real PostgreSQL, real HTTP."""

from __future__ import annotations

import base64
import concurrent.futures

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import (
    SECRET_KEYS,
    Service,
    event_count,
    http_client,
    mint_url,
    query,
    scalar,
    wait_for,
)
from tracker.edge import PIXEL
from tracker.events import Kind

GIF_HEADERS = {
    "content-type": "image/gif",
    "cache-control": "no-store, no-cache, must-revalidate, max-age=0",
    "pragma": "no-cache",
}


def assert_pixel(response: httpx.Response, *, head: bool = False) -> None:
    assert response.status_code == 200
    for name, value in GIF_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["content-length"] == "43"
    assert response.content == (b"" if head else PIXEL)


def test_pixel_is_a_43_byte_transparent_gif() -> None:
    assert len(PIXEL) == 43
    assert PIXEL.startswith(b"GIF89a\x01\x00\x01\x00")


def test_open_pixel_records_one_event(module_service: Service) -> None:
    before = event_count(module_service.dsn, Kind.OPEN)
    url = mint_url(module_service, "open", user="alice")
    with module_service.client() as http:
        assert_pixel(http.get(url, headers={"User-Agent": "Mozilla/5.0 (TestMail)"}))
        assert_pixel(http.get(url + ".gif"))
    wait_for(lambda: event_count(module_service.dsn, Kind.OPEN) == before + 2)
    rows = query(module_service.dsn,
                 "SELECT e.delivery_id, d.user_id, ua.user_agent FROM events e"
                 " JOIN deliveries d USING (delivery_id)"
                 " LEFT JOIN user_agents ua ON ua.id = e.ua_id"
                 " WHERE e.kind = 1 ORDER BY e.ts DESC LIMIT 2")
    assert {r["user_id"] for r in rows} == {"alice"}
    assert "Mozilla/5.0 (TestMail)" in {r["user_agent"] for r in rows}


def test_click_redirects_to_the_signed_target_and_records(module_service: Service) -> None:
    target = "https://example.com/path?a=1&b=%20x#frag"
    url = mint_url(module_service, "click", url=target, position=3, user="bob")
    before = event_count(module_service.dsn, Kind.CLICK)
    with module_service.client() as http:
        response = http.get(url)
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    wait_for(lambda: event_count(module_service.dsn, Kind.CLICK) == before + 1)
    row = query(module_service.dsn,
                "SELECT u.url, e.link_position, d.user_id FROM events e"
                " JOIN urls u ON u.id = e.url_id JOIN deliveries d USING (delivery_id)"
                " WHERE e.kind = 2 ORDER BY e.ts DESC LIMIT 1")[0]
    assert (row["url"], row["link_position"], row["user_id"]) == (target, 3, "bob")


def test_international_target_redirects_as_a_uri(module_service: Service) -> None:
    url = mint_url(module_service, "click", url="https://例え.jp/パス?q=値")
    with module_service.client() as http:
        response = http.get(url)
    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9?q=%E5%80%A4")


def test_head_requests_are_answered_without_body(module_service: Service) -> None:
    with module_service.client() as http:
        assert_pixel(http.head(mint_url(module_service, "open")), head=True)
        response = http.head(mint_url(module_service, "click", url="https://example.org/"))
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/"


def test_other_methods_get_405(module_service: Service) -> None:
    with module_service.client() as http:
        response = http.post(mint_url(module_service, "open"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def _bad_tokens(good: str) -> dict[str, str]:
    body, _, sig = good.partition(".")
    return {
        "truncated": good[:-3],
        "signature_cut": body,
        "altered_payload": ("A" if body[0] != "A" else "B") + body[1:] + "." + sig,
        "altered_signature": body + "." + sig[:-1] + ("A" if sig[-1] != "A" else "B"),
        "empty": "",
        "dots": "...",
        "oversized": "A" * 7000 + "." + sig,
        "non_ascii": body + "é." + sig,
        "random": base64.urlsafe_b64encode(b"\x00garbage\xff" * 3).decode().rstrip("="),
    }


def test_bad_tokens_never_redirect_and_never_record(module_service: Service) -> None:
    good_click = mint_url(module_service, "click", url="https://example.com/x")
    good_open = mint_url(module_service, "open")
    foreign = mint_url(module_service, "click", url="https://evil.example/",
                       keys="some-other-key-0123456789")
    before = event_count(module_service.dsn)
    click_token = good_click.rsplit("/", 1)[1]
    open_token = good_open.rsplit("/", 1)[1]
    with module_service.client() as http:
        for name, bad in _bad_tokens(click_token).items():
            response = http.get(f"/c/{bad}")
            assert response.status_code == 404, name
            assert "location" not in response.headers, name
            assert b"not valid" in response.content
        for bad in _bad_tokens(open_token).values():
            assert_pixel(http.get(f"/o/{bad}"))
        # a valid open token on /c/ and a valid click token on /o/: wrong purpose
        assert http.get(f"/c/{open_token}").status_code == 404
        assert_pixel(http.get(f"/o/{click_token}"))
        # signed with a key the service does not know
        assert http.get(foreign.replace(module_service.base_url, "")).status_code == 404
        # a sentinel: once it lands, anything journaled before it has landed too
        http.get(good_open)
    wait_for(lambda: event_count(module_service.dsn) >= before + 1)
    assert event_count(module_service.dsn) == before + 1


def test_test_sends_are_served_but_never_recorded(module_service: Service) -> None:
    before = event_count(module_service.dsn)
    with module_service.client() as http:
        assert_pixel(http.get(mint_url(module_service, "open", is_test=True)))
        response = http.get(mint_url(module_service, "click", url="https://example.com/t",
                                      is_test=True))
        assert response.status_code == 302
        assert response.headers["location"] == "https://example.com/t"
        http.get(mint_url(module_service, "open"))  # sentinel
    wait_for(lambda: event_count(module_service.dsn) >= before + 1)
    assert event_count(module_service.dsn) == before + 1


def test_tokens_of_a_retired_signing_key_still_verify_after_rotation(start_service) -> None:
    old_key = "the-old-key-0123456789abcdef"
    new_key = "the-new-key-0123456789abcdef"
    service = start_service(env={"TRACKER_SECRET_KEYS": f"{new_key},{old_key}"})
    url = mint_url(service, "click", url="https://example.com/old", keys=old_key)
    with service.client() as http:
        response = http.get(url)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/old"


def test_healthz_reports_the_database(module_service: Service) -> None:
    with module_service.client() as http:
        body = http.get("/healthz").json()
    assert body["database"] == "reachable"


@pytest.mark.slow
def test_every_event_accepted_before_sigterm_is_in_the_database(start_service) -> None:
    service: Service = start_service()
    urls = [mint_url(service, "open", user=f"user{i}") for i in range(20)]
    count = 400

    def hit(i: int) -> int:
        with http_client() as http:
            return http.get(urls[i % len(urls)]).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(hit, range(count)))
    assert statuses == [200] * count
    service.stop()  # SIGTERM straight after the last response
    assert event_count(service.dsn) == count
    assert scalar(service.dsn, "SELECT count(DISTINCT delivery_id) FROM events") == 20


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_tokens_never_verify(data: st.DataObject) -> None:
    """Property: any change to a click token is refused, never mis-verified."""
    from tracker.tokens import InvalidToken, Purpose, TokenCodec, TokenData

    codec = TokenCodec(SECRET_KEYS.split(","))
    target = data.draw(st.sampled_from(["https://a.example/", "http://b.example/x?y=1"]))
    token = codec.mint(Purpose.CLICK, TokenData(
        data.draw(st.integers(0, 2**40)), data.draw(st.integers(0, 2**20)),
        data.draw(st.integers(0, 2**20)), 1, False, data.draw(st.integers(0, 500)), target))
    mutated = list(token)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        index = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        char = data.draw(st.characters(min_codepoint=32, max_codepoint=0x3000))
        if op == "replace" and mutated:
            mutated[index] = char
        elif op == "delete" and mutated:
            del mutated[index]
        else:
            mutated.insert(index, char)
    candidate = "".join(mutated)
    if candidate == token:
        return
    with pytest.raises(InvalidToken):
        codec.verify(Purpose.CLICK, candidate)


def test_unsafe_targets_can_never_be_signed() -> None:
    from tracker.tokens import Purpose, TokenCodec, TokenData
    from tracker.urls import UnsafeURL

    codec = TokenCodec(SECRET_KEYS.split(","))
    for target in ["javascript:alert(1)", "data:text/html,x", "ftp://x/", "//evil.example/",
                   "https://ok.example/\r\nSet-Cookie: x", "https://", "mailto:a@b",
                   "https://a.example/ space", "/relative"]:
        with pytest.raises(UnsafeURL):
            codec.mint(Purpose.CLICK, TokenData(1, 1, 1, 1, url=target))
