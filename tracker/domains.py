"""Branded tracking domains: the campaign setting, and the hosts the tracker answers on.

A campaign's ``tracking_domain`` (an origin such as ``https://click.brand.example``)
replaces ``TRACKER_PUBLIC_URL`` as the base of its pixel, click and unsubscribe
URLs. Tokens are valid whatever host they arrive on (links in old mail must keep
working after a domain changes), so the edge serves every hit and only counts, in
``tracker_unknown_host_hits_total``, those whose Host is neither the public URL's
nor a configured tracking domain: a misrouted DNS name or a stale domain shows up
there.

Why a frozenset refreshed in the background rather than a lookup per hit: the edge
must not touch PostgreSQL. Each worker process holds its own :class:`TrackingDomains`.
A ``PUT /v1/campaigns/{id}`` refreshes the worker that served it at once; every
worker re-reads the configured domains every ``REFRESH_SECONDS``. So with several
workers, a hit on a just-configured domain may be counted as an unknown host for up
to that long by the other workers (it is served and recorded all the same).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from tracker.store import campaigns as campaign_store

log = logging.getLogger("tracker.domains")

#: How often each worker re-reads the configured tracking domains (seconds).
REFRESH_SECONDS = 30.0

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_EXAMPLE = "such as https://click.brand.example"


def parse_tracking_domain(value: object) -> str | None:
    """The setting as its canonical origin (``scheme://host[:port]``, lower case, no
    default port), or None for "use TRACKER_PUBLIC_URL" (null or ""). Raises
    ValueError saying what is wrong and how to write it instead."""
    if value is None or value == "":
        return None
    where = "settings.tracking_domain"
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string {_EXAMPLE} (or null for TRACKER_PUBLIC_URL)")
    if len(value) > 300 or not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(f"{where} must be an origin {_EXAMPLE}, at most 300 characters, "
                         "without spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{where} {value!r:.80} is not a valid URL ({exc}); "
                         f"give an origin {_EXAMPLE}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ValueError(f"{where} must be an absolute https:// (or http://) origin "
                         f"{_EXAMPLE}, not {value!r:.80}")
    if "@" in parts.netloc:
        raise ValueError(f"{where} must not carry a user name or password; "
                         f"give the origin only, {_EXAMPLE}")
    if parts.path not in ("", "/") or "?" in value or "#" in value:
        raise ValueError(f"{where} must be an origin without a path, query or fragment "
                         f"({_EXAMPLE}): the tracker adds /o/, /c/ and /u/ to it itself")
    host = (parts.hostname or "").lower()
    if not host.isascii():
        raise ValueError(f"{where}: write the host {host!r:.80} in its ASCII (xn--, "
                         "punycode) form")
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{where}: {host!r:.80} is not a host name (letters, digits, "
                         f"hyphens and dots) {_EXAMPLE}")
    if port == 0:
        raise ValueError(f"{where}: port 0 cannot be connected to")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def domain_of(settings: dict[str, Any] | None) -> str | None:
    """A campaign's tracking domain from its settings (None: TRACKER_PUBLIC_URL).
    PUT stores it in canonical form; anything else found there is ignored."""
    value = (settings or {}).get("tracking_domain")
    return value if isinstance(value, str) and value else None


def host_values(url: str) -> set[bytes]:
    """Host header values that name the host of ``url``: with and without the
    default port, as clients send either."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    values = {f"{host}:{port or default}"}
    if port is None or port == default:
        values.add(host)
    return {value.encode() for value in values}


class TrackingDomains:
    """The hosts this tracker answers on, for the edge's cheap per-hit check.

    ``hosts`` is a frozenset of Host header values (bytes, lower case), replaced
    whole on refresh, so the edge reads it without a lock."""

    def __init__(self, public_url: str) -> None:
        self._default = frozenset(host_values(public_url))
        self.origins: frozenset[str] = frozenset()
        self.hosts: frozenset[bytes] = self._default

    def set(self, origins: Iterable[str]) -> None:
        origins = frozenset(origins)
        if origins != self.origins:
            hosts = set(self._default)
            for origin in origins:
                hosts |= host_values(origin)
            self.origins, self.hosts = origins, frozenset(hosts)

    def known(self, host: bytes) -> bool:
        """Whether a Host header value names the tracker (case-insensitive)."""
        hosts = self.hosts
        return host in hosts or host.lower() in hosts

    async def refresh(self, conn: asyncpg.Connection) -> None:
        self.set(await campaign_store.tracking_domains(conn))

    async def keep_fresh(self, pool: asyncpg.Pool, interval: float = REFRESH_SECONDS) -> None:
        """Refresh every ``interval`` seconds until cancelled; with PostgreSQL down the
        last known set stays (hits are served either way)."""
        while True:
            try:
                async with pool.acquire(timeout=5) as conn:
                    await self.refresh(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.debug("tracking domains not refreshed: %s", exc)
            await asyncio.sleep(interval)
