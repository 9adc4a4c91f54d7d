"""``tracker demo``: a realistic sample in a database of its own, then the service.

One command for a first start: it creates the embedded database under
``TRACKER_DATA_DIR`` (``./.tracker``), starts the service on a loopback port,
fills it with three weeks of three campaigns (a weekly email newsletter with HTML
and text, an app push coupon, a LINE store event) to about a thousand people,
prints what it did and where to look, and keeps serving until Ctrl-C. With
``--no-serve`` it stops once the sample is in; ``tracker serve`` shows the same
data later.

How the sample gets in, and why this way. Everything a sender does goes through
the service's real doors over HTTP: campaigns (``PUT /v1/campaigns``), every
message rewritten by the send path (``POST /v1/messages``: delivery ids minted,
deliveries recorded, earlier hard bounces and unsubscribes answered
``suppressed``), outcomes with bounces and error codes (``POST /v1/outcomes``, with
the send times of their runs) and purchases (``POST /v1/conversions``, credited by
the tracker to the buyer's last human click). The hits of the newest newsletter
run go live over HTTP to ``/o/``, ``/c/`` and ``/u/``: people, Apple Mail Privacy
Protection prefetches (``Mozilla/5.0``), security gateways fetching every link with
HEAD or under a scanner's name; the edge classifies and journals them and the
shipper lands them, as in production. The reactions to the older runs happened
days ago, and the edge stamps a hit with the time it arrives (that is what makes
it trustworthy), so those are not replayed over HTTP with a false clock: they are
made into exactly the events the edge would have journaled for those tokens
(same ids, verdict, flags, user agent and URL) and landed through the shipper's
own landing code, ``tracker.store.events.land``, which keeps every rollup and the
suppression list as it does for live events (see ``tracker.demo.feed``). One
visible consequence: a recipient suppressed by an earlier bounce or unsubscribe
is recorded by the send path at the moment of the run, so ``suppressed`` shows
on today's date.

It never touches a database it did not create unless told: it refuses when
``TRACKER_DATABASE_URL`` is set, or when the embedded database already holds
campaigns, unless ``--force`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import click

from tracker.cli.database import connect, database_url, migrate_or_exit, settings_or_exit
from tracker.config import Settings
from tracker.demo.feed import DemoError, Feeder, Http, Tally
from tracker.demo.plan import CAMPAIGNS, people, schedule
from tracker.tokens import TokenCodec

#: seconds the service may take to answer /healthz after it is started
START_TIMEOUT = 60


def _loopback(host: str) -> str:
    """The address to reach a service listening on ``host`` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port(host: str, port: int) -> None:
    """Refuse early, before touching any database, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is in use (another tracker serve?); stop it, or "
                    "choose another port with --port") from None
            raise click.ClickException(f"cannot listen on {host}:{port} ({exc.strerror}); "
                                       "choose another with --host/--port") from None


async def _campaign_count(dsn: str) -> int:
    """Campaigns already in the database (0 for one never migrated)."""
    async with connect(dsn) as conn:
        if await conn.fetchval("SELECT to_regclass('campaigns')") is None:
            return 0
        count: int = await conn.fetchval("SELECT count(*) FROM campaigns")
        return count


def _refuse_external() -> None:
    raise click.ClickException(
        "TRACKER_DATABASE_URL is set: the demo writes sample campaigns, and would write "
        "them into the database it names. Unset it to use an embedded database of the "
        "demo's own (under TRACKER_DATA_DIR), or pass --force to fill that database anyway.")


def _refuse_used(settings: Settings, count: int) -> None:
    raise click.ClickException(
        f"the embedded database in {settings.data_dir / 'pgdata'} already holds {count} "
        "campaign(s); the demo only fills a database of its own. Give it an empty data "
        "directory (e.g. TRACKER_DATA_DIR=./.tracker-demo tracker demo), or pass --force to "
        "add the sample to this one.")


def _start_service(settings: Settings, dsn: str, host: str, port: int) -> subprocess.Popen[bytes]:
    """``tracker serve`` in a child process on the same database and data dir; in a
    session of its own, so Ctrl-C reaches it once, forwarded by this process."""
    env = dict(os.environ, TRACKER_DATABASE_URL=dsn, TRACKER_DATA_DIR=str(settings.data_dir))
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "serve", "--host", host, "--port", str(port),
         "--log-level", "warning"], env=env, start_new_session=True)


def _wait_ready(process: subprocess.Popen[bytes], http: Http) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the service stopped at start (exit status {process.returncode}); "
                            "its messages are above")
        with contextlib.suppress(OSError):
            if http.request("GET", "/healthz")[0] == 200:
                return
        time.sleep(0.1)
    raise DemoError(f"the service did not answer on port {http.port} within {START_TIMEOUT} s; "
                    "its messages are above")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _serve_until_stopped(process: subprocess.Popen[bytes]) -> int:
    """Wait for the service; Ctrl-C, SIGTERM or SIGHUP (the terminal closed) here
    stops it gracefully (SIGTERM)."""

    def forward(signum: int, frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return process.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _period(settings: Settings) -> tuple[date, date]:
    """The report pages' default period: the last 30 days, today included."""
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return today - timedelta(days=29), today


def _cell(value: object) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _figures(http: Http, first: date, last: date) -> list[str]:
    """The campaigns' headline figures, read back through the report API."""
    columns = ("deliveries", "not delivered", "suppressed", "opened", "machine opens", "clicked",
               "bot clicks", "unsubscribed", "conversions")
    lines = ["  " + f"{'campaign':<17}" + "".join(f"{c:>14}" for c in columns)]
    for campaign in CAMPAIGNS:
        r = _report(http, campaign.campaign_id, first, last)
        values = (r["deliveries"], r["bounces"] + r["soft_bounces"] + r["failures"],
                  r["suppressed"], r["open_users"], r.get("machine_opens"), r["click_users"],
                  r.get("bot_clicks"), r["unsubscribes"], r["conversions"])
        lines.append("  " + f"{campaign.campaign_id:<17}"
                     + "".join(f"{_cell(v):>14}" for v in values))
    return lines


def _report(http: Http, campaign_id: str, first: date, last: date) -> dict[str, Any]:
    status, body = http.request(
        "GET", f"/v1/reports/campaigns/{campaign_id}?from={first}&to={last}",
        headers={"Authorization": f"Bearer {http.api_key}"})
    if status != 200:
        raise DemoError(f"the campaign report of {campaign_id} answered {status}: "
                        f"{body.decode('utf-8', 'replace')[:300]}")
    report: dict[str, Any] = json.loads(body)
    return report


def _where_to_look(settings: Settings, base: str, first: date, last: date) -> list[str]:
    key_file = settings.data_dir / "api_key"
    from_env = bool(os.environ.get("TRACKER_API_KEY"))
    key = "$TRACKER_API_KEY" if from_env else f"$(cat {_relative(key_file)})"
    return [
        f"  report pages   {base}/reports  (sign in with the API key)",
        "  API key        " + ("from TRACKER_API_KEY" if from_env
                               else f"{settings.api_key}  (kept in {key_file})"),
        f"  campaign JSON  curl -s -H \"Authorization: Bearer {key}\" \\",
        f"                   '{base}/v1/reports/campaigns/demo-newsletter?from={first}&to={last}'",
        f"  in a terminal  tracker report project --from {first} --to {last}",
        "                 tracker events   (the newest rows of the message_event_log view)",
    ]


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _summary(tally: Tally) -> list[str]:
    def listed(counter: Mapping[str, int]) -> str:
        return ", ".join(f"{n:,} {label}" for label, n in sorted(counter.items())) or "none"

    conversions = tally.conversions
    return [
        f"  {tally.messages:,} messages rewritten by POST /v1/messages "
        f"({tally.suppressed:,} answered suppressed); outcomes: {listed(tally.outcomes)}",
        f"  history landed with its own dates: {listed(tally.history)}",
        f"  live over HTTP: {listed(tally.live)}",
        f"  conversions: {conversions.get('stored', 0):,} posted, "
        f"{conversions.get('attributed', 0):,} credited to a click",
    ]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--force", is_flag=True,
              help="Fill a database that is not the demo's own: the one TRACKER_DATABASE_URL "
                   "names, or an embedded one that already holds campaigns.")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Keep serving once the sample is in (Ctrl-C stops), or stop.")
@click.option("--audience", default=1000, show_default=True, type=click.IntRange(20, 10_000),
              help="People in the sample; each gets several messages.")
@click.option("--seed", default=1, show_default=True, help="Seed of the sample's randomness.")
def demo(host: str, port: int, force: bool, serve: bool, audience: int, seed: int) -> None:
    """Fill a new database with a realistic sample, then serve it (the report pages
    show three campaigns over three weeks)."""
    started = time.monotonic()
    if os.environ.get("TRACKER_DATABASE_URL") and not force:
        _refuse_external()
    if not os.environ.get("TRACKER_PUBLIC_URL"):
        # links in the sample's messages point at the service the demo starts
        os.environ["TRACKER_PUBLIC_URL"] = f"http://{_in_url(_loopback(host))}:{port}"
    settings = settings_or_exit()
    _check_port(host, port)
    dsn = database_url(settings)
    try:
        existing = asyncio.run(_campaign_count(dsn))
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(f"cannot reach the database ({exc}); check "
                                   "TRACKER_DATABASE_URL") from None
    if existing and not force:
        _refuse_used(settings, existing)
    migrate_or_exit(dsn)
    # stopped while filling: stop the service, and the database too (at exit)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, lambda number, _: sys.exit(128 + number))
    where = (f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}"
             if not settings.database_url else "the database TRACKER_DATABASE_URL names")
    click.echo(f"tracker demo: filling {where}")
    process = _start_service(settings, dsn, host, port)
    base = f"http://{_in_url(_loopback(host))}:{port}"
    http = Http(_loopback(host), port, settings.api_key)
    try:
        _wait_ready(process, http)
        rng = random.Random(seed)
        now = datetime.now(UTC)
        feeder = Feeder(_loopback(host), port, settings.api_key, dsn,
                        TokenCodec(settings.secret_keys), rng, now, click.echo)
        tally = feeder.run(schedule(now, people(audience, rng)))
        first, last = _period(settings)
        figures = _figures(http, first, last)
    except (DemoError, OSError, asyncpg.PostgresError) as exc:
        _stop(process)
        raise click.ClickException(f"the sample could not be completed: {exc}") from None
    except BaseException:
        _stop(process)
        raise
    finally:
        http.close()
    click.echo(f"tracker demo: done in {time.monotonic() - started:.0f} s")
    for line in _summary(tally):
        click.echo(line)
    click.echo(f"tracker demo: the last 30 days ({first} to {last}), people only "
               "(machine opens and bot clicks beside them):")
    for line in figures:
        click.echo(line)
    click.echo("tracker demo: where to look")
    for line in _where_to_look(settings, base, first, last):
        click.echo(line)
    if not serve:
        _stop(process)
        click.echo("tracker demo: service stopped; `tracker serve` serves the same data")
        return
    click.echo(f"tracker demo: serving on {base} until Ctrl-C")
    code = _serve_until_stopped(process)
    if code not in (0, -signal.SIGTERM):
        raise click.ClickException(f"the service stopped with exit status {code}")
    click.echo("tracker demo: stopped; `tracker serve` serves the same data again")
