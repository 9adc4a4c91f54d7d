"""What a user agent string says: which client, OS and device, and whether a person is behind it.

Two well-kept lists do the heavy lifting: ``ua-parser`` (uap-core's regexes) names
the client, OS and device, and ``crawlerdetect`` (JayBizzle/Crawler-Detect's list)
recognises bots. Neither knows email: crawlerdetect lists Outlook, Apple Mail and
Airmail as "crawlers" (they are not browsers, but a person reads the mail in them),
and neither tells a privacy prefetch from an image proxy from a link scanner. So
email-specific rules run first, and the general lists only decide what is left.

Sources for every named rule are in tests/data/classify/labelled_user_agents.tsv.
"""

from __future__ import annotations

import re
from enum import IntEnum

from ua_parser import BestAvailableResolver, Parser, load_builtins

from tracker.classify.crawlers import is_crawler
from tracker.classify.patternset import PatternSet

#: The longest user agent looked at, classified and stored, in bytes of UTF-8; the
#: rest is cut off at the edge before any cache or table sees it. Real agents are
#: 100-300 bytes (the longest in the labelled evidence, an in-app browser, is
#: under 400); anything past this only serves to fill memory and tables.
MAX_USER_AGENT_BYTES = 512


class AgentClass(IntEnum):
    """Who is behind a user agent, before the request method and kind are considered."""

    PERSON = 0  #: a browser or mail client in a person's hands
    APPLE_PROXY = 1  #: Apple Mail Privacy Protection's prefetch proxy
    IMAGE_PROXY = 2  #: a webmail image proxy fetching for a reader (Gmail, Yahoo)
    SCANNER = 3  #: a mail security gateway or link previewer that announces itself
    BOT = 4  #: any other automated client (crawlerdetect's list)


class _Rules:
    """Named patterns tried in order; the first that matches names the client.

    One ``PatternSet`` answers "does any match?" in one pass over the string (most
    agents match none), and only then are the patterns tried one by one."""

    def __init__(self, rules: list[tuple[re.Pattern[str], str]]) -> None:
        self.rules = rules
        self._any = PatternSet([pattern for pattern, _ in rules])

    def first(self, ua: str) -> str | None:
        if not self._any.any(ua.encode("utf-8", "surrogatepass")):
            return None
        for pattern, name in self.rules:
            if pattern.search(ua):
                return name
        return None


# Apple MPP sends the bare string "Mozilla/5.0" (ua-parser/uap-core issue 509).
_APPLE_PROXY = re.compile(r"^Mozilla/5\.0$")

_IMAGE_PROXIES = _Rules([
    (re.compile(r"GoogleImageProxy|via ggpht\.com", re.I), "Gmail Image Proxy"),
    (re.compile(r"YahooMailProxy", re.I), "Yahoo Mail Proxy"),
])

_SCANNERS = _Rules([
    (re.compile(r"Microsoft Office Existence Discovery", re.I), "Office Existence Discovery"),
    (re.compile(r"BingPreview|MicrosoftPreview|SkypeUriPreview", re.I), "Microsoft Link Preview"),
    (re.compile(r"safelinks|Safe ?Links", re.I), "Microsoft Safe Links"),
    (re.compile(r"Barracuda", re.I), "Barracuda"),
    (re.compile(r"Mimecast", re.I), "Mimecast"),
    (re.compile(r"Proofpoint|URLDefense", re.I), "Proofpoint"),
    (re.compile(r"Gmail-content-sampling", re.I), "Gmail Content Sampling"),
    (re.compile(r"Kaspersky Lab CFR link resolver", re.I), "Kaspersky Link Resolver"),
])

# Mail clients that crawlerdetect's list calls crawlers; checked before it.
_MAIL_CLIENTS = _Rules([
    (re.compile(r"Outlook-(iOS|Android)/", re.I), "Outlook Mobile"),
    (re.compile(r"MacOutlook/", re.I), "Outlook for Mac"),
    (re.compile(r"Microsoft Outlook|MSOffice \d|Microsoft Office/\d", re.I), "Outlook"),
    (re.compile(r"Thunderbird/", re.I), "Thunderbird"),
    (re.compile(r"Airmail", re.I), "Airmail"),
    (re.compile(r"Canary(%20| )Mail", re.I), "Canary Mail"),
    (re.compile(r"Polymail/", re.I), "Polymail"),
    (re.compile(r"^Mail/\d+(\.\d+)* CFNetwork/"), "Apple Mail"),
    # Apple Mail's WebKit view: the Safari string without "Version/" and "Safari/"
    # (ua-parser/uap-core issue 528 lists one per macOS release).
    (re.compile(r"^Mozilla/5\.0 \((Macintosh|iPhone|iPad)[^)]*\) AppleWebKit/[\d.]+ "
                r"\(KHTML, like Gecko\)( Mobile/\w+)?$"), "Apple Mail"),
])

# A string that names a mail client but says it is a robot (e.g. a crawler borrowing
# Thunderbird's string) is not given the mail-client pass.
_ROBOT_WORDS = re.compile(r"bot\b|crawl|spider|https?://", re.I)

_MOBILE_OS = frozenset({"iOS", "Windows Phone", "BlackBerry OS", "Symbian OS", "KaiOS",
                        "Firefox OS", "Windows Mobile", "Tizen", "HarmonyOS"})
_DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora",
                         "FreeBSD", "Debian", "OpenBSD", "NetBSD", "Solaris", "Mint",
                         "Arch Linux", "openSUSE", "Red Hat", "CentOS", "Gentoo", "Mageia"})

_parser: Parser | None = None


def _ua_parser() -> Parser:
    global _parser
    if _parser is None:
        _parser = Parser(BestAvailableResolver(load_builtins()))
    return _parser


def _named(ua: str) -> tuple[AgentClass, str | None]:
    """The agent class and, for email-specific rules, the client name they imply."""
    if not ua:
        return AgentClass.BOT, None
    if _APPLE_PROXY.match(ua):
        return AgentClass.APPLE_PROXY, "Apple Mail Privacy Protection"
    if name := _IMAGE_PROXIES.first(ua):
        return AgentClass.IMAGE_PROXY, name
    if name := _SCANNERS.first(ua):
        return AgentClass.SCANNER, name
    if (name := _MAIL_CLIENTS.first(ua)) and not _ROBOT_WORDS.search(ua):
        return AgentClass.PERSON, name
    if is_crawler(ua):
        return AgentClass.BOT, None
    return AgentClass.PERSON, None


def cut(user_agent: bytes) -> bytes:
    """The part of a User-Agent header that is looked at and stored."""
    return user_agent[:MAX_USER_AGENT_BYTES]


def agent_class(user_agent: str) -> AgentClass:
    """Who is behind ``user_agent`` (an empty string means none was sent: a bot).

    Costs 10-20 us for an agent already ``cut``: callers on the hot path keep the
    answer per agent (``tracker.recorder``)."""
    return _named(user_agent.strip())[0]


def _device_class(agent: AgentClass, ua: str, os: str, device: str) -> str:
    if agent in (AgentClass.APPLE_PROXY, AgentClass.IMAGE_PROXY):
        return "proxy"
    if agent != AgentClass.PERSON or device == "Spider":
        return "bot"
    if device == "iPad" or "Tablet" in ua:
        return "tablet"
    if os == "Android":
        return "mobile" if "Mobile" in ua else "tablet"
    if os in _MOBILE_OS:
        return "mobile"
    if os in _DESKTOP_OS:
        return "desktop"
    return "other"


def describe(user_agent: str) -> dict[str, str | bool]:
    """Client, OS and device families, device class and bot flag, for the
    ``user_agents`` columns filled when the shipper lands a new user agent.

    ``is_bot`` means hits with this user agent are never counted as people: true for
    Apple's prefetch proxy, scanners and bots; false for image proxies, which fetch
    for a real reader. ``device_class`` is one of desktop, mobile, tablet, proxy,
    bot, other. Costs a parse (tens of microseconds): call it once per new agent.
    """
    ua = user_agent.strip()
    agent, name = _named(ua)
    parsed = _ua_parser().parse(ua).with_defaults()
    os = parsed.os.family
    device = parsed.device.family
    client = name or parsed.user_agent.family
    if agent == AgentClass.APPLE_PROXY:
        os, device = "Other", "Other"
    elif agent == AgentClass.IMAGE_PROXY:
        # the proxy's string names a made-up browser and OS, not the reader's
        os, device = "Other", "Other"
    return {
        "client": client,
        "os": os,
        "device": device,
        "device_class": _device_class(agent, ua, os, device),
        "is_bot": agent in (AgentClass.APPLE_PROXY, AgentClass.SCANNER, AgentClass.BOT),
    }
