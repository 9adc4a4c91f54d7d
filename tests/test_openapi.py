"""The served OpenAPI document covers every /v1 route, and schemathesis, fuzzing
the real service from it, finds no 5xx anywhere (issue 8)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.routing import Route, Router

from tests.support import Service
from tracker.app import v1_routes


def _router_paths(routes: list) -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        if isinstance(route, Route):
            path = route.path.replace(":path}", "}")
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((path, method.lower()))
    return found


def test_every_v1_route_is_documented(module_service: Service) -> None:
    with module_service.api() as http:
        doc = http.get("/v1/openapi.json").json()
    documented = {(path, method) for path, ops in doc["paths"].items()
                  for method in ops if method != "parameters"}
    assert _router_paths(Router(routes=v1_routes()).routes) == documented


def test_the_document_needs_the_key(module_service: Service) -> None:
    with module_service.client() as http:
        assert http.get("/v1/openapi.json").status_code == 401


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(module_service: Service, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    with module_service.api() as http:
        doc = http.get("/v1/openapi.json").json()
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    result = subprocess.run(
        [cli, "run", str(schema), "--url", module_service.base_url + "/v1",
         "--header", f"Authorization: Bearer {module_service.api_key}",
         "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
         "--max-examples", "15", "--workers", "1", "--seed", "1",
         "--suppress-health-check", "all", "--max-time", "90"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
