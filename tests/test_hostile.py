"""What a stranger holding one sent email can send, answered before it costs
anything: oversized headers, trickled requests, disconnects mid-body, Host-built
redirects, huge user agents, and the public health check (issue "Hostile traffic")."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.support import Service, mint_url, scalar, wait_for
from tracker.protocol import HEADER_TIMEOUT, MAX_HEADER_BYTES


def _raw(service: Service, request: bytes, *, read_timeout: float = 10) -> bytes:
    """Send raw bytes, return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=read_timeout) as sock:
        # the server may close while a huge request is still being sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def test_headers_over_the_cap_get_431_before_the_edge_sees_them(
        module_service: Service) -> None:
    path = mint_url(module_service, "open").removeprefix(module_service.base_url)
    big = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: " + \
        b"A" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\n"
    answer = _raw(module_service, big)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"send fewer or shorter headers" in answer
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Filler-%d: %s\r\n" % (i, b"b" * 100) for i in range(200)) + b"\r\n"
    assert _raw(module_service, many).startswith(b"HTTP/1.1 431 ")
    # just under the cap is still served
    fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + \
        b"c" * (MAX_HEADER_BYTES - 200) + b"\r\n\r\n"
    assert _raw(module_service, fits).startswith(b"HTTP/1.1 200 ")
    assert "Invalid HTTP request" not in module_service.log()  # no log line per stranger


@pytest.mark.slow  # waits out the header timeout (10 s)
def test_a_trickled_request_is_cut_off(module_service: Service) -> None:
    """Slowloris: headers that never finish hold nothing past HEADER_TIMEOUT, even
    while a byte keeps arriving now and then."""
    with socket.create_connection(("127.0.0.1", module_service.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 8:
            try:
                sock.sendall(b"X")
                sock.settimeout(1)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "the server kept a trickling connection open"
        assert time.monotonic() - started >= HEADER_TIMEOUT - 1


#: uvicorn's keep-alive timeout as ``tracker serve`` sets it (tracker/cli/serve.py)
KEEP_ALIVE = 5


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


@pytest.mark.slow  # waits out the keep-alive timeout (5 s)
def test_an_idle_kept_alive_connection_is_closed_and_a_busy_one_served(
        module_service: Service) -> None:
    """The sweep, not a timer armed at every response, closes a kept-alive
    connection that sends nothing for KEEP_ALIVE seconds after a response; a next
    request sent sooner is served."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", module_service.port), timeout=30) as sock:
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(KEEP_ALIVE - 2)
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        sock.settimeout(KEEP_ALIVE + 5)
        assert sock.recv(1024) == b"", "closed, with nothing more said"
        idle = time.monotonic() - answered
    assert KEEP_ALIVE - 0.5 <= idle <= KEEP_ALIVE + 3, idle


def test_a_client_gone_mid_body_leaves_no_traceback(module_service: Service) -> None:
    with socket.create_connection(("127.0.0.1", module_service.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + module_service.api_key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{")
        time.sleep(0.3)
    time.sleep(1)
    with module_service.client() as client:
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in module_service.log()
    assert "ClientDisconnect" not in module_service.log()


@pytest.mark.parametrize("path", ["/metrics/", "/v1", "/v1/campaigns/", "/reports/"])
def test_no_redirect_is_built_from_the_host_header(module_service: Service, path: str) -> None:
    with module_service.client(headers={"Host": "evil.example"}) as client:
        r = client.get(path, follow_redirects=False)
    assert "evil.example" not in r.headers.get("location", "")
    assert r.status_code not in (301, 302, 307, 308) or r.headers["location"].startswith("/")


def test_health_check_says_nothing_of_the_traffic(module_service: Service) -> None:
    with module_service.client() as client:
        for path in ("/healthz", "/readyz"):
            body = client.get(path).json()
            assert "database" in body
            assert not any("landed" in key or "events" in key for key in body), body


def test_a_huge_user_agent_is_cut_before_it_is_stored(module_service: Service) -> None:
    url = mint_url(module_service, "open", user="ua-cut")
    agent = "Mozilla/5.0 (X11; Linux x86_64) " + "Z" * 12_000
    with module_service.client() as client:
        assert client.get(url, headers={"User-Agent": agent}).status_code == 200
    stored = wait_for(lambda: scalar(
        module_service.dsn, "SELECT max(octet_length(user_agent)) FROM user_agents"
        " WHERE user_agent LIKE 'Mozilla/5.0 (X11; Linux x86_64) ZZZ%'"), 15)
    assert stored == 512


@pytest.mark.parametrize("text", ["=1+1", "\n=1+1", "\r=1+1", "\uff1dSUM(A1)", "\uff0b1",
                                  "\uff0d1", "\uff20A1", "@A1", "\t=1"])
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(text: str) -> None:
    from tracker.reports.csv import cell

    assert cell(text) == "'" + text
    assert cell("https://example.com/?a=1") == "https://example.com/?a=1"


def test_a_campaign_id_with_a_slash_is_reachable(module_service: Service) -> None:
    """Sender ids may hold '/': tracking can be switched off for such a campaign and
    its report read, like any other."""
    with module_service.api() as api:
        r = api.put("/v1/campaigns/news/2026-12", json={"settings": {"tracking": "off"}})
        assert r.status_code == 200, r.text
        assert api.get("/v1/campaigns/news%2F2026-12").json()["settings"]["tracking"] == "off"
        assert api.get("/v1/campaigns/news/2026-12").json()["campaign_id"] == "news/2026-12"
        report = api.get("/v1/reports/campaigns/news/2026-12",
                         params={"from": "2026-12-01", "to": "2026-12-07"})
        assert report.status_code == 200, report.text
        r = api.get("/v1/campaigns/%00")
        assert r.status_code == 422 and "NUL" in r.json()["detail"]


@pytest.mark.parametrize("body", [b'{"name": NaN}', b'{"name": "x", "settings": {"a": Infinity}}',
                                  b'{"name": -Infinity}'])
def test_nan_and_infinity_are_not_json(module_service: Service, body: bytes) -> None:
    with module_service.api() as api:
        r = api.put("/v1/campaigns/nan-test", content=body)
    assert r.status_code == 400 and "not a JSON value" in r.json()["detail"]


def test_a_declared_body_over_the_cap_is_refused_before_it_is_read(
        module_service: Service) -> None:
    from tracker.api.bodies import MAX_BODY_BYTES

    request = (b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               + module_service.api_key.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n[" % (MAX_BODY_BYTES + 1))
    answer = _raw(module_service, request)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"split it into several requests" in answer


def test_deep_nesting_is_refused_at_once(module_service: Service) -> None:
    with module_service.api() as api:
        r = api.post("/v1/outcomes", content=b"[" * 2_000_000)
    assert r.status_code == 400 and r.json()["error"] == "too_deep"


def test_javascript_links_are_listed_under_warnings(module_service: Service) -> None:
    """As the README says: a javascript: link is left as written and named in the
    answer's warnings, so the sender learns it was not tracked."""
    with module_service.api() as api:
        r = api.post("/v1/messages", json={
            "campaign_id": "js", "schedule_task_id": "t", "user_id": "u", "channel": "email",
            "html": '<html><body><a href="javascript:alert(1)">x</a>'
                    '<a href=" JavaScript:void(0)">y</a><a href="https://example.com/">z</a>'
                    "</body></html>"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert 'href="javascript:alert(1)"' in answer["html"]
    assert len([w for w in answer["warnings"] if "javascript:" in w]) == 2, answer["warnings"]
    assert answer["links"] == 1


def test_the_user_agent_memory_is_bounded_in_bytes_and_new_agents_by_a_daily_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker import recorder
    from tracker.events import dictionary_id

    monkeypatch.setattr(recorder, "USER_AGENT_CACHE_BYTES", 200_000)
    monkeypatch.setattr(recorder, "NEW_USER_AGENTS_PER_DAY", 300)
    agents = recorder.UserAgents()
    seen = [agents(b"Mozilla/5.0 (stranger %d) " % n + b"x" * 20_000) for n in range(1000)]
    assert agents._bytes <= 200_000 + 2 * 512 + 200  # cleared whenever it passes the cap
    assert all(len(definition) < 600 for _, _, definition in seen)  # cut to 512 bytes
    other = dictionary_id(recorder.OTHER_USER_AGENT)
    assert {ident for ident, _, _ in seen[300:]} == {other}  # past the day's budget
    assert len({ident for ident, _, _ in seen[:300]}) == 300
