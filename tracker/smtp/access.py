"""Who may relay without AUTH: loopback always, and the TRACKER_SMTP_ALLOW networks.

Anyone else must log in (AUTH PLAIN/LOGIN with the API key, over TLS): an open
relay would send anybody's spam under the sender's name and tracking domain."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from tracker.smtp.settings import Network


def peer_address(peer: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP from aiosmtpd's ``session.peer`` (a (host, port, ...) tuple)."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def may_send_without_auth(peer: Any, allow: tuple[Network, ...]) -> bool:
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False
    return _host_may_send(peer[0], allow)


@functools.lru_cache(maxsize=1024)
def _host_may_send(host: str, allow: tuple[Network, ...]) -> bool:
    """Per client host, once (the settings do not change while the relay runs),
    not at every MAIL: parsing the address and walking the networks each time
    showed as ~1.5% of the relay's CPU for one-recipient messages."""
    address = peer_address((host,))
    if address is None:
        return False
    return address.is_loopback or any(address in network for network in allow)
