"""Turns an accepted hit into journal records and waits until they are durable.

Shared by the edge (/o, /c) and the unsubscribe page (/u), so every kind of hit
is recorded the same way: the event, plus dictionary definitions for its user
agent and URL, framed and appended in one piece.

A definition is written until one append carrying it has been acknowledged, then
no more: it is then in this process's journal ahead of every later event naming
it, and the shipper lands a journal in order (definitions in the same transaction
as the events after them), whoever ships it. Most hits thus journal one frame.
"""

from __future__ import annotations

import struct
import time
import zlib

from tracker import metrics
from tracker.classify import (
    AgentClass,
    BurstDetector,
    Verdict,
    agent_class,
    cut,
    hit_verdict,
    refine_with_address,
    to_flags,
)
from tracker.events import (
    EVENT,
    RECORD_EVENT,
    Dictionary,
    Flag,
    Kind,
    dictionary_id,
    encode_definition,
)
from tracker.journal import FRAME_HEAD, Journal, frame
from tracker.tokens import TokenData

_CACHE_LIMIT = 20_000
#: dictionary ids known durable in the journal; past this many, forgotten (and re-sent)
_WRITTEN_LIMIT = 200_000
#: bytes of user agents (and their journal definitions) this process remembers;
#: past it the memory is cleared and agents are classified again as they come
USER_AGENT_CACHE_BYTES = 8 * 1024 * 1024
#: never-seen user agents this process adds to the ``user_agents`` dictionary per
#: UTC day. Strangers can send any string; past the budget a new agent's hits are
#: still classified by their own string, but stored under ``OTHER_USER_AGENT``, so
#: the table grows by at most budget x 512 bytes a day per worker.
NEW_USER_AGENTS_PER_DAY = 20_000
#: what hits over the day's budget of new user agents are stored as
OTHER_USER_AGENT = b"(other: over the daily budget of new user agents)"
#: an event record (type byte + tracker.events.EVENT) packed in one call: the same
#: bytes as frame(encode_event(...)) without two intermediate objects per hit
_EVENT_RECORD = struct.Struct("<B" + EVENT.format.lstrip("<"))
_EVENT_BODY_SIZE = _EVENT_RECORD.size


class Recorder:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._user_agents = UserAgents()
        self._url = _Definitions(Dictionary.URL)
        # ids whose definition is durable, per dictionary (a URL and a user agent may
        # be the same bytes)
        self._written_uas: set[int] = set()
        self._written_urls: set[int] = set()
        self._bursts = BurstDetector()

    async def record(self, headers: list[tuple[bytes, bytes]], method: str, data: TokenData,
                     kind: Kind, position: int = 0, url: bytes = b"",
                     client: tuple[str, int] | None = None) -> bool:
        """Journal one event; True once it is durable, False if it could not be kept.

        The event carries the classifier's verdict (human, machine open, scanner
        click...) so reports can count people; ``client`` (the peer address) is
        looked at for that and never stored."""
        metrics.EVENTS_ACCEPTED.value += 1
        records: list[bytes] = []
        ua_id = 0
        agent = None
        for name, value in headers:
            if name == b"user-agent":
                ua_id, agent, definition = self._user_agents(value)
                if ua_id not in self._written_uas:
                    records.append(definition)
                break
        verdict = hit_verdict(agent, method, kind)
        if client is not None:
            verdict = refine_with_address(verdict, kind, client[0])
        if kind == Kind.CLICK and self._bursts.observe(data.delivery_id, time.monotonic(),
                                                       position):
            verdict = Verdict.SCANNER_CLICK
        url_id = 0
        if url:
            url_id, definition = self._url(url)
            if url_id not in self._written_urls:
                records.append(definition)
        flags = to_flags(verdict) | (Flag.HEAD if method == "HEAD" else 0)
        body = _EVENT_RECORD.pack(
            RECORD_EVENT, time.time_ns() // 1000, data.delivery_id, url_id, ua_id,
            data.campaign, data.schedule_task, kind, flags, position,
        )
        event = FRAME_HEAD.pack(_EVENT_BODY_SIZE, zlib.crc32(body)) + body
        defined = bool(records)
        if defined:
            records.append(event)
            event = b"".join(records)
        journal = self.journal
        if journal.lagging():
            # PostgreSQL is slower than the traffic: slow down, keep reports real-time
            metrics.HITS_HELD_BACK.value += 1
            await journal.wait_for_shipper()
        if await journal.append(event):
            metrics.EVENTS_JOURNALED.value += 1
            if defined:
                _remember(self._written_uas, ua_id)
                _remember(self._written_urls, url_id)
            return True
        metrics.EVENTS_DROPPED.value += 1
        return False


def _remember(written: set[int], ident: int) -> None:
    if ident:
        if len(written) >= _WRITTEN_LIMIT:
            written.clear()
        written.add(ident)


class UserAgents:
    """Each user agent's dictionary id, class and journal definition, worked out
    once per distinct agent so a hit only looks them up.

    Bounded for strangers: the header is ``cut`` before it is a key, the memory
    held is capped in bytes (``USER_AGENT_CACHE_BYTES``), and new agents enter the
    dictionary at most ``NEW_USER_AGENTS_PER_DAY`` a day."""

    __slots__ = ("_bytes", "_cache", "_day", "_new_today", "_other")

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[int, AgentClass, bytes]] = {}
        self._bytes = 0
        self._day = -1
        self._new_today = 0
        other_id = dictionary_id(OTHER_USER_AGENT)
        self._other = (other_id, frame(encode_definition(Dictionary.USER_AGENT, other_id,
                                                         OTHER_USER_AGENT)))

    def __call__(self, header: bytes) -> tuple[int, AgentClass, bytes]:
        value = cut(header)
        known = self._cache.get(value)
        if known is not None:
            return known
        agent = agent_class(value.decode("utf-8", "replace"))
        if self._within_budget():
            ident = dictionary_id(value)
            definition = frame(encode_definition(Dictionary.USER_AGENT, ident, value))
        else:
            ident, definition = self._other
        if self._bytes > USER_AGENT_CACHE_BYTES:
            self._cache.clear()
            self._bytes = 0
        known = self._cache[value] = (ident, agent, definition)
        self._bytes += 2 * len(value) + 200  # key, definition and the entry's overhead
        return known

    def _within_budget(self) -> bool:
        day = int(time.time() // 86_400)
        if day != self._day:
            self._day, self._new_today = day, 0
        self._new_today += 1
        return self._new_today <= NEW_USER_AGENTS_PER_DAY


class _Definitions:
    """Id and framed journal definition of each URL, made once per distinct value
    (bounded: cleared when full) so the hot path only looks them up. URLs come
    from signed tokens, so only senders choose them."""

    __slots__ = ("_cache", "_dictionary")

    def __init__(self, dictionary: Dictionary) -> None:
        self._cache: dict[bytes, tuple[int, bytes]] = {}
        self._dictionary = dictionary

    def __call__(self, value: bytes) -> tuple[int, bytes]:
        cached = self._cache.get(value)
        if cached is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            ident = dictionary_id(value)
            cached = self._cache[value] = (
                ident, frame(encode_definition(self._dictionary, ident, value)))
        return cached
