"""Honest opens and clicks: the verdict on each hit, made at the edge for the price of
a dictionary lookup.

``classify_hit`` decides from what the edge knows at once (user agent, method,
kind); ``patterns`` holds the rules that need more (bursts, time since send, the
client address); ``useragents.describe`` fills the ``user_agents`` columns.
"""

from __future__ import annotations

from tracker.classify.patterns import BurstDetector, is_apple_proxy_address
from tracker.classify.patternset import compile_all as warm
from tracker.classify.useragents import (
    MAX_USER_AGENT_BYTES,
    AgentClass,
    agent_class,
    cut,
    describe,
)
from tracker.classify.verdict import Verdict, from_flags, to_flags
from tracker.events import Kind

__all__ = ["MAX_USER_AGENT_BYTES", "AgentClass", "BurstDetector", "Verdict", "agent_class",
           "classify_hit", "cut", "describe", "from_flags", "hit_verdict",
           "is_apple_proxy_address", "refine_with_address", "to_flags", "warm"]

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


def classify_hit(user_agent: bytes | None, method: str, kind: int) -> int:
    """The verdict (a ``Verdict`` value) for one hit with this User-Agent header.

    The edge does not call this per hit: it keeps each agent's class (see
    ``tracker.recorder``) and calls ``hit_verdict``.
    """
    agent = agent_class(cut(user_agent).decode("utf-8", "replace")) if user_agent else None
    return hit_verdict(agent, method, kind)


def hit_verdict(agent: AgentClass | None, method: str, kind: int) -> int:
    """The verdict for one hit, given its user agent's class (None: no User-Agent).

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
    table = _OPEN_VERDICT if kind == _OPEN else _CLICK_VERDICT
    return table[AgentClass.BOT if agent is None else agent]


def refine_with_address(verdict: int, kind: int, client_address: str | None) -> int:
    """Turn an open from Apple's address block into a machine open.

    For the edge, which has ``scope["client"]``; the address is looked at here and
    must never be stored. A person's open from Apple's network is the stated cost.
    """
    if kind == _OPEN and verdict == Verdict.HUMAN and is_apple_proxy_address(client_address):
        return Verdict.MACHINE_OPEN
    return verdict
