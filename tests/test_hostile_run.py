"""loadtests/hostile.py at a small size against the real service: normal clients
keep being served while strangers flood it, and every attacker gets the answer
meant for it (issue "Hostile traffic"). Speed and memory goals are the script's
to print, not this test's to time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Service

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_hostile_run_small(module_service: Service) -> None:
    assert module_service.process is not None
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "hostile.py"), "--url", module_service.base_url,
         "--api-key", module_service.api_key, "--pid", str(module_service.process.pid),
         "--seconds", "2", "--slow", "20", "--agents-per-second", "40", "--batch-mb", "2",
         "--refused-mb", "30", "--json"],
        capture_output=True, text=True, timeout=240, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    phases = {row["phase"]: row for row in report["phases"]}
    for name in ("quiet", "attack", "after"):
        assert phases[name]["requests"] > 20, phases[name]
        assert phases[name]["errors"] == 0, phases[name]
        assert phases[name]["rss_mb"] > 0
    attack = report["attack"]
    assert set(attack["user agents"]) == {"200"}, attack  # the pixel, always
    assert set(attack["huge headers"]) == {"431"}, attack
    assert set(attack["2 MB batch"]) == {"422"}, attack  # parsed, refused, nothing landed
    assert set(attack["30 MB body"]) <= {"413", "closed"}, attack
    assert sum(attack["slow clients"].values()) == 20
    assert "Traceback" not in module_service.log()
