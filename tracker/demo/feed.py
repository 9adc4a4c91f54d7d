"""Telling the demo's story to a running tracker, through the tracker's own doors.

- Campaigns, messages, outcomes and conversions go through the management API
  over HTTP (``PUT /v1/campaigns``, ``POST /v1/messages``, ``/v1/outcomes``,
  ``/v1/conversions``), as a sender would: every message is rewritten by the real
  send path, which mints the delivery ids, records the deliveries and answers
  ``suppressed`` for people an earlier bounce or unsubscribe put on the list.
- The live send's hits go over HTTP to ``/o/``, ``/c/`` and ``/u/`` with the
  tokens its messages carry: the edge classifies and journals them, the shipper
  lands them, with the time they arrive.
- The hits of earlier sends happened days ago, and the edge can only stamp a hit
  with the time it arrives. They are made here into exactly the events the edge
  would have journaled (the token's ids, the classifier's verdict, HEAD flag, user
  agent and URL ids) and landed through ``tracker.store.events.land``, the
  shipper's own landing code, so the rollups, suppressions and reports treat them
  as they treat every other event.

The HTTP client is the standard library's: the demo adds no dependency.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tracker.classify import BurstDetector, Verdict, classify_hit, to_flags
from tracker.demo.plan import CAMPAIGNS, Hit, Send, react
from tracker.events import Flag, Kind, dictionary_id
from tracker.store.events import land, us_from_ts
from tracker.tokens import InvalidToken, Purpose, TokenCodec, TokenData

#: a token in a rewritten message: /o/, /c/ or /u/, payload, ".", 22-character signature
_TOKEN = re.compile(r"/([ocu])/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22})")
PURPOSES = {"o": Purpose.OPEN, "c": Purpose.CLICK, "u": Purpose.UNSUBSCRIBE}
KINDS = {"o": Kind.OPEN, "c": Kind.CLICK, "u": Kind.UNSUBSCRIBE}
#: what the tracker answers a hit that it recorded
ANSWERS = {"o": 200, "c": 302, "u": 200}
#: the journal name the history is landed under (``journal_positions`` keeps its row)
HISTORY_JOURNAL = "demo-history"
#: parallel connections for the live hits
LIVE_CONNECTIONS = 8


class DemoError(Exception):
    """The service refused something or could not be reached; the message says what."""


class Http:
    """One keep-alive HTTP/1.1 connection to the service."""

    def __init__(self, host: str, port: int, api_key: str, timeout: float = 120) -> None:
        self.host, self.port, self.api_key, self.timeout = host, port, api_key, timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        reused = self._conn is not None
        try:
            return self._exchange(method, path, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            if not reused:
                raise
        except OSError:
            self.close()
            raise
        # the server had closed the kept-alive connection before reading the request
        return self._exchange(method, path, body, headers)

    def _exchange(self, method: str, path: str, body: bytes | None,
                  headers: dict[str, str] | None) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._conn.request(method, path, body=body, headers=headers or {})
        response = self._conn.getresponse()
        return response.status, response.read()

    def api(self, method: str, path: str, payload: Any) -> Any:
        status, body = self.request(method, path, json.dumps(payload).encode(), {
            "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"})
        if status >= 400:
            raise DemoError(f"{method} {path} answered {status}: "
                            f"{body.decode('utf-8', 'replace')[:500]}")
        return json.loads(body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Message:
    """A rewritten message: its delivery and the tokens it carries."""

    user_id: str
    delivery_id: int
    tokens: dict[str, tuple[str, TokenData]]  # "o" and "u": (token, its data)
    links: list[tuple[str, TokenData]]  # click tokens, by link position

    def token(self, hit: Hit) -> tuple[str, TokenData]:
        return self.links[hit.link] if hit.path == "c" else self.tokens[hit.path]


def read_message(answer: dict[str, Any], codec: TokenCodec) -> Message:
    """The tokens of one ``POST /v1/messages`` answer, checked by the edge's verifier."""
    body = answer.get("html") or answer.get("text") or ""
    unsubscribe = (answer.get("headers") or {}).get("List-Unsubscribe", "")
    tokens: dict[str, tuple[str, TokenData]] = {}
    links: dict[int, tuple[str, TokenData]] = {}
    for path, token in _TOKEN.findall(body + " " + unsubscribe):
        try:
            data = codec.verify(PURPOSES[path], token)
        except InvalidToken as exc:
            raise DemoError(f"the service signed a token this process cannot verify ({exc}); "
                            "run the demo with the service's TRACKER_SECRET_KEYS") from None
        if path == "c":
            links.setdefault(data.link_position, (token, data))
        else:
            tokens.setdefault(path, (token, data))
    return Message(answer["user_id"], int(answer["delivery_id"]), tokens,
                   [links[p] for p in sorted(links)])


@dataclass
class Tally:
    """What the demo did, for its report to the person who ran it."""

    messages: int = 0
    suppressed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: events landed with their own (past) times, by "kind by whom"
    history: Counter[str] = field(default_factory=Counter)
    #: hits sent over HTTP to the running service, by "kind by whom"
    live: Counter[str] = field(default_factory=Counter)
    conversions: dict[str, int] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


def _kind(hit: Hit) -> Kind:
    return Kind.SUBSCRIBE if hit.resubscribes else KINDS[hit.path]


def _label(hit: Hit) -> str:
    if hit.path == "u":
        return "resubscribes" if hit.resubscribes else "unsubscribes"
    return f"{'opens' if hit.path == 'o' else 'clicks'} by {hit.by}"


class History:
    """Hits that happened before now, made into the events the edge would have
    journaled for them and landed as one shipped batch."""

    def __init__(self) -> None:
        self.hits: list[tuple[Hit, TokenData]] = []

    def add(self, hit: Hit, data: TokenData) -> None:
        self.hits.append((hit, data))

    def batch(self) -> tuple[list[tuple[int, ...]], dict[int, bytes], dict[int, bytes]]:
        """(events, urls, user agents) as ``land`` takes them. The verdict is the
        recorder's: ``classify_hit`` on user agent, method and kind, and a burst of
        clicks on one delivery's links (in time order) makes a scanner click."""
        events: list[tuple[int, ...]] = []
        urls: dict[int, bytes] = {}
        agents: dict[int, bytes] = {}
        bursts = BurstDetector()
        for hit, data in sorted(self.hits, key=lambda pair: pair[0].at):
            kind = _kind(hit)
            agent = hit.user_agent.encode()  # short: nothing for the edge to cut off
            agent_id = dictionary_id(agent)
            agents[agent_id] = agent
            ts_us = us_from_ts(hit.at)
            verdict = classify_hit(agent, hit.method, kind)
            url_id = position = 0
            if kind == Kind.CLICK:
                position = data.link_position
                url = data.url.encode("utf-8")
                url_id = dictionary_id(url)
                urls[url_id] = url
                if bursts.observe(data.delivery_id, ts_us / 1e6, position):
                    verdict = Verdict.SCANNER_CLICK
            flags = to_flags(verdict) | (Flag.HEAD if hit.method == "HEAD" else 0)
            events.append((ts_us, data.delivery_id, url_id, agent_id, data.campaign,
                           data.schedule_task, int(kind), flags, position))
        return events, urls, agents


async def _land(dsn: str, history: History, offset: int) -> None:
    events, urls, agents = history.batch()
    conn = await asyncpg.connect(dsn)
    try:
        await land(conn, journal=HISTORY_JOURNAL, segment=1, offset=offset, events=events,
                   urls=urls, user_agents=agents)
    finally:
        await conn.close()


async def _wait_landed(dsn: str, since: datetime, expected: int, timeout: float) -> int:
    """Poll until ``expected`` events stamped since ``since`` are in PostgreSQL."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            count: int = await conn.fetchval("SELECT count(*) FROM events WHERE ts >= $1",
                                             since)
            if count >= expected or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


class Feeder:
    """Runs the sends against the service at ``host:port``, oldest first."""

    def __init__(self, host: str, port: int, api_key: str, dsn: str, codec: TokenCodec,
                 rng: random.Random, now: datetime, say: Callable[[str], None]) -> None:
        self.host, self.port, self.api_key = host, port, api_key
        self.dsn, self.codec, self.rng, self.now, self.say = dsn, codec, rng, now, say
        self.http = Http(host, port, api_key)
        self.tally = Tally()
        self.live_hits: list[tuple[Hit, str]] = []
        #: (user_id, when or None for "now", value) of each purchase
        self.purchases: list[tuple[str, datetime | None, float]] = []
        self._landed_batches = 0

    def run(self, sends: Iterable[Send]) -> Tally:
        try:
            for campaign in CAMPAIGNS:
                self.http.api("PUT", f"/v1/campaigns/{campaign.campaign_id}", {
                    "name": campaign.name, "channel": campaign.channel, "status": "active",
                    "settings": campaign.settings})
            for send in sends:
                self._send(send)
            self._fire_live()
            self._convert()
        finally:
            self.http.close()
        return self.tally

    def _send(self, send: Send) -> None:
        channel = send.campaign.channel
        request: dict[str, Any] = {
            "campaign_id": send.campaign.campaign_id, "schedule_task_id": send.task_id,
            "channel": channel, "text": send.text,
            "recipients": [{"user_id": p.user_id} for p in send.people]}
        if send.html is not None:
            request["html"] = send.html
        answers = self.http.api("POST", "/v1/messages", request)
        people = {p.user_id: p for p in send.people}
        outcomes, history = [], History()
        cutoff = self.now - timedelta(minutes=1)
        sent = [a for a in answers if not a.get("suppressed")]
        self.tally.messages += len(answers)
        self.tally.suppressed += len(answers) - len(sent)
        spread = timedelta(minutes=10) / max(1, len(sent))  # a send takes a few minutes
        for index, answer in enumerate(sent):
            message = read_message(answer, self.codec)
            sent_at = send.sent_at + spread * index
            reaction = react(people[message.user_id], send, sent_at, len(message.links),
                             self.rng)
            o = reaction.outcome
            outcomes.append({
                "delivery_id": str(message.delivery_id),
                "campaign_id": send.campaign.campaign_id, "schedule_task_id": send.task_id,
                "user_id": message.user_id, "channel": channel, "status": o.status,
                "error_code": o.error_code, "error_message": o.error_message,
                "sent_at": sent_at.isoformat()})
            self.tally.outcomes[o.status] += 1
            for hit in reaction.hits:
                token, data = message.token(hit)
                if send.live:
                    self.live_hits.append((hit, f"/{hit.path}/{token}"))
                elif hit.at <= cutoff:
                    history.add(hit, data)
                    self.tally.history[_label(hit)] += 1
            for purchase in reaction.purchases:
                if send.live:
                    self.purchases.append((message.user_id, None, float(purchase.value)))
                elif purchase.click.at + purchase.delay <= cutoff:
                    self.purchases.append((message.user_id, purchase.click.at + purchase.delay,
                                           float(purchase.value)))
        if outcomes:
            self.http.api("POST", "/v1/outcomes", outcomes)
        if history.hits:
            self._landed_batches += 1
            asyncio.run(_land(self.dsn, history, self._landed_batches))
        counts = Counter(o["status"] for o in outcomes)
        self.say(f"  {send.task_id:<28} {channel:<5} {len(answers):>6} messages, "
                 f"{len(answers) - len(sent)} suppressed, "
                 + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 + (f"; {len(history.hits)} hits landed with their own dates" if history.hits
                    else "; its hits go live over HTTP" if send.live else ""))

    def _fire_live(self) -> None:
        """Send the live send's hits now: machines first (a gateway scans a message
        and Apple prefetches its pixel on delivery), a second later people, and last
        the few who take an unsubscribe back (after it has been recorded)."""
        if not self.live_hits:
            return
        self.tally.started = datetime.now(UTC)
        local = threading.local()
        clients: list[Http] = []
        lock = threading.Lock()

        def fire(item: tuple[Hit, str]) -> bool:
            hit, path = item
            client = getattr(local, "http", None)
            if client is None:
                client = local.http = Http(self.host, self.port, self.api_key, timeout=30)
                with lock:
                    clients.append(client)
            headers = {"User-Agent": hit.user_agent}
            body = None
            if hit.path == "u":
                body = hit.form.encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            status, _ = client.request(hit.method, path, body, headers)
            return status == ANSWERS[hit.path]

        machines = [h for h in self.live_hits if h[0].by != "person"]
        people = [h for h in self.live_hits if h[0].by == "person" and not h[0].resubscribes]
        regrets = [h for h in self.live_hits if h[0].resubscribes]
        recorded = 0
        try:
            with ThreadPoolExecutor(LIVE_CONNECTIONS) as pool:
                for number, wave in enumerate((machines, people, regrets)):
                    if number:
                        time.sleep(1.1)  # past the edge's one-second burst window
                    wave.sort(key=lambda item: item[0].at)
                    for item, ok in zip(wave, pool.map(fire, wave), strict=True):
                        if not ok:
                            raise DemoError(f"the service did not record a live hit on "
                                            f"/{item[0].path}/...; see its log above")
                        recorded += 1
                        self.tally.live[_label(item[0])] += 1
        finally:
            for client in clients:
                client.close()
        landed = asyncio.run(_wait_landed(self.dsn, self.tally.started, recorded, 30))
        if landed < recorded:
            raise DemoError(f"only {landed} of {recorded} live hits reached PostgreSQL "
                            "within 30 s; is the database overloaded?")
        self.say(f"  {recorded} live hits answered by the service and landed")

    def _convert(self) -> None:
        """Purchases, posted once the clicks they follow are in the database (the
        tracker credits each to the buyer's last human click within 48 hours)."""
        if not self.purchases:
            return
        now = datetime.now(UTC)
        rows = [{"user_id": user, "name": "buy",
                 "ts": (when or now + timedelta(microseconds=i)).isoformat(), "value": value}
                for i, (user, when, value) in enumerate(self.purchases)]
        self.tally.conversions = self.http.api("POST", "/v1/conversions", rows)
