"""Turns an accepted hit into journal records and waits until they are durable.

Shared by the edge (/o, /c) and the unsubscribe page (/u), so every kind of hit
is recorded the same way: the event, plus dictionary definitions for its user
agent and URL, framed and appended in one piece.
"""

from __future__ import annotations

import time

from tracker import metrics
from tracker.classify import BurstDetector, Verdict, classify_hit, refine_with_address, to_flags
from tracker.events import Dictionary, Flag, Kind, dictionary_id, encode_definition, encode_event
from tracker.journal import Journal, frame
from tracker.tokens import TokenData

_UA_CACHE_LIMIT = 20_000
MAX_USER_AGENT_BYTES = 1000


class Recorder:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._ua_cache: dict[bytes, tuple[int, bytes]] = {}
        self._bursts = BurstDetector()

    async def record(self, headers: list[tuple[bytes, bytes]], method: str, data: TokenData,
                     kind: Kind, position: int = 0, url: bytes = b"",
                     client: tuple[str, int] | None = None) -> bool:
        """Journal one event; True once it is durable, False if it could not be kept.

        The event carries the classifier's verdict (human, machine open, scanner
        click...) so reports can count people; ``client`` (the peer address) is
        looked at for that and never stored."""
        metrics.EVENTS_ACCEPTED.inc()
        records = []
        ua_id = 0
        user_agent = None
        for name, value in headers:
            if name == b"user-agent":
                user_agent = value
                ua_id, definition = self._user_agent(value)
                records.append(definition)
                break
        verdict = classify_hit(user_agent, method, kind)
        if client is not None:
            verdict = refine_with_address(verdict, kind, client[0])
        if kind == Kind.CLICK and self._bursts.observe(data.delivery_id, time.monotonic(),
                                                       position):
            verdict = Verdict.SCANNER_CLICK
        url_id = 0
        if url:
            url_id = dictionary_id(url)
            records.append(frame(encode_definition(Dictionary.URL, url_id, url)))
        flags = to_flags(verdict) | (Flag.HEAD if method == "HEAD" else 0)
        records.append(frame(encode_event(
            time.time_ns() // 1000, data.delivery_id, url_id, ua_id, data.campaign,
            data.schedule_task, kind, flags, position,
        )))
        if await self.journal.append(b"".join(records)):
            metrics.EVENTS_JOURNALED.inc()
            return True
        metrics.EVENTS_DROPPED.inc()
        return False

    def _user_agent(self, value: bytes) -> tuple[int, bytes]:
        cached = self._ua_cache.get(value)
        if cached is None:
            if len(self._ua_cache) >= _UA_CACHE_LIMIT:
                self._ua_cache.clear()
            kept = value[:MAX_USER_AGENT_BYTES]
            ident = dictionary_id(kept)
            cached = self._ua_cache[value] = (
                ident, frame(encode_definition(Dictionary.USER_AGENT, ident, kept)))
        return cached
