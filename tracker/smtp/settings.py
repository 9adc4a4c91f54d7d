"""The relay's configuration: ``TRACKER_SMTP_*`` and the command line options.

Read once at start, so a typo stops ``tracker smtp`` with a message saying what
to fix instead of showing up as refused mail later."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_LISTEN = "127.0.0.1:2525"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A relay setting is wrong; the text says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where relayed copies go, and how the relay logs in there."""

    host: str
    port: int
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    timeout: float = 60.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RelaySettings:
    listen_host: str
    listen_port: int
    upstream: Upstream
    allow: tuple[Network, ...] = field(default_factory=tuple)


def host_port(value: str, name: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a pair, or SettingsError."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name} must be host:port (e.g. 127.0.0.1:2525), got {value!r}")
    return host, int(port)


def networks(value: str) -> tuple[Network, ...]:
    """TRACKER_SMTP_ALLOW: comma-separated networks (``10.0.0.0/8, 192.0.2.7``)."""
    found: list[Network] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise SettingsError(f"TRACKER_SMTP_ALLOW: {item!r} is not a network ({exc}); give "
                                "comma-separated addresses or CIDR networks, e.g. "
                                "10.0.0.0/8,192.0.2.7") from exc
    return tuple(found)


def load(env: Mapping[str, str], *, listen: str | None = None,
         upstream: str | None = None) -> RelaySettings:
    """Settings from the environment; ``listen``/``upstream`` (options) win over it."""
    listen_host, listen_port = host_port(
        listen or env.get("TRACKER_SMTP_LISTEN") or DEFAULT_LISTEN, "TRACKER_SMTP_LISTEN")
    target = upstream or env.get("TRACKER_SMTP_UPSTREAM", "")
    if not target.strip():
        raise SettingsError("no upstream: set TRACKER_SMTP_UPSTREAM (or --upstream) to the "
                            "host:port of the MTA that delivers the mail, e.g. "
                            "email-smtp.eu-west-1.amazonaws.com:587 or 127.0.0.1:25")
    up_host, up_port = host_port(target, "TRACKER_SMTP_UPSTREAM")
    starttls = env.get("TRACKER_SMTP_UPSTREAM_STARTTLS", "").strip()
    if starttls not in ("", "0", "1"):
        raise SettingsError(f"TRACKER_SMTP_UPSTREAM_STARTTLS must be 1 or 0, got {starttls!r}")
    user = env.get("TRACKER_SMTP_UPSTREAM_USER") or None
    password = env.get("TRACKER_SMTP_UPSTREAM_PASSWORD") or None
    if (user is None) != (password is None):
        raise SettingsError("set both TRACKER_SMTP_UPSTREAM_USER and "
                            "TRACKER_SMTP_UPSTREAM_PASSWORD to log in upstream, or neither")
    return RelaySettings(listen_host, listen_port,
                         Upstream(up_host, up_port, starttls == "1", user, password),
                         networks(env.get("TRACKER_SMTP_ALLOW", "")))
