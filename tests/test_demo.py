"""``tracker demo`` end to end: run as a newcomer would, then read its figures back.

The demo runs as a child process against a real PostgreSQL (a fresh database
named by TRACKER_DATABASE_URL with ``--force``, or the embedded one under a data
dir of its own), serves what it made, and every assertion reads the service's
report API or the ``message_event_log`` view: nothing is compared to a number
written here."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support import API_KEY, SECRET_KEYS, Databases, free_port, query, scalar
from tracker.embedded import is_running, pg_ctl_stop

CAMPAIGNS = ("demo-newsletter", "demo-app-coupon", "demo-line-event")


def demo_env(data_dir: Path, dsn: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update({"TRACKER_DATA_DIR": str(data_dir), "TRACKER_API_KEY": API_KEY,
                "TRACKER_SECRET_KEYS": SECRET_KEYS, "TRACKER_TIMEZONE": "UTC"})
    if dsn:
        env["TRACKER_DATABASE_URL"] = dsn
    return env


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracker", "demo", *args], env=env,
                          capture_output=True, text=True, timeout=280)


class RunningDemo:
    """``tracker demo`` serving in a child process; its output read line by line."""

    def __init__(self, env: dict[str, str], port: int, *args: str) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "demo", "--port", str(port), *args], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 240) -> None:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s:\n"
                                     + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"the demo ended (status {self.process.wait()}) before "
                                     f"{text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return

    def stop(self) -> int:
        """SIGTERM to the demo alone: it must stop the service it started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


def period() -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=29)).isoformat(), today.isoformat()


def event_count(dsn: str, campaign: str, name: str, human: bool | None = None) -> int:
    first, last = period()
    return scalar(
        dsn, 'SELECT count(*) FROM message_event_log WHERE campaign_id = $1'
             ' AND event_name = $2 AND ($3::boolean IS NULL OR is_human = $3)'
             ' AND "timestamp" >= $4::date AND "timestamp" < $5::date + 1',
        campaign, name, human, date.fromisoformat(first), date.fromisoformat(last))


@pytest.fixture
def demo(databases: Databases, tmp_path: Path):
    """The demo, filled into a fresh database with --force, serving on a free port."""
    dsn = databases.fresh()
    started = datetime.now(UTC)
    running = RunningDemo(demo_env(tmp_path / "data", dsn), free_port(), "--force",
                          "--audience", "200")
    try:
        running.wait_for("serving on")
        yield running, dsn, started
    finally:
        running.stop()


@pytest.mark.slow  # a demo of thousands of recipients, or a PostgreSQL of its own
def test_demo_fills_reports_with_campaigns_people_machines_and_outcomes(demo) -> None:
    running, dsn, started = demo
    print("\n".join(running.lines))  # shown when an assertion fails
    first, last = period()
    http = httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=60,
                        headers={"Authorization": f"Bearer {API_KEY}"})
    with http:
        def report(campaign: str, **extra: str) -> dict:
            r = http.get(f"/v1/reports/campaigns/{campaign}",
                         params={"from": first, "to": last, **extra})
            assert r.status_code == 200, r.text
            return r.json()

        reports = {c: report(c) for c in CAMPAIGNS}
        news, push, line = (reports[c] for c in CAMPAIGNS)
        for r in reports.values():
            assert r["deliveries"] > 0 and r["clicks"] > 0 and r["click_users"] > 0
            assert r["targets"] == (r["deliveries"] + r["bounces"] + r["soft_bounces"]
                                    + r["failures"])
            assert r["failures"] + r["bounces"] + r["soft_bounces"] > 0
        # email: opens by people, machine opens and bot clicks reported beside them
        assert news["channel"] == "email"
        assert news["open_users"] > 0 and news["bounces"] > 0 and news["soft_bounces"] > 0
        assert news["suppressed"] > 0  # earlier hard bounces and unsubscribes
        assert news["unsubscribes"] > 0
        assert news["conversions"] > 0 and news["conversion_status"] == "measured"
        human_opens = event_count(dsn, "demo-newsletter", "message_open", True)
        machine_opens = event_count(dsn, "demo-newsletter", "message_open", False)
        assert human_opens > 0 and machine_opens > 0
        assert news["opens"] == human_opens
        assert news["machine_opens"] == machine_opens
        human_clicks = event_count(dsn, "demo-newsletter", "message_click", True)
        bot_clicks = event_count(dsn, "demo-newsletter", "message_click", False)
        assert news["clicks"] == human_clicks and news["bot_clicks"] == bot_clicks > 0
        with_bots = report("demo-newsletter", include_bots="true")
        assert with_bots["opens"] == human_opens + machine_opens
        assert with_bots["clicks"] == human_clicks + bot_clicks
        assert news["unsubscribes"] == event_count(dsn, "demo-newsletter",
                                                   "message_unsubscribe")
        assert news["resubscribes"] == event_count(dsn, "demo-newsletter", "message_subscribe")
        # push and LINE have no opens to measure
        assert push["channel"] == "push" and line["channel"] == "line"
        assert push["opens"] is None and line["open_rate"] is None
        assert push["suppressed"] > 0  # stale push tokens from the first run

        # spread over weeks: events on many days, the first two weeks or more ago
        active = [d["date"] for d in news["days"] if d["opens"] or d["clicks"]]
        assert len(active) >= 6
        assert date.fromisoformat(active[0]) <= date.fromisoformat(last) - timedelta(days=14)
        # today's hits came live over HTTP: people, Apple's prefetch and a scanner
        live = {(row["user_agent"], row["is_head"], row["is_human"])
                for row in query(dsn, "SELECT DISTINCT user_agent, is_head, is_human"
                                      " FROM message_event_log WHERE event_name IN"
                                      " ('message_open', 'message_click')"
                                      ' AND "timestamp" >= $1', started)}
        assert ("Mozilla/5.0", False, False) in live
        assert any(head and not human for _, head, human in live)
        assert any(human for _, _, human in live)

        project = http.get("/v1/reports/project", params={"from": first, "to": last})
        assert project.status_code == 200, project.text
        codes = {e["code"] for e in project.json()["error_codes"]}
        assert {"Permanent:General", "messaging/registration-token-not-registered",
                "unknown"} <= codes
        assert project.json()["deliveries"] == sum(r["deliveries"] for r in reports.values())

    pages = httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=60)
    with pages:
        signed_in = pages.post("/reports/login", data={"api_key": API_KEY, "next": "/reports"},
                               follow_redirects=True)
        assert signed_in.status_code == 200
        for campaign in CAMPAIGNS:
            assert campaign in signed_in.text
            page = pages.get(f"/reports/campaigns/{campaign}")
            assert page.status_code == 200 and "<svg" in page.text  # its per-day chart
        assert pages.get("/reports/project").status_code == 200
    output = "\n".join(running.lines)
    assert f"http://127.0.0.1:{running.port}/reports" in output
    assert "demo-newsletter" in output and "curl" in output
    # SIGTERM to the demo alone stops the service it started
    assert running.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{running.port}/healthz", timeout=5)


def test_demo_refuses_a_database_it_was_not_given(databases: Databases, tmp_path: Path) -> None:
    dsn = databases.fresh()
    result = run_demo(demo_env(tmp_path, dsn), "--port", str(free_port()))
    assert result.returncode == 1
    assert "TRACKER_DATABASE_URL is set" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr
    assert scalar(dsn, "SELECT count(*) FROM campaigns") == 0


@pytest.mark.slow  # a demo of thousands of recipients, or a PostgreSQL of its own
def test_demo_on_its_own_embedded_database_then_refuses_to_fill_it_again() -> None:
    """The newcomer's path: no TRACKER_DATABASE_URL, a data dir of its own."""
    root = Path(tempfile.mkdtemp(prefix="tracker-demo-"))
    root.chmod(0o755)  # the embedded server runs as an unprivileged user under root
    data_dir = root / "data"
    env = demo_env(data_dir, None)
    try:
        first = run_demo(env, "--no-serve", "--audience", "40", "--port", str(free_port()))
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"embedded PostgreSQL in {data_dir / 'pgdata'}" in first.stdout
        assert "service stopped" in first.stdout
        assert not is_running(data_dir / "pgdata")  # stopped with the demo
        again = run_demo(env, "--no-serve", "--port", str(free_port()))
        assert again.returncode == 1
        assert "already holds 3 campaign(s)" in again.stderr and "--force" in again.stderr
        assert "Traceback" not in again.stderr
        assert not is_running(data_dir / "pgdata")
    finally:
        pg_ctl_stop(data_dir / "pgdata")
        shutil.rmtree(root, ignore_errors=True)
