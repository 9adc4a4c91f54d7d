"""Honest opens and clicks: the verdict on each hit, made at the edge for the price of
a dictionary lookup.

``classify_hit`` decides from what the edge knows at once (user agent, method,
kind); ``patterns`` holds the rules that need more (bursts, time since send, the
client address); ``useragents.describe`` fills the ``user_agents`` columns.
"""

from __future__ import annotations

from functools import lru_cache

from tracker.classify.patterns import BurstDetector, is_apple_proxy_address
from tracker.classify.useragents import AgentClass, agent_class, describe
from tracker.classify.verdict import Verdict, from_flags, to_flags
from tracker.events import Kind

__all__ = ["AgentClass", "BurstDetector", "Verdict", "classify_hit", "describe",
           "from_flags", "is_apple_proxy_address", "refine_with_address", "to_flags"]

#: distinct (user agent, method, kind) triples remembered; a miss costs one parse
#: (tens of microseconds, up to ~0.5 ms for a long unknown string), a hit ~0.1 us.
CACHE_SIZE = 65536

_OPEN = int(Kind.OPEN)
_CLICK = int(Kind.CLICK)

# verdict by agent class, for opens and for clicks
_OPEN_VERDICT = {
    AgentClass.PERSON: Verdict.HUMAN,
    AgentClass.APPLE_PROXY: Verdict.MACHINE_OPEN,
    AgentClass.IMAGE_PROXY: Verdict.PROXIED_OPEN,
    AgentClass.SCANNER: Verdict.MACHINE_OPEN,
    AgentClass.BOT: Verdict.OTHER_BOT,
}
_CLICK_VERDICT = {
    AgentClass.PERSON: Verdict.HUMAN,
    AgentClass.APPLE_PROXY: Verdict.SCANNER_CLICK,
    AgentClass.IMAGE_PROXY: Verdict.SCANNER_CLICK,
    AgentClass.SCANNER: Verdict.SCANNER_CLICK,
    AgentClass.BOT: Verdict.OTHER_BOT,
}


@lru_cache(maxsize=CACHE_SIZE)
def classify_hit(user_agent: bytes | None, method: str, kind: int) -> int:
    """The verdict (a ``Verdict`` value) for one hit.

    - A ``HEAD`` request is a machine: browsers never follow a link or load an
      image with HEAD (an open becomes a machine open, a click a scanner click).
    - No user agent at all: every mail client and browser sends one.
    - Otherwise the user agent's class decides (``useragents.agent_class``).
    - Kinds other than open and click (unsubscribe, subscribe) are always HUMAN:
      RFC 8058 one-click unsubscribes are machine-sent on the user's behalf by design.
    """
    if kind != _OPEN and kind != _CLICK:
        return Verdict.HUMAN
    if method == "HEAD":
        return Verdict.MACHINE_OPEN if kind == _OPEN else Verdict.SCANNER_CLICK
    ua = user_agent.decode("utf-8", "replace") if user_agent else ""
    table = _OPEN_VERDICT if kind == _OPEN else _CLICK_VERDICT
    return table[agent_class(ua)]


def refine_with_address(verdict: int, kind: int, client_address: str | None) -> int:
    """Turn an open from Apple's address block into a machine open.

    For the edge, which has ``scope["client"]``; the address is looked at here and
    must never be stored. A person's open from Apple's network is the stated cost.
    """
    if kind == _OPEN and verdict == Verdict.HUMAN and is_apple_proxy_address(client_address):
        return Verdict.MACHINE_OPEN
    return verdict
