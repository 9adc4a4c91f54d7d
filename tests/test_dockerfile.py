"""The Dockerfile, checked without a Docker engine (none runs here).

It is parsed as Docker parses it (continuations, heredocs, stages), and held to
issue 7: multi-stage on a slim Python 3.11, every copied file present in the
build context and not ignored, a non-root user, a HEALTHCHECK on /healthz,
configuration only by API.md's variables, and no embedded database: pgserver is
removed from the image and the entrypoint, run here for real, refuses to start
without TRACKER_DATABASE_URL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.support import ROOT, shared

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT_PATH = "/usr/local/bin/tracker-entrypoint"


@dataclass
class Instruction:
    keyword: str
    args: str
    heredoc: str | None
    line: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuations joined and heredoc bodies attached."""
    lines = text.splitlines()
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            following = lines[i].strip()
            i += 1
            if following.startswith("#"):
                continue
            line = line[:-1].rstrip() + " " + following
        keyword, _, args = line.partition(" ")
        heredoc = None
        marker = re.search(r"<<-?(['\"]?)(\w+)\1", args)
        if marker:
            body = []
            while i < len(lines) and lines[i].strip() != marker.group(2):
                body.append(lines[i])
                i += 1
            i += 1
            heredoc = "\n".join(body) + "\n"
        out.append(Instruction(keyword.upper(), args.strip(), heredoc, start + 1))
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def copy_parts(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY or ADD."""
    words = json.loads(ins.args) if ins.args.startswith("[") else shlex.split(ins.args)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words[:-1], words[-1]


def _matches(candidate: str, pattern: str) -> bool:
    """Go's filepath.Match, as Docker uses it: ``*`` never crosses a ``/``."""
    have, want = candidate.split("/"), pattern.split("/")
    return len(have) == len(want) and all(fnmatch(h, w) for h, w in zip(have, want, strict=True))


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = Path(path).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(_matches(c, pattern) for c in candidates)
        if hit:
            ignored = not negate
    return ignored


def ignore_patterns() -> list[str]:
    text = (ROOT / ".dockerignore").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.fixture(scope="module")
def parsed() -> list[Instruction]:
    assert DOCKERFILE.exists(), "the Dockerfile is missing from the repository root"
    return parse(DOCKERFILE.read_text())


def final_stage(parsed: list[Instruction]) -> list[Instruction]:
    return stages(parsed)[-1]


def test_multi_stage_on_slim_python_311(parsed) -> None:
    froms = [ins.args.split()[0] for ins in parsed if ins.keyword == "FROM"]
    assert len(froms) >= 2, "the image is built in stages: one to build, one to run"
    for image in froms:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image
    final_copies = [copy_parts(i)[0] for i in final_stage(parsed) if i.keyword == "COPY"]
    assert any("from" in flags for flags in final_copies), "the runtime copies from the build"


def test_every_copied_file_exists_and_is_in_the_build_context(parsed) -> None:
    patterns = ignore_patterns()
    checked = 0
    for ins in parsed:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        flags, sources, _ = copy_parts(ins)
        if "from" in flags or ins.heredoc is not None:
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"line {ins.line}: COPY {source}: no such file"
            assert not dockerignored(source, patterns), f"{source} is excluded by .dockerignore"
            checked += 1
    assert checked >= 3, "expected the project files to be copied into the build"


def test_local_state_and_secrets_stay_out_of_the_build_context() -> None:
    patterns = ignore_patterns()
    for path in (".venv/bin/python", ".tracker/secret_keys", ".git/config", "tests/support.py",
                 "tracker/__pycache__/edge.cpython-311.pyc"):
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"
    assert not dockerignored("tracker/edge.py", patterns)


def test_runs_as_a_non_root_user_created_in_the_image(parsed) -> None:
    stage = final_stage(parsed)
    users = [ins.args.split(":")[0] for ins in stage if ins.keyword == "USER"]
    assert users, "the runtime stage sets no USER, so the tracker would run as root"
    assert users[-1] not in ("root", "0"), "the last USER is root"
    runs = " ".join(ins.args for ins in stage if ins.keyword == "RUN")
    assert re.search(rf"useradd\b[^&]*\b{re.escape(users[-1])}\b", runs), \
        f"user {users[-1]} is never created in the runtime stage"


def test_healthcheck_asks_healthz_on_the_exposed_port(parsed) -> None:
    stage = final_stage(parsed)
    checks = [ins.args for ins in stage if ins.keyword == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1], "no HEALTHCHECK against /healthz"
    exposed = [ins.args.split("/")[0] for ins in stage if ins.keyword == "EXPOSE"]
    assert exposed and f":{exposed[0]}/healthz" in checks[-1]
    cmd = json.loads(next(ins.args for ins in stage if ins.keyword == "CMD"))
    assert cmd[:1] == ["serve"] and "0.0.0.0" in cmd and exposed[0] in cmd


def test_configuration_uses_only_the_documented_variables(parsed) -> None:
    documented = set(re.findall(r"^\| `(TRACKER_\w+)`", shared("API.md").read_text(), re.M))
    assert "TRACKER_DATABASE_URL" in documented
    used = set()
    for ins in parsed:
        used.update(re.findall(r"\bTRACKER_[A-Z_]+\b", ins.args + (ins.heredoc or "")))
    assert used <= documented, f"undocumented variables: {sorted(used - documented)}"
    env_names = {name for ins in parsed if ins.keyword == "ENV"
                 for name in re.findall(r"\b(TRACKER_\w+)=", ins.args)}
    assert "TRACKER_DATABASE_URL" not in env_names, "the image must not default the database"


def test_no_embedded_database_in_the_image(parsed) -> None:
    build = stages(parsed)[0]
    runs = [ins.args for ins in build if ins.keyword == "RUN"]
    installed = next((n for n, r in enumerate(runs) if "pip install" in r), None)
    removed = next((n for n, r in enumerate(runs) if re.search(r"pip uninstall -y pgserver", r)),
                   None)
    assert installed is not None and removed is not None and removed >= installed, \
        "pgserver (the embedded PostgreSQL) must be removed after the install"
    if removed == installed:
        run = runs[installed]
        assert run.index("pip uninstall") > run.index("pip install")
    for ins in final_stage(parsed):
        assert not (ins.keyword == "RUN" and "pip install" in ins.args), \
            "the runtime stage must not install packages (it could bring pgserver back)"


def entrypoint_script(parsed) -> str:
    stage = final_stage(parsed)
    entry = json.loads(next(ins.args for ins in stage if ins.keyword == "ENTRYPOINT"))
    assert Path(entry[0]).name == Path(ENTRYPOINT_PATH).name
    for ins in stage:
        if ins.keyword == "COPY" and ins.heredoc and copy_parts(ins)[2] == ENTRYPOINT_PATH:
            assert copy_parts(ins)[0].get("chmod") == "0755"
            return ins.heredoc
    raise AssertionError(f"no heredoc COPY writes {ENTRYPOINT_PATH}")


def run_entrypoint(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(["sh", str(script), *args], env={"PATH": path, **env},
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_refuses_to_start_without_a_database_url(parsed, tmp_path) -> None:
    script = tmp_path / "entrypoint"
    script.write_text(entrypoint_script(parsed))
    # --version: were the refusal missing, this would exit 0 at once, not start a server
    refused = run_entrypoint(script, {"TRACKER_DATA_DIR": str(tmp_path)}, "--version")
    assert refused.returncode == 64
    assert "TRACKER_DATABASE_URL is not set" in refused.stderr
    assert "postgresql://" in refused.stderr, "the message shows how to fix it"
    assert not (tmp_path / "pgdata").exists(), "nothing was started"

    started = run_entrypoint(script, {"TRACKER_DATABASE_URL": "postgresql://db/tracker",
                                      "TRACKER_DATA_DIR": str(tmp_path)}, "--version")
    assert started.returncode == 0, started.stderr
    assert "version" in started.stdout
    assert "TRACKER_SECRET_KEYS is not set" in started.stderr  # shared keys matter behind an LB
    quiet = run_entrypoint(script, {"TRACKER_DATABASE_URL": "postgresql://db/tracker",
                                    "TRACKER_SECRET_KEYS": "k" * 32}, "--version")
    assert quiet.returncode == 0 and quiet.stderr == ""
