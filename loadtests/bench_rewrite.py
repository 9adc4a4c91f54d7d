"""Rewriting speed (issue 3): personalised messages per second for a 100 KB
newsletter with 50 links, through the Python API and through bulk POST /v1/messages.

    python loadtests/bench_rewrite.py [--seconds 5] [--batch 500] [--skip-http]

Python API: one core, this process, counted per CPU-second of it (on a shared
machine wall time also counts other processes). "campaign body" is the usual case
(the same HTML for everyone, compiled once, each recipient gets its own tokens);
"personalised body" puts the recipient's name in the HTML text (a different body
per recipient, derived from the last one compiled, issue 16); "personalised link"
also puts the recipient's id in one link (that link is read again, the rest
derived); "personalised markup" adds a tag per recipient, so every body is
tokenized from scratch.

HTTP: the real service (``tracker serve``, one worker) pinned with ``taskset`` to
core 0, this client on core 1; each request carries the body once and ``--batch``
recipients, and the answer holds every rewritten message. The figure counts
recipients answered per second, and the deliveries rows are checked at the end.
Database: TRACKER_DATABASE_URL, else a throw-away embedded PostgreSQL (unpinned;
it does one COPY per request).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtests"))

from benchdb import bench_database  # noqa: E402

from tracker.rewrite import MessageIds, Rewriter  # noqa: E402
from tracker.tokens import Channel, TokenCodec  # noqa: E402

KEYS = "bench-key-0123456789abcdef"
API_KEY = "bench-api-key-0123456789"


def newsletter(links: int = 50, size: int = 100_000, name: str = "") -> str:
    """A table-layout newsletter of about ``size`` characters with ``links`` links."""
    filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
              "incididunt ut labore et dolore magna aliqua. ")
    head = ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>td{font-family:Arial}'
            "</style></head><body><!--[if mso]><table><tr><td><![endif]-->"
            f"<p>Hello {name or 'friend'},</p><table>")
    tail = ('</table><p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>'
            "<!--[if mso]></td></tr></table><![endif]--></body></html>")
    per_link = (size - len(head) - len(tail)) // links
    rows = []
    for i in range(links):
        link = (f'<a href="https://shop.example.com/item/{i}?ref=news&amp;c=spring" '
                f'style="color:#06c">Item {i}</a>')
        text = (filler * (per_link // len(filler) + 1))[: max(0, per_link - len(link) - 40)]
        rows.append(f'<tr><td style="padding:8px">{text}{link}</td></tr>\n')
    return head + "".join(rows) + tail


def bench_python(seconds: float) -> tuple[float, float, float, float]:
    """Messages per CPU-second: campaign body, personalised text, link and markup."""
    rewriter = Rewriter(TokenCodec([KEYS]), "https://t.example.com")
    html = newsletter()
    assert rewriter.rewrite(MessageIds(1, 1, 1, Channel.EMAIL), html=html).links == 50

    def body(mode: str, count: int) -> str:
        if mode == "campaign":
            return html
        if mode == "markup":
            return html.replace("Hello friend", f'Hello <b id="u{count}">user</b>')
        text = html.replace("Hello friend", f"Hello user {count}")
        if mode == "link":
            text = text.replace("/item/7?", f"/item/7?u={count}&amp;")
        return text

    def run(mode: str) -> float:
        """Per CPU-second of this process: on a shared machine, wall time also
        counts the time other processes held the core."""
        count, started, cpu = 0, time.perf_counter(), time.process_time()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                rewriter.rewrite(MessageIds(10_000 + count, 7, 9, Channel.EMAIL),
                                 html=body(mode, count))
                count += 1
        return count / (time.process_time() - cpu)

    return run("campaign"), run("text"), run("link"), run("markup")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_response(reader) -> bytes:
    """Read one HTTP/1.1 response (Content-Length or chunked) from a buffered socket
    reader; raise unless it is a 200."""
    status = reader.readline()
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(status.decode(errors="replace"))
    if b"content-length" in headers:
        return reader.read(int(headers[b"content-length"]))
    parts = []
    while (size := int(reader.readline().split(b";")[0], 16)) > 0:
        parts.append(reader.read(size))
        reader.readline()
    reader.readline()
    return b"".join(parts)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_pids(pid: int) -> list[int]:
    """The serve process and its worker children (uvicorn forks one per worker)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            found += server_pids(int(text))
    return found


def bench_http(dsn: str, seconds: float, batch: int, data_dir: Path) -> tuple[float, float]:
    port = free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=dsn, TRACKER_DATA_DIR=str(data_dir),
               TRACKER_SECRET_KEYS=KEYS, TRACKER_API_KEY=API_KEY,
               TRACKER_PUBLIC_URL=f"http://127.0.0.1:{port}")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() > 1 else []
    command = [*pin, sys.executable, "-m", "tracker", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    if pin:
        os.sched_setaffinity(0, {1})
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        html = newsletter()
        body = {"campaign_id": "bench", "schedule_task_id": "t1", "channel": "email",
                "html": html}
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
            warm = http.post("/v1/messages", json={**body, "recipients": [{"user_id": "w"}]})
            warm.raise_for_status()
            assert warm.json()[0]["html"].count("/c/") == 50
        pids = server_pids(server.pid)
        cpu_before = sum(cpu_seconds(p) for p in pids)
        started = time.perf_counter()

        def client(name: int) -> int:
            """One keep-alive connection posting batches until the time is up; two of
            them keep the server busy while the other reads its answer. A raw socket,
            not httpx: parsing 50 MB answers through h11 on this side of the machine
            would measure the client instead of the server."""
            sent = 0
            with socket.create_connection(("127.0.0.1", port)) as sock, \
                    sock.makefile("rb", buffering=1 << 20) as reader:
                while time.perf_counter() - started < seconds:
                    recipients = [{"user_id": f"u{name}-{sent + i}"} for i in range(batch)]
                    payload = json.dumps({**body, "recipients": recipients}).encode()
                    sock.sendall(
                        b"POST /v1/messages HTTP/1.1\r\nHost: bench\r\n"
                        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
                        b"Content-Type: application/json\r\nContent-Length: "
                        + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                    answer = read_response(reader)
                    # counted, not parsed (the warm-up answer was parsed in full)
                    assert answer.count(b'"delivery_id"') == batch
                    sent += batch
            return sent

        with ThreadPoolExecutor(2) as pool:
            sent = sum(pool.map(client, range(2)))
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
        rows = asyncio_run_count(dsn)
        assert rows == sent + 1, f"{rows} deliveries recorded for {sent + 1} messages"
        return sent / elapsed, sent / cpu
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def asyncio_run_count(dsn: str) -> int:
    import asyncio

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
                " WHERE c.campaign_id = 'bench'")
        finally:
            await conn.close()

    return asyncio.run(count())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    size = len(newsletter())
    print(f"newsletter: {size:,} characters, 50 links, single core")
    campaign, personalised, linked, markup = bench_python(args.seconds)
    print(f"Python API, campaign body:       {campaign:8,.0f} messages/s (target 5,000)")
    print(f"Python API, personalised body:   {personalised:8,.0f} messages/s (target 2,000)")
    print(f"Python API, personalised link:   {linked:8,.0f} messages/s")
    print(f"Python API, personalised markup: {markup:8,.0f} messages/s (tokenized each time)")
    if args.skip_http:
        return
    with bench_database() as (dsn, tmp):
        rate, per_cpu = bench_http(dsn, args.seconds, args.batch, tmp / "data")
        print(f"bulk POST /v1/messages ({args.batch}/request): {rate:8,.0f} messages/s "
              "(target 2,000)")
        print(f"  server CPU: {per_cpu:,.0f} messages per CPU-second of the service "
              f"({rate / per_cpu:.0%} of its core busy)")


if __name__ == "__main__":
    main()
