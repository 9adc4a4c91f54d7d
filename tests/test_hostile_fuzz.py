"""Fuzzing what schemathesis missed (issue "Hostile traffic"): every string field of
every body-taking route, and of an SES notification inside an SNS envelope, set to
NUL, a lone surrogate, extreme dates, deep nesting; numbers set to NaN and
Infinity. Whatever the input, the answer is never a 5xx, and a refused body stores
nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Service, scalar

FIXTURES = Path(__file__).parent / "fixtures" / "ses"

#: what a stranger with a key might put in a string: each breaks something somewhere
HOSTILE_STRINGS = [
    "\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "",
    "x" * 100_000, "2026-02-30T00:00:00Z", "+infinity", "NaN", "../../etc/passwd", "%00",
    "\u202e\u2066", "=cmd|' /C calc'!A0", "\r\n", "\\u0000",
]
#: literal JSON for numbers and nesting (json.dumps cannot write some of these)
HOSTILE_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-0", "[" * 40 + "]" * 40,
                    "{" + '"a":' * 0 + "}", "18446744073709551616", "true", "null",
                    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"]


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a leaf (string, number, bool, null) of a JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))
    else:
        yield prefix


_MARK = "__HOSTILE_LITERAL__"


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)  # type: ignore[index]
    return copy


def _encode(value: Any, literal: str | None) -> bytes:
    text = json.dumps(value)  # lone surrogates become \\udXXX escapes, as a client sends them
    if literal is not None:
        text = text.replace(json.dumps(_MARK), literal)
    return text.encode()


def _outcome() -> list:
    return [{"delivery_id": 7, "campaign_id": "fz", "schedule_task_id": "t", "user_id": "u",
             "channel": "email", "status": "bounced", "error_code": "Permanent:General",
             "error_message": "550 no such user", "sent_at": "2026-11-01T00:00:00Z",
             "occurred_at": "2026-11-01T00:01:00Z", "is_test": False}]


def _ses_note() -> dict:
    text = (FIXTURES / "bounce-Permanent-General.json").read_text()
    return json.loads(text.replace("__DELIVERY_ID__", "1000000000123"))


def _envelope(note: Any) -> dict:
    envelope = json.loads((FIXTURES / "sns-notification-envelope.json").read_text())
    envelope["Message"] = json.dumps(note)
    return envelope


ROUTES: dict[str, tuple[str, str, Any]] = {
    "outcomes": ("POST", "/v1/outcomes", _outcome()),
    "conversions": ("POST", "/v1/conversions",
                    [{"user_id": "u", "name": "buy", "ts": "2026-11-01T00:00:00Z", "value": 10}]),
    "campaigns": ("PUT", "/v1/campaigns/fz",
                  {"name": "Fuzz", "channel": "email", "status": "active",
                   "settings": {"tracking": "full", "utm": {"utm_source": "x"},
                                "conversion": {"name": "buy", "window_hours": 48}}}),
    "messages": ("POST", "/v1/messages",
                 {"campaign_id": "fz", "schedule_task_id": "t", "user_id": "u",
                  "channel": "email", "html": "<a href='https://example.com/'>x</a>",
                  "text": "see https://example.com/", "headers": {"Subject": "hi"}}),
    "ses": ("POST", "/v1/ses", _ses_note()),
}


@pytest.fixture(scope="module")
def fuzz_service(module_service: Service) -> Service:
    with module_service.api() as api:
        assert api.put("/v1/campaigns/fz", json={"channel": "email"}).status_code == 200
    return module_service


def _bodies(template: Any) -> st.SearchStrategy[tuple[bytes, str]]:
    paths = list(_paths(template))
    string = st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE_STRINGS)).map(
        lambda pv: (_encode(_replaced(template, pv[0], pv[1]), None), f"{pv[0]}={pv[1]!r:.40}"))
    literal = st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE_LITERALS)).map(
        lambda pv: (_encode(_replaced(template, pv[0], _MARK), pv[1]), f"{pv[0]}={pv[1]:.40}"))
    return st.one_of(string, literal)


def _never_5xx(service: Service, method: str, path: str,
               bodies: st.SearchStrategy[tuple[bytes, str]]) -> None:
    """Send every generated body; each answer must be below 500."""
    with service.api() as api:

        @settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(bodies)
        def check(case: tuple[bytes, str]) -> None:
            body, what = case
            r = api.request(method, path, content=body)
            assert r.status_code < 500, f"{path} {what}: {r.status_code} {r.text[:300]}"

        check()
    assert "Traceback" not in service.log()


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_no_field_value_makes_a_5xx(fuzz_service: Service, route: str) -> None:
    method, path, template = ROUTES[route]
    _never_5xx(fuzz_service, method, path, _bodies(template))


def _in_envelope(case: tuple[bytes, str]) -> tuple[bytes, str]:
    inner, what = case
    envelope = _envelope("placeholder")
    envelope["Message"] = inner.decode("utf-8", "surrogatepass")
    return json.dumps(envelope).encode(), what


def test_no_field_of_a_note_inside_an_sns_envelope_makes_a_5xx(fuzz_service: Service) -> None:
    """The SES notification is a string inside the envelope: the same checks apply
    to it as to any body (NUL, lone surrogates, nesting), and envelopes nested in
    envelopes are refused or ignored, never a 500."""
    note = _ses_note()
    _never_5xx(fuzz_service, "POST", "/v1/ses", _bodies(note).map(_in_envelope))
    nested: Any = note
    with fuzz_service.api() as api:
        for _ in range(6):  # each level doubles the escaping: 6 levels stay under 1 MB
            nested = _envelope(nested)
            r = api.post("/v1/ses", json=nested)
            assert r.status_code < 500, r.text[:300]
    assert "Traceback" not in fuzz_service.log()


def test_a_nul_in_a_bounce_diagnostic_is_refused_and_stores_nothing(
        fuzz_service: Service) -> None:
    note = _ses_note()
    note["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "smtp; 550\x00 user unknown"
    before = scalar(fuzz_service.dsn, "SELECT count(*) FROM outcome_history")
    with fuzz_service.api() as api:
        r = api.post("/v1/ses", json=_envelope(note))
    assert r.status_code == 400 and "NUL" in r.json()["detail"], r.text
    assert scalar(fuzz_service.dsn, "SELECT count(*) FROM outcome_history") == before


@pytest.mark.parametrize("field", ["sent_at", "occurred_at"])
def test_a_date_past_year_9999_in_utc_is_a_clear_422(fuzz_service: Service, field: str) -> None:
    row = dict(_outcome()[0], **{field: "9999-12-31T23:59:59-23:59"})
    with fuzz_service.api() as api:
        r = api.post("/v1/outcomes", json=[row])
    assert r.status_code == 422 and "out of range" in r.text, r.text
