"""Which targets get tracked: the one decision shared by HTML and text parts.

Kept apart from the tokenizers so both make exactly the same choice for the same
URL, and so tests can state the rules in one place.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from tracker.urls import UnsafeURL, check_target_url

#: ``{{unsubscribe_url}}`` or ``{{ unsubscribe_url }}``: becomes the signed /u/ link.
UNSUBSCRIBE_PLACEHOLDER = re.compile(r"\{\{ ?unsubscribe_url ?\}\}")

# Template syntax a sender forgot to render ({{x}}, {% %}, %%X%%, *|X|*, ${x}, <%x%>,
# [[x]]): such a link would redirect to a literal placeholder, so it stays as is.
_PLACEHOLDER = re.compile(r"[{}<>]|%%|\*\||\|\*|\[\[|\]\]")
_HTTP = re.compile(r"https?:", re.IGNORECASE)
# WHATWG URL parsing: leading/trailing C0 controls and spaces are stripped, tabs and
# newlines anywhere are removed. Browsers follow this, so the redirect must as well.
_STRIP = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
#: scheme://host[:port] of an http(s) URL (browsers read a backslash there as "/")
_ORIGIN = re.compile(r"https?://[^/?#\\]*", re.IGNORECASE)


class Target(NamedTuple):
    """A link that will be tracked: the URL to sign (UTM included) as the browser
    would have followed it."""

    url: str


class Skip(NamedTuple):
    """A link left as written; ``warning`` is set when the sender probably meant it
    to be tracked (an http(s) link that cannot be signed), so they can be told."""

    warning: str | None = None


def normalise(raw: str) -> str:
    """The URL a browser would follow for this (already entity-decoded) value."""
    url = raw.strip(_STRIP)
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TAB_NEWLINE.sub("", url)
    if " " in url:
        url = url.replace(" ", "%20")
    return url


#: A campaign's utm_* parameters, ordered and hashable (see :func:`utm_params`).
UTM = tuple[tuple[str, str], ...]


class Own(NamedTuple):
    """Where the tracker itself answers: links there are never wrapped (again).

    Hashable and cheap to hash (the string and the frozenset cache their hashes),
    since compiled templates are cached by it."""

    public_url: str  # TRACKER_PUBLIC_URL, without a trailing slash
    domains: frozenset[str] = frozenset()  # tracking domain origins, lower case

    def holds(self, url: str) -> bool:
        """Whether ``url`` (already normalised, http or https) is the tracker's."""
        base = self.public_url
        if url.startswith(base) and url[len(base) : len(base) + 1] in ("/", ""):
            return True
        if not self.domains:
            return False
        found = _ORIGIN.match(url)
        origin = found.group().lower() if found else ""
        # the setting is stored without a default port; a link may spell one out
        for default in (":443", ":80"):
            if origin.endswith(default):
                return origin in self.domains or origin[: -len(default)] in self.domains
        return origin in self.domains


def classify(value: str, own: Own | str, utm: UTM = ()) -> Target | Skip:
    """Decide for one decoded href (or text URL) whether and what to sign.

    ``own``: the tracker's own URLs (a plain string: TRACKER_PUBLIC_URL alone)."""
    url = normalise(value)
    if not _HTTP.match(url):
        if url[:11].lower() == "javascript:":
            return Skip(f"javascript: links are never tracked (mail clients do not run them); "
                        f"the link {value[:80]!r} was left as written")
        return Skip()  # mailto:, tel:, sms:, #fragment, relative, cid:, ...
    if _PLACEHOLDER.search(url):
        return Skip()
    if (Own(own) if isinstance(own, str) else own).holds(url):
        return Skip()  # already a tracker link (or the pixel): never wrap twice
    if utm:
        url = add_utm(url, utm)
    try:
        check_target_url(url)
    except UnsafeURL as exc:
        return Skip(f"{exc}; the link {value[:80]!r} was left untracked")
    return Target(url)


def add_utm(url: str, utm: UTM) -> str:
    """Append the campaign's utm_* parameters the URL does not already carry.

    Only appends: the existing query (encoding, order, duplicates) is kept byte for
    byte, so tagging can never change what the original parameters say."""
    base, hash_, fragment = url.partition("#")
    path, question, query = base.partition("?")
    present = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    missing = [(k, v) for k, v in utm if k not in present]
    if not missing:
        return url
    extra = urlencode(missing)
    if query:
        joined = f"{path}?{query}{'' if query.endswith('&') else '&'}{extra}"
    else:
        joined = f"{path}?{extra}"
    return joined + hash_ + fragment


#: Per-campaign tracking modes (campaign setting ``tracking``): ``full`` links opens
#: and clicks to the delivery; ``anonymous`` counts them without linking them to
#: anyone; ``off`` rewrites no link and adds no pixel.
TRACKING_FULL = "full"
TRACKING_ANONYMOUS = "anonymous"
TRACKING_OFF = "off"
TRACKING_MODES = (TRACKING_FULL, TRACKING_ANONYMOUS, TRACKING_OFF)

#: Anonymous opens and clicks carry a random id from 2**62 up: the tracker mints
#: delivery ids far below that, so such an id never names a delivery, and no
#: table maps it to a user.
ANONYMOUS_ID_BASE = 1 << 62


def anonymous_id() -> int:
    return ANONYMOUS_ID_BASE | secrets.randbits(62)


def tracking_mode(settings: dict[str, Any] | None) -> str:
    """The campaign's tracking mode (``full`` unless set; PUT validates the value)."""
    mode = (settings or {}).get("tracking", TRACKING_FULL)
    return mode if mode in TRACKING_MODES else TRACKING_FULL


def utm_params(settings: dict[str, Any] | None) -> UTM:
    """The campaign setting ``utm`` as a hashable, ordered tuple (cache key friendly)."""
    utm = (settings or {}).get("utm") or {}
    if not isinstance(utm, dict):
        return ()
    return tuple((str(k), str(v)) for k, v in utm.items() if str(k).startswith("utm_") and v)
