"""Hit patterns that give a machine away when its user agent does not.

Security gateways (Microsoft Safe Links/Defender, Mimecast, Proofpoint) usually
fetch links with an ordinary desktop Chrome string, so only their behaviour shows:

- ``HEAD`` requests: browsers never use HEAD to follow a link or load an image
  (handled in ``tracker.classify.classify_hit``, which knows the method);
- one delivery clicking many distinct links within a second: a person cannot, a
  scanner walking every link does (``BurstDetector``, usable at the edge);
- a click within seconds of the send: a scanner checks the message on arrival, a
  person reads it later (``QUICK_CLICK_SQL``, at report time, see below);
- Apple's address block for Mail Privacy Protection prefetches
  (``is_apple_proxy_address``; the address is looked at, never stored).

Why the quick-click rule cannot run at the edge: the token carries no send time
(``TokenData`` has delivery, campaign, task, channel, link; the send time arrives
later, with the sender's outcome, in ``deliveries.sent_at``), and the edge reads no
database. So it belongs to the reports, which join events to deliveries anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from tracker.events import Kind
from tracker.tokens import Channel

#: a click this soon after the send is a scanner's (email only: a push or LINE
#: notification can be tapped within seconds). Mautic's default is 2 s; scanners
#: measured in public reports clicked 3-12 s after delivery (resend-node issue 901,
#: gophish issue 2115), people rarely read and click within 10 s of a send.
QUICK_CLICK_SECONDS = 10

#: SQL predicate, true for a click that is a scanner's by the quick-click rule.
#: Needs ``events e`` joined to ``deliveries d`` on delivery_id; uses the index on
#: deliveries(delivery_id). Rows with no known send time are never flagged.
QUICK_CLICK_SQL = (
    f"(e.kind = {int(Kind.CLICK)} AND d.channel = {int(Channel.EMAIL)}"
    f" AND d.sent_at IS NOT NULL"
    f" AND e.ts < d.sent_at + interval '{QUICK_CLICK_SECONDS} seconds')"
)

#: SQL predicate, true for a click that is part of a burst (at least
#: ``BURST_LINKS`` distinct links of one delivery within ``BURST_SECONDS``); catches
#: the first clicks of a burst too, which the edge's detector has already let pass.
BURST_LINKS = 3
BURST_SECONDS = 1.0
BURST_SQL = (
    f"(e.kind = {int(Kind.CLICK)} AND (SELECT count(DISTINCT b.link_position) FROM events b"
    f" WHERE b.delivery_id = e.delivery_id AND b.kind = {int(Kind.CLICK)}"
    f" AND b.ts BETWEEN e.ts - interval '{BURST_SECONDS} seconds'"
    f" AND e.ts + interval '{BURST_SECONDS} seconds') >= {BURST_LINKS})"
)


def quick_click(kind: int, channel: int, clicked_at: datetime, sent_at: datetime | None) -> bool:
    """The quick-click rule in Python, the same as ``QUICK_CLICK_SQL``."""
    return (kind == Kind.CLICK and channel == Channel.EMAIL and sent_at is not None
            and clicked_at < sent_at + timedelta(seconds=QUICK_CLICK_SECONDS))


class BurstDetector:
    """Flags a click when its delivery has clicked ``links`` distinct links within
    ``window`` seconds, counting this one.

    Memory is bounded: at most ``capacity`` deliveries are remembered (the least
    recently clicking is forgotten first), each with at most ``links`` recent clicks.
    A forgotten delivery only means a burst spread over more than ``capacity`` other
    deliveries' clicks goes unseen, which a scanner working at machine speed is not.
    One detector per worker process; bursts from one scanner arrive on one
    connection, usually one worker, and the report-time ``BURST_SQL`` catches the rest.
    """

    def __init__(self, links: int = BURST_LINKS, window: float = BURST_SECONDS,
                 capacity: int = 100_000) -> None:
        if links < 2:
            raise ValueError("a burst needs at least 2 links")
        self.links = links
        self.window = window
        self.capacity = capacity
        self._recent: OrderedDict[int, list[tuple[float, int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def observe(self, delivery_id: int, ts: float, link_position: int) -> bool:
        """Record one click (``ts`` in seconds) and say whether it completes a burst."""
        recent = self._recent.get(delivery_id)
        if recent is None:
            if len(self._recent) >= self.capacity:
                self._recent.popitem(last=False)
            self._recent[delivery_id] = [(ts, link_position)]
            return False
        self._recent.move_to_end(delivery_id)
        horizon = ts - self.window
        kept = [(t, p) for t, p in recent if t >= horizon and p != link_position]
        kept.append((ts, link_position))
        if len(kept) > self.links:
            del kept[: len(kept) - self.links]
        self._recent[delivery_id] = kept
        return len(kept) >= self.links


# Apple holds all of 17.0.0.0/8 (its "Use Apple products on enterprise networks"
# support note asks firewalls to allow that whole block; see
# richard-purves.com/2017/11/17/apple-now-it-hurts-when-ip-address/), and MPP
# prefetches are reported to arrive from it (check.live-direct-marketing.online/blog/
# apple-mail-v16-click-reporting-changes). MPP's relays can also egress through
# partner CDNs, so this rule adds to the user-agent rule, it does not replace it.
# Apple's own staff reading mail on Apple's network would count as machine opens:
# a small, stated cost.
def is_apple_proxy_address(address: str | None) -> bool:
    """True for an IPv4 address (dotted, as ASGI's ``client`` gives it) in 17.0.0.0/8."""
    return address is not None and address.startswith("17.") and address.count(".") == 3
