"""Hypothesis against POST /v1/outcomes on the real service (issue 8): whatever the
rows hold, the answer is 200 with everything stored or a 4xx with nothing stored;
never a 5xx."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Service, http_client, scalar

pytestmark = pytest.mark.slow  # hypothesis fuzzing over HTTP

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=6,
)
valid_row = st.fixed_dictionaries({
    "delivery_id": st.integers(1, 10**12).map(str),
    "campaign_id": st.sampled_from(["fz-a", "fz-b"]),
    "schedule_task_id": st.sampled_from(["t1", "t2"]),
    "user_id": st.text(min_size=1, max_size=12).filter(lambda s: s.strip()),
    "channel": st.sampled_from(["email", "push", "line"]),
    "status": st.sampled_from(["delivered", "bounced", "soft_bounced", "failed"]),
    "sent_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
})
field_names = st.sampled_from(["delivery_id", "campaign_id", "schedule_task_id", "user_id",
                               "channel", "status", "sent_at", "error_code", "is_test"])
# a valid row with some fields replaced by arbitrary JSON (or removed)
mutated_row = st.tuples(valid_row, st.dictionaries(field_names, json_values | st.just(...),
                                                    max_size=3)).map(
    lambda pair: {k: v for k, v in {**pair[0], **pair[1]}.items() if v is not ...})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(valid_row, mutated_row), min_size=1, max_size=5))
def test_outcomes_are_stored_whole_or_refused_whole(module_service: Service,
                                                     rows: list[dict]) -> None:
    before = scalar(module_service.dsn, "SELECT count(*) FROM outcome_history")
    body = json.dumps(rows, default=str)
    with http_client(base_url=module_service.base_url,
                     headers={"Authorization": f"Bearer {module_service.api_key}"}) as http:
        response = http.post("/v1/outcomes", content=body)
    assert response.status_code < 500, response.text
    after = scalar(module_service.dsn, "SELECT count(*) FROM outcome_history")
    if response.status_code >= 400:
        assert after == before, response.text
        assert response.json()["error"] and response.json()["detail"]
    else:
        assert after >= before
