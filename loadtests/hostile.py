"""Hostile traffic beside normal traffic: do strangers slow or fill the service?

    .venv/bin/python loadtests/hostile.py                    # starts its own tracker
    .venv/bin/python loadtests/hostile.py --seconds 20 --json

Normal clients fetch pixels at a fixed rate (keep-alive, a real mail client's user
agent) through three phases: quiet, attack, after. During the attack, on loopback
only and bounded in time:

- ``user agents``: pixel hits, each with a never-seen 6 KB user agent;
- ``huge headers``: requests with a 1 MB header (answered 431, connection closed);
- ``slow clients``: connections trickling a request's headers a byte a second;
- ``large bodies``: a 50 MB chunked body to ``/v1/outcomes`` (answered 413) and a
  10 MB batch that is parsed and validated, then refused (422: nothing lands).

Printed: the normal clients' p50/p99/max per phase, the server's resident memory
before, at the peak of and after the attack, what the attackers were answered,
and the two goals (p99 under attack within 2x quiet; memory back within 10%).
``tests/test_hostile_run.py`` runs it at a small size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MAIL_CLIENT = b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 " \
              b"(KHTML, like Gecko) Mobile/15E148"


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def row(self, name: str, rss: float) -> dict:
        ordered = sorted(self.latencies) or [0.0]
        return {"phase": name, "requests": len(self.latencies), "errors": self.errors,
                "p50_ms": round(statistics.median(ordered) * 1e3, 2),
                "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0]
                                * 1e3, 2),
                "max_ms": round(ordered[-1] * 1e3, 2), "rss_mb": round(rss, 1)}


@dataclass
class Attack:
    answers: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: str, answer: str) -> None:
        self.answers.setdefault(kind, {})
        self.answers[kind][answer] = self.answers[kind].get(answer, 0) + 1


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn workers), in MB."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(p) for p in found]
    return kids + [g for k in kids for g in _children(k)]


async def _status(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def normal_client(port: int, paths: list[str], phase: list[Phase], stop: asyncio.Event,
                        interval: float) -> None:
    """One mail client: a pixel every ``interval`` seconds on a kept-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while not stop.is_set():
            path = paths[n % len(paths)]
            n += 1
            started = time.perf_counter()
            try:
                writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\nUser-Agent: %s\r\n\r\n"
                             % (path.encode(), MAIL_CLIENT))
                status, _ = await _status(reader)
                if status != 200:
                    phase[0].errors += 1
            except (OSError, asyncio.IncompleteReadError):
                phase[0].errors += 1
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            phase[0].latencies.append(time.perf_counter() - started)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    finally:
        writer.close()


async def unique_agents(port: int, paths: list[str], attack: Attack, stop: asyncio.Event,
                        rate: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while not stop.is_set():
        agent = b"Mozilla/5.0 (compatible; " + secrets.token_hex(3000).encode() + b")"
        writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\nUser-Agent: %s\r\n\r\n"
                     % (paths[n % len(paths)].encode(), agent))
        n += 1
        try:
            status, _ = await _status(reader)
            attack.count("user agents", str(status))
        except (OSError, asyncio.IncompleteReadError):
            attack.count("user agents", "closed")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(1 / rate)
    writer.close()


async def huge_headers(port: int, attack: Attack, stop: asyncio.Event, rate: float) -> None:
    filler = b"X-Filler: " + b"a" * 1_000_000 + b"\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + filler + b"\r\n")
            answer = await asyncio.wait_for(reader.read(200), 10)
            attack.count("huge headers", answer.split(b" ", 2)[1].decode() if answer else "closed")
            writer.close()
        except (TimeoutError, OSError, IndexError):
            attack.count("huge headers", "closed")
        await asyncio.sleep(1 / rate)


async def slow_client(port: int, attack: Attack, stop: asyncio.Event) -> None:
    """Slowloris: a request's headers, one byte a second, for as long as allowed."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        attack.count("slow clients", "refused")
        return
    started = time.monotonic()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        while not stop.is_set():
            writer.write(b"X")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    attack.count("slow clients", f"closed by server after ~{_tens(started)} s")
                    return
            except TimeoutError:
                continue
        attack.count("slow clients", "still open at the end")
    except OSError:
        attack.count("slow clients", f"closed by server after ~{_tens(started)} s")
    finally:
        writer.close()


def _tens(started: float) -> int:
    return int(round(time.monotonic() - started, -1))


async def large_bodies(port: int, api_key: str, attack: Attack, stop: asyncio.Event,
                       batch_mb: float, refused_mb: float) -> None:
    """A 50 MB chunked body (413) and a 10 MB batch parsed then refused (422), in turn."""
    row = {"delivery_id": 1, "campaign_id": "hostile", "schedule_task_id": "t", "user_id": "u",
           "channel": "email", "status": "not-a-status", "sent_at": "2026-01-01T00:00:00Z"}
    line = json.dumps(row).encode()
    batch = b"[" + b",".join([line] * int(batch_mb * 1e6 / (len(line) + 1))) + b"]"
    chunk = b"x" * 1_000_000
    auth = b"Authorization: Bearer " + api_key.encode() + b"\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\n" + auth +
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(OSError):  # the server answers before the end
                for _ in range(int(refused_mb)):
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            status, _ = await asyncio.wait_for(_status(reader), 30)
            attack.count(f"{refused_mb:g} MB body", str(status))
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            attack.count(f"{refused_mb:g} MB body", "closed")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\n" + auth +
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(batch))
            writer.write(batch)
            await writer.drain()
            status, _ = await asyncio.wait_for(_status(reader), 60)
            attack.count(f"{batch_mb:g} MB batch", str(status))
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            attack.count(f"{batch_mb:g} MB batch", "closed")


ATTACKS = ("agents", "headers", "slow", "bodies")


async def run(base_url: str, api_key: str, pid: int, seconds: float, *, slow: int = 200,
              agents_per_second: float = 100, batch_mb: float = 10,
              refused_mb: float = 50, only: tuple[str, ...] = ATTACKS) -> dict:
    port = int(base_url.rsplit(":", 1)[1])
    paths = mint_pixels(base_url, api_key, 40)
    phases = {"quiet": Phase(), "attack": Phase(), "after": Phase()}
    current = [phases["quiet"]]
    stop_normal = asyncio.Event()
    normal = [asyncio.create_task(normal_client(port, paths, current, stop_normal, 0.02))
              for _ in range(4)]
    # warm up: connections made, caches filled, the user-agent parser loaded
    await asyncio.sleep(3)
    phases["quiet"] = current[0] = Phase()
    rss_start = rss_mb(pid)
    await asyncio.sleep(seconds)

    current[0] = phases["attack"]
    attack = Attack()
    stop_attack = asyncio.Event()
    attackers = []
    if "agents" in only:
        attackers += [asyncio.create_task(unique_agents(port, paths, attack, stop_attack,
                                                        agents_per_second / 2)) for _ in range(2)]
    if "headers" in only:
        attackers.append(asyncio.create_task(huge_headers(port, attack, stop_attack, 5)))
    if "slow" in only:
        attackers += [asyncio.create_task(slow_client(port, attack, stop_attack))
                      for _ in range(slow)]
    if "bodies" in only:
        attackers.append(asyncio.create_task(large_bodies(port, api_key, attack, stop_attack,
                                                          batch_mb, refused_mb)))
    peak = rss_start
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        await asyncio.sleep(0.2)
        peak = max(peak, rss_mb(pid))
    stop_attack.set()
    await asyncio.wait(attackers, timeout=70)
    for task in attackers:
        task.cancel()

    phases["after"] = current[0] = Phase()
    await asyncio.sleep(seconds)
    stop_normal.set()
    await asyncio.gather(*normal, return_exceptions=True)
    rss_end = rss_mb(pid)
    rows = [phases["quiet"].row("quiet", rss_start), phases["attack"].row("attack", peak),
            phases["after"].row("after", rss_end)]
    quiet_p99 = max(rows[0]["p99_ms"], 0.001)
    return {
        "phases": rows,
        "attack": attack.answers,
        "p99_attack_over_quiet": round(rows[1]["p99_ms"] / quiet_p99, 2),
        "rss_after_over_start": round(rss_end / rss_start, 3) if rss_start else None,
    }


def mint_pixels(base_url: str, api_key: str, count: int) -> list[str]:
    """Pixel paths of ``count`` real deliveries, minted through the send API."""
    recipients = [{"user_id": f"reader-{i}", "html": "<html><body>Hello</body></html>"}
                  for i in range(count)]
    r = httpx.post(base_url + "/v1/messages", timeout=60,
                   headers={"Authorization": f"Bearer {api_key}"},
                   json={"campaign_id": "hostile", "schedule_task_id": "run", "channel": "email",
                         "recipients": recipients})
    r.raise_for_status()
    paths = re.findall(r"/o/[A-Za-z0-9_.\-]+", r.text)
    if len(paths) < count:
        raise SystemExit(f"expected {count} pixels from /v1/messages, got {len(paths)}")
    return paths


def print_table(result: dict) -> None:
    print(f"{'phase':<8}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'RSS MB':>9}")
    for row in result["phases"]:
        print(f"{row['phase']:<8}{row['requests']:>10}{row['errors']:>8}{row['p50_ms']:>9}"
              f"{row['p99_ms']:>9}{row['max_ms']:>9}{row['rss_mb']:>9}")
    print("attackers were answered:")
    for kind, answers in result["attack"].items():
        print(f"  {kind}: " + ", ".join(f"{a} x{n}" for a, n in sorted(answers.items())))
    ratio, memory = result["p99_attack_over_quiet"], result["rss_after_over_start"]
    print(f"normal p99 under attack / quiet: {ratio}x (goal <= 2x)"
          f" {'MET' if ratio <= 2 else 'NOT MET'}")
    print(f"memory after / start: {memory} (goal <= 1.10) "
          f"{'MET' if memory is not None and memory <= 1.10 else 'NOT MET'}")


def start_tracker(data_dir: Path, port: int, api_key: str) -> subprocess.Popen:
    env = dict(os.environ, TRACKER_DATA_DIR=str(data_dir), TRACKER_API_KEY=api_key,
               TRACKER_PUBLIC_URL=f"http://127.0.0.1:{port}")
    env.pop("TRACKER_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the tracker did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running tracker (default: start one on an embedded "
                                      "database in a temporary directory)")
    parser.add_argument("--api-key", default=os.environ.get("TRACKER_API_KEY", ""))
    parser.add_argument("--pid", type=int, help="the running tracker's process id (for RSS)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--slow", type=int, default=200, help="slow clients")
    parser.add_argument("--agents-per-second", type=float, default=100)
    parser.add_argument("--batch-mb", type=float, default=10)
    parser.add_argument("--refused-mb", type=float, default=50)
    parser.add_argument("--only", default=",".join(ATTACKS),
                        help=f"comma-separated attacks to run, of {', '.join(ATTACKS)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    process = None
    with tempfile.TemporaryDirectory(prefix="tracker-hostile-") as tmp:
        if args.url:
            if not (args.api_key and args.pid):
                raise SystemExit("--url needs --api-key and --pid")
            url, key, pid = args.url.rstrip("/"), args.api_key, args.pid
        else:
            port, key = 18_000 + os.getpid() % 1000, secrets.token_urlsafe(24)
            Path(tmp).chmod(0o755)  # the embedded PostgreSQL runs as another user
            process = start_tracker(Path(tmp) / "data", port, key)
            url, pid = f"http://127.0.0.1:{port}", process.pid
        try:
            result = asyncio.run(run(url, key, pid, args.seconds, slow=args.slow,
                                     agents_per_second=args.agents_per_second,
                                     batch_mb=args.batch_mb, refused_mb=args.refused_mb,
                                     only=tuple(args.only.split(","))))
        finally:
            if process is not None:
                process.terminate()
                process.wait(60)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
