"""What a redirect target may be, and how it goes into a ``Location`` header.

Checked twice on purpose: when a click token is minted (so an unsafe target can
never be signed) and again at redirect time (so a token signed by a buggy or leaked
older release still cannot redirect to ``javascript:`` or split a header).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

#: Longest target we sign. Long enough for real tracking-laden links, short enough
#: that the token stays below MAX_TOKEN_LENGTH.
MAX_URL_LENGTH = 4000

# C0 controls, DEL, space and the C1 controls: none may appear in a Location header
# value without breaking it or being interpreted differently by different clients.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f]")
# Characters that are not valid in a URI and must be percent-encoded (RFC 3986 plus
# the ones browsers encode themselves); "%" is kept so existing escapes survive.
_SAFE_URI_CHARS = "!#$%&'()*+,-./:;=?@[]_~"


class UnsafeURL(ValueError):
    """The URL is not an absolute http(s) URL that can be redirected to safely."""


def check_target_url(url: str) -> None:
    """Raise UnsafeURL unless ``url`` is an absolute http(s) URL with a host."""
    if not url:
        raise UnsafeURL("the target URL is empty; give an absolute http(s) URL")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(
            f"the target URL is {len(url)} characters; at most {MAX_URL_LENGTH} can be tracked"
        )
    if _FORBIDDEN.search(url):
        raise UnsafeURL(
            "the target URL contains whitespace or control characters; percent-encode them"
        )
    scheme, _, rest = url.partition(":")
    if scheme.lower() not in ("http", "https"):
        raise UnsafeURL(f"only http and https targets can be tracked, not {scheme!r}")
    if not rest.startswith("//"):
        raise UnsafeURL("the target URL has no host; give an absolute URL such as https://host/")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeURL(f"the target URL cannot be parsed: {exc}") from exc
    if not parts.hostname:
        raise UnsafeURL("the target URL has no host; give an absolute URL such as https://host/")


def is_safe_location(url: str) -> bool:
    """The redirect-time re-check: http(s) and nothing that could break a header.

    Cheaper than check_target_url (no full parse): the URL was fully checked when
    it was signed; this only guards against a token signed by something else."""
    head = url[:8].lower()
    if not (head.startswith("http://") or head == "https://"):
        return False
    return len(url) <= MAX_URL_LENGTH and _FORBIDDEN.search(url) is None


def to_location(url: str) -> bytes:
    """The bytes of a ``Location`` header for a checked target URL.

    ASCII URLs pass unchanged (the common case, and exactly what was signed).
    International URLs become URIs: the host in IDNA, everything else
    percent-encoded as UTF-8, which is what browsers send for them anyway.
    """
    if url.isascii():
        return url.encode("ascii")
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = quote(host, safe="")
    netloc = ascii_host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username is not None:
        userinfo = quote(parts.username, safe="")
        if parts.password is not None:
            userinfo += ":" + quote(parts.password, safe="")
        netloc = f"{userinfo}@{netloc}"
    rebuilt = urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=_SAFE_URI_CHARS),
            quote(parts.query, safe=_SAFE_URI_CHARS),
            quote(parts.fragment, safe=_SAFE_URI_CHARS),
        )
    )
    return rebuilt.encode("ascii")
