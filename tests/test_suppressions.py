"""Issue 4, suppression (F14): GET /v1/suppressions and the bulk CSV import/export."""

from __future__ import annotations

import csv
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.support import Service, query, scalar


def uid(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write_csv(path: Path, rows: list[tuple], header: str = "user_id,channel,reason,since") -> Path:
    with path.open("w", newline="") as fh:
        fh.write(header + "\n")
        csv.writer(fh).writerows(rows)
    return path


def lookup(service: Service, user: str, **params: str) -> dict:
    with service.api() as http:
        response = http.get(f"/v1/suppressions/{user}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
def test_import_then_lookup_and_export_round_trip(module_service: Service,
                                                  tmp_path: Path) -> None:
    a, b, c = uid(), uid(), uid()
    source = write_csv(tmp_path / "in.csv", [
        (a, "email", "hard_bounce", "2023-01-02T03:04:05+09:00"),
        (a, "push", "token_not_registered", "2023-02-01T00:00:00Z"),
        (b, "line", "", ""),
        (c, "email", "unsubscribe", "2023-03-01 10:00:00"),  # no zone: UTC
    ])
    result = module_service.cli("suppressions", "import", str(source))
    assert "read 4 rows; 4 added or changed" in result.stdout.decode()
    assert "importing" in result.stderr.decode()  # the progress bar
    first = lookup(module_service, a)
    assert (first["suppressed"], first["reason"], first["channel"]) == (True, "hard_bounce",
                                                                        "email")
    assert first["since"] == "2023-01-01T18:04:05+00:00"
    assert [ch["channel"] for ch in first["channels"]] == ["email", "push"]
    assert lookup(module_service, a, channel="push")["reason"] == "token_not_registered"
    assert lookup(module_service, a, channel="line")["suppressed"] is False
    assert lookup(module_service, b)["reason"] == "import"
    assert lookup(module_service, c)["since"] == "2023-03-01T10:00:00+00:00"

    exported = tmp_path / "out.csv"
    out = module_service.cli("suppressions", "export", str(exported)).stdout.decode()
    total = scalar(module_service.dsn, "SELECT count(*) FROM suppressions")
    assert f"wrote {total} rows" in out
    with exported.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == total
    mine = {(r["user_id"], r["channel"]): (r["reason"], r["since"]) for r in rows
            if r["user_id"] in (a, c)}
    assert mine == {(a, "email"): ("hard_bounce", "2023-01-01T18:04:05.000000Z"),
                    (a, "push"): ("token_not_registered", "2023-02-01T00:00:00.000000Z"),
                    (c, "email"): ("unsubscribe", "2023-03-01T10:00:00.000000Z")}
    # the export imports back as it is: nothing changes
    again = module_service.cli("suppressions", "import", str(exported)).stdout.decode()
    assert f"read {total} rows; 0 added or changed" in again


@pytest.mark.slow
def test_import_hardens_an_unsubscribe_but_never_softens(module_service: Service,
                                                         tmp_path: Path) -> None:
    unsubscribed, bounced = uid(), uid()
    module_service.cli("suppressions", "import", str(write_csv(tmp_path / "1.csv", [
        (unsubscribed, "email", "unsubscribe", "2024-01-01T00:00:00Z"),
        (bounced, "email", "hard_bounce", "2024-01-01T00:00:00Z")])))
    module_service.cli("suppressions", "import", str(write_csv(tmp_path / "2.csv", [
        (unsubscribed, "email", "complaint", "2024-02-01T00:00:00Z"),
        (bounced, "email", "unsubscribe", "2024-02-01T00:00:00Z")])))
    assert lookup(module_service, unsubscribed)["reason"] == "complaint"
    assert lookup(module_service, bounced)["reason"] == "hard_bounce"
    assert lookup(module_service, bounced)["since"].startswith("2024-01-01")


def test_a_bad_row_imports_nothing_and_says_where(module_service: Service,
                                                  tmp_path: Path) -> None:
    good = uid()
    source = write_csv(tmp_path / "bad.csv", [
        (good, "email", "hard_bounce", ""),
        (uid(), "sms", "", ""),
        (uid(), "email", "bored", ""),
        (uid(), "email", "", "next week"),
        ("", "email", "", ""),
    ])
    before = scalar(module_service.dsn, "SELECT count(*) FROM suppressions")
    result = module_service.cli("suppressions", "import", str(source), check=False)
    assert result.returncode != 0
    message = result.stderr.decode()
    assert "4 bad rows" in message and "nothing was imported" in message
    for line, text in [(3, "channel must be one of"), (4, "reason must be one of"),
                       (5, "since 'next week' is not an ISO 8601"), (6, "user_id must be")]:
        assert f"line {line}: {text}" in message
    assert scalar(module_service.dsn, "SELECT count(*) FROM suppressions") == before
    assert lookup(module_service, good)["suppressed"] is False
    wrong_header = write_csv(tmp_path / "h.csv", [(good, "email")], header="user,chan")
    result = module_service.cli("suppressions", "import", str(wrong_header), check=False)
    assert result.returncode != 0 and "user_id,channel,reason,since" in result.stderr.decode()


@pytest.mark.slow
def test_bulk_import_uses_copy(module_service: Service, tmp_path: Path) -> None:
    prefix = uid("bulk")
    count = int(os.environ.get("TRACKER_TEST_BULK_ROWS", "200000"))  # 1000000 to measure
    source = tmp_path / "bulk.csv"
    with source.open("w") as fh:
        fh.write("user_id,channel,reason,since\n")
        fh.writelines(f"{prefix}-{i},email,unsubscribe,2024-01-01T00:00:00Z\n"
                      for i in range(count))
    began = time.perf_counter()
    result = module_service.cli("suppressions", "import", str(source))
    elapsed = time.perf_counter() - began
    print(f"\nimported {count} suppressions in {elapsed:.1f} s (CLI start included)")
    assert f"read {count} rows; {count} added" in result.stdout.decode()
    assert scalar(module_service.dsn, "SELECT count(*) FROM suppressions WHERE user_id LIKE $1",
                  prefix + "-%") == count
    assert elapsed < 60


def test_lookup_errors_and_auth(module_service: Service) -> None:
    with module_service.api() as http:
        bad_channel = http.get("/v1/suppressions/someone", params={"channel": "fax"})
        long_id = http.get("/v1/suppressions/" + "x" * 300)
    with module_service.client() as http:
        unauthenticated = http.get("/v1/suppressions/someone")
    assert bad_channel.status_code == 422 and "channel must be one of" in bad_channel.json()[
        "detail"]
    assert long_id.status_code == 422
    assert unauthenticated.status_code == 401
    assert lookup(module_service, "never-seen") == {
        "user_id": "never-seen", "suppressed": False, "reason": None, "since": None,
        "channel": None, "channels": []}


@pytest.mark.parametrize("user", ["with space", "ユーザー", "a/b"])
def test_user_ids_of_any_shape_round_trip(module_service: Service, user: str) -> None:
    query(module_service.dsn, "INSERT INTO suppressions (user_id, channel, reason)"
          " VALUES ($1, 1, 'complaint') ON CONFLICT DO NOTHING", user)
    assert lookup(module_service, user)["reason"] == "complaint"
