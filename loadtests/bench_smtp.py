"""SMTP relay speed (issue 18): relayed messages per second for the ~100 KB / 50-link
newsletter of bench_rewrite.py, each to one recipient, to a local sink.

    python loadtests/bench_smtp.py [--seconds 10] [--clients 4] [--recipients 1]
                                   [--pipelining]

The relay is the real command (``tracker smtp``), pinned with ``taskset`` to core 0;
the sending clients (smtplib, one keep-alive connection each) and the upstream sink
(aiosmtpd, counting what it accepts) run in this process on core 1. Every message
carries ``X-Tracker-Campaign``, so each copy is rewritten, recorded and relayed
before the relay answers 250. Figures: messages per second (wall), and per
CPU-second of the relay (on a shared machine wall time also counts other work).
At the end the deliveries rows must equal the copies the sink accepted.
Database: TRACKER_DATABASE_URL, else a throw-away embedded PostgreSQL (unpinned).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtests"))

from bench_rewrite import cpu_seconds, free_port, newsletter  # noqa: E402
from benchdb import bench_database  # noqa: E402

KEYS = "bench-key-0123456789abcdef"
API_KEY = "bench-api-key-0123456789"


class CountingSink:
    """The upstream MTA: accepts everything, keeps only a count."""

    def __init__(self) -> None:
        self.accepted = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.accepted += len(envelope.rcpt_tos)
        return "250 2.0.0 queued"


class PipeliningSink(CountingSink):
    """The sink offering PIPELINING (RFC 2920), as the big providers' MTAs do;
    aiosmtpd takes pipelined commands but does not say so by itself."""

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "news@sender.example"
    msg["To"] = "list@sender.example"
    msg["Subject"] = "Spring newsletter"
    msg["X-Tracker-Campaign"] = "bench"
    msg["X-Tracker-Task"] = "t1"
    msg.set_content("Spring newsletter: https://shop.example.com/spring\n")
    msg.add_alternative(newsletter(), subtype="html")
    return msg.as_bytes(policy=SMTP)


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"tracker smtp exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("tracker smtp did not start listening")


def count_deliveries(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign"
                " WHERE c.campaign_id = 'bench'")
            return found
        finally:
            await conn.close()

    return asyncio.run(count())


def bench(dsn: str, seconds: float, clients: int, recipients: int,
          data_dir: Path, pipelining: bool = False) -> tuple[int, float, float]:
    sink = PipeliningSink() if pipelining else CountingSink()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    port = free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=dsn, TRACKER_DATA_DIR=str(data_dir),
               TRACKER_SECRET_KEYS=KEYS, TRACKER_API_KEY=API_KEY,
               TRACKER_PUBLIC_URL="https://t.example.com",
               TRACKER_SMTP_LISTEN=f"127.0.0.1:{port}",
               TRACKER_SMTP_UPSTREAM=f"127.0.0.1:{sink_port}")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 \
        else []
    relay = subprocess.Popen([*pin, sys.executable, "-m", "tracker", "smtp", "--log-level",
                              "warning"], env=env, cwd=ROOT, start_new_session=True)
    if pin:
        os.sched_setaffinity(0, {1})
    try:
        wait_listening(port, relay)
        raw = message()
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as warm:
            warm.sendmail("news@sender.example", ["warm@example.org"], raw)
        cpu_before = cpu_seconds(relay.pid)
        started = time.perf_counter()

        def client(name: int) -> int:
            sent = 0
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
                while time.perf_counter() - started < seconds:
                    to = [f"u{name}-{sent + i}@example.org" for i in range(recipients)]
                    smtp.sendmail("news@sender.example", to, raw)
                    sent += recipients
            return sent

        with ThreadPoolExecutor(clients) as pool:
            sent = sum(pool.map(client, range(clients)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(relay.pid) - cpu_before
        rows = count_deliveries(dsn)
        assert sink.accepted == sent + 1, f"sink took {sink.accepted} of {sent + 1} copies"
        assert rows == sent + 1, f"{rows} deliveries recorded for {sent + 1} copies"
        return sent, sent / elapsed, sent / cpu
    finally:
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait(60)
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=1,
                        help="recipients per SMTP message (each gets its own copy)")
    parser.add_argument("--pipelining", action="store_true",
                        help="the sink offers PIPELINING (off: the figures of loadtests/README)")
    args = parser.parse_args()
    print(f"message: {len(message()):,} bytes, 50 links in the html part, "
          f"{args.recipients} recipient(s) per message, {args.clients} clients"
          + (", the sink offers PIPELINING" if args.pipelining else ""))
    with bench_database() as (dsn, tmp):
        sent, rate, per_cpu = bench(dsn, args.seconds, args.clients, args.recipients,
                                    tmp / "data", args.pipelining)
        print(f"relayed: {sent:,} copies, {rate:8,.0f} copies/s (goal 500 on one core)")
        print(f"  relay CPU: {per_cpu:,.0f} copies per CPU-second of `tracker smtp` "
              f"({rate / per_cpu:.0%} of its core busy)")


if __name__ == "__main__":
    main()
