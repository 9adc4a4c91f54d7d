"""Issue 8 security, over HTTP against the real service.

* Every route of the app, found by walking its route tree (Mounts included, through
  any wrapper such as the API-key guard), refuses a missing or a wrong key with 401,
  except the few that must be public. The list is derived, not written down, so a
  route added tomorrow is covered (and fails here if it forgets its guard).
* Redirect targets: a token validly signed over a dangerous URL (as only a leaked
  key or a buggy older release could make) still never redirects.
* Request bodies are capped with a 413 that says what to do, and nothing is stored.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from tests.support import SECRET_KEYS, Service, http_client, mint_url, scalar
from tracker.app import create_app
from tracker.config import load_settings
from tracker.tokens import Channel, InvalidToken, Purpose, TokenCodec, TokenData, pack

#: Public by design; every other route needs the key.
PUBLIC_PREFIXES = ("/o/", "/c/", "/u/", "/static/")
PUBLIC_PATHS = {
    ("/healthz", "GET"), ("/readyz", "GET"),
    ("/reports/login", "GET"),  # the sign-in form itself: where the key is typed in
    ("/reports/logout", "POST"),  # forgetting a session needs none
}
WRONG_KEY = "wrong-key-0123456789abcdef"


def _unwrap(app: object) -> object:
    """Through ASGI wrappers (RequireAPIKey, middleware) to something with routes."""
    seen = 0
    while not hasattr(app, "routes") and hasattr(app, "app") and seen < 10:
        app = app.app
        seen += 1
    return app


def walk(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path with sample parameters, method) for every route under ``routes``."""
    for route in routes:
        if isinstance(route, Mount):
            inner = _unwrap(route.app)
            children = getattr(inner, "routes", None)
            if children:
                yield from walk(children, prefix + route.path)
            else:  # an app mounted whole (static files): any path below it
                yield prefix + route.path + "/anything", "GET"
        elif isinstance(route, Route):
            path = re.sub(r"\{([^}:]+)(:[^}]+)?\}", lambda m: _sample(m.group(2)),
                          prefix + route.path)
            for method in sorted(route.methods or {"GET"}):
                yield path, method
        else:
            raise AssertionError(f"unknown route type {type(route).__name__}: cover it here")


def _sample(convertor: str | None) -> str:
    return "1" if convertor in (":int", ":float") else "sample-1"


def is_public(path: str, method: str) -> bool:
    method = "GET" if method == "HEAD" else method  # HEAD is GET without the body
    return path.startswith(PUBLIC_PREFIXES) or (path, method) in PUBLIC_PATHS


@pytest.fixture(scope="module")
def all_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    settings = load_settings({
        "TRACKER_DATA_DIR": str(tmp_path_factory.mktemp("routes")),
        "TRACKER_SECRET_KEYS": SECRET_KEYS, "TRACKER_API_KEY": "x" * 24,
        "TRACKER_DATABASE_URL": "postgresql://unused/unused",
    })
    starlette_app = create_app(settings).app
    found = sorted(set(walk(starlette_app.routes)))
    assert len(found) >= 10, found
    return found


def test_the_route_walk_sees_the_api_behind_its_guard(all_routes) -> None:
    paths = {p for p, _ in all_routes}
    assert "/v1/campaigns/sample-1" in paths and "/metrics" in paths
    assert any(p.startswith("/v1/reports/") for p in paths)


def test_every_route_but_the_public_ones_refuses_a_missing_or_wrong_key(
        module_service: Service, all_routes) -> None:
    guarded = [(p, m) for p, m in all_routes if not is_public(p, m)]
    assert guarded
    failures = []
    with module_service.client() as http:
        for path, method in guarded:
            attempts = {
                "no key": http.request(method, path),
                "wrong key": http.request(
                    method, path, params={"key": WRONG_KEY},
                    headers={"Authorization": f"Bearer {WRONG_KEY}",
                             "Content-Type": "application/x-www-form-urlencoded"},
                    content=None if method in ("GET", "HEAD") else f"api_key={WRONG_KEY}"),
                "another scheme": http.request(
                    method, path, headers={"Authorization": f"Basic {module_service.api_key}"}),
            }
            for what, response in attempts.items():
                if response.status_code != 401:
                    failures.append(f"{method} {path} with {what}: {response.status_code}")
                elif method != "HEAD" and "json" in response.headers.get("content-type", ""):
                    body = response.json()
                    assert body["error"] and body["detail"], (method, path, body)
    assert not failures, "routes that let a request in without the key:\n" + "\n".join(failures)


def test_the_right_key_gets_past_the_guard(module_service: Service) -> None:
    with module_service.api() as http:
        assert http.get("/metrics").status_code == 200
        assert http.get("/v1/campaigns/never-made").status_code != 401


@pytest.mark.parametrize("target", [
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https://example.com/\r\nSet-Cookie: a=b",
    "https://example.com/\nLocation: https://evil.example/",
    "https://example.com/a b",
    "//evil.example/",
    "/relative/path",
    "ftp://example.com/file",
    "https://example.com/\x00",
    "https://example.com/\x85",
])
def test_a_signed_but_unsafe_target_never_redirects(module_service: Service, target: str) -> None:
    """Signed over the raw bytes with the service's own key (mint() refuses these
    URLs, so this is what only a leaked key or an older buggy signer could make)."""
    codec = TokenCodec(SECRET_KEYS.split(","))
    data = TokenData(1, 1, 1, Channel.EMAIL, False, 0, target)
    token = codec.sign_payload(Purpose.CLICK, pack(data, Purpose.CLICK)).decode("ascii")
    with module_service.client() as http:
        response = http.get(f"/c/{token}")
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def test_minting_refuses_unsafe_targets() -> None:
    codec = TokenCodec(SECRET_KEYS.split(","))
    for target in ("javascript:alert(1)", "https://a.example/\r\nX: y", "//evil.example/"):
        with pytest.raises(ValueError):
            codec.mint(Purpose.CLICK, TokenData(1, 1, 1, Channel.EMAIL, False, 0, target))


def test_a_safe_target_still_redirects_exactly(module_service: Service) -> None:
    url = mint_url(module_service, "click", url="https://example.com/ok?x=1")
    with module_service.client() as http:
        response = http.get(url)
    assert response.status_code == 302 and response.headers["location"] == \
        "https://example.com/ok?x=1"


def raw_request(service: Service, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as written (a Content-Length a client library would not send)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):  # the request says Connection: close
            data += chunk
        status = int(data.split(b" ", 2)[1])
        return status, data


@pytest.mark.parametrize("path", ["/v1/campaigns/capped", "/v1/outcomes", "/v1/conversions",
                                  "/v1/messages", "/v1/ses"])
def test_declared_oversized_bodies_get_413_before_being_read(
        module_service: Service, path: str) -> None:
    method = "PUT" if path.startswith("/v1/campaigns") else "POST"
    status, data = raw_request(module_service, (
        f"{method} {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {module_service.api_key}\n"
        "Content-Type: application/json\nContent-Length: 900000000\nConnection: close\n"
    ), b"[")
    assert status == 413, data[:300]
    assert b"body_too_large" in data and b"split it" in data


def test_a_streamed_body_past_the_cap_gets_413_and_stores_nothing(
        module_service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'", "channel": "email", "status": "active"}'

    with module_service.api() as http:
        response = http.put("/v1/campaigns/streamed-too-big", content=chunks(),
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert scalar(module_service.dsn,
                  "SELECT count(*) FROM campaigns WHERE campaign_id = 'streamed-too-big'") == 0


def test_unsubscribe_form_body_is_capped(module_service: Service) -> None:
    """Refused with a 413 page and nothing stored."""
    url = mint_url(module_service, "unsubscribe", user="capped-user")
    with http_client() as http:
        response = http.post(url, content=b"List-Unsubscribe=One-Click&" + b"x" * 100_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert scalar(module_service.dsn,
                  "SELECT count(*) FROM suppressions WHERE user_id = 'capped-user'") == 0


def test_api_key_comparison_is_constant_time() -> None:
    """The guard compares with hmac.compare_digest (timing leaks nothing)."""
    source = (Path(__file__).resolve().parent.parent / "tracker/api/auth.py").read_text()
    assert "hmac.compare_digest" in source


@pytest.mark.slow
def test_keys_rotate_prepends_a_key_and_old_links_keep_working(start_service) -> None:
    service: Service = start_service(env={"TRACKER_SECRET_KEYS": ""})  # keys from the data dir
    keys_file = service.data_dir / "secret_keys"
    old = keys_file.read_text().split()
    assert len(old) == 1
    old_link = mint_url(service, "click", url="https://example.com/old", keys=old[0])

    out = service.cli("keys", "rotate").stdout.decode()
    new = keys_file.read_text().split()
    assert new[1:] == old and len(new[0]) >= 32
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    assert "restart" in out and "retire" in out and new[0] not in out  # no secret printed
    listed = service.cli("keys", "list").stdout.decode().splitlines()
    assert listed[0].endswith("signs and verifies") and listed[1].endswith("verifies")

    service.stop()
    service.start()
    new_link = mint_url(service, "click", url="https://example.com/new", keys=new[0])
    with service.client() as http:
        assert http.get(old_link).headers["location"] == "https://example.com/old"
        assert http.get(new_link).headers["location"] == "https://example.com/new"
    # what the service signs now (the CLI mints as the send side does) uses the new key
    token = service.cli("token", "click", "--url", "https://example.com/t").stdout.decode()
    token = token.strip().rsplit("/", 1)[-1]
    TokenCodec([new[0]]).verify(Purpose.CLICK, token)
    with pytest.raises(InvalidToken):
        TokenCodec([old[0]]).verify(Purpose.CLICK, token)


def test_keys_rotate_with_keys_in_the_environment_prints_the_new_value(tmp_path: Path) -> None:
    service = Service("postgresql://unused/unused", tmp_path)
    out = service.cli("keys", "rotate").stdout.decode()
    line = next(x for x in out.splitlines() if x.startswith("TRACKER_SECRET_KEYS="))
    keys = line.split("=", 1)[1].split(",")
    assert keys[1:] == SECRET_KEYS.split(",") and len(keys[0]) >= 32
    assert not (tmp_path / "secret_keys").exists()
