"""The demo's story: campaigns, their messages, who receives them and what each
person then does. Pure and seeded (no I/O): the same seed tells the same story,
dated back from the moment it is told.

The behaviour is a small model of what a tracker really sees, so that every
report figure has something to show and every rule something to catch:

- Mail clients: Apple Mail with Mail Privacy Protection (its proxy prefetches
  every pixel minutes after delivery, whether anyone reads or not), Gmail (opens
  through Google's image proxy: real, client hidden), Outlook, Apple Mail on a
  Mac, webmail. One person in fifteen sits behind a security gateway that fetches the
  pixel and every link seconds after delivery: with HEAD (Safe Links style) or with
  a scanner that names itself (Proofpoint).
- People open with a propensity of their own, some twice; one reader in five
  clicks a link, some a second one; a few unsubscribe (and a few of those change
  their mind on the unsubscribe page); some buy within two days of a click (a
  conversion, credited to that click by the tracker).
- Outcomes: addresses that do not exist bounce hard (and are suppressed from then
  on), full mailboxes bounce soft, a template error fails; push tokens go stale
  (suppressed on push); LINE sends fail to those who blocked the account.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

# ------------------------------------------------------------------ user agents

APPLE_MPP = "Mozilla/5.0"  # Mail Privacy Protection's prefetch (uap-core issue 509)
GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
               "(via ggpht.com GoogleImageProxy)")
OUTLOOK = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Microsoft Outlook 16.0.17328; "
           "ms-office; MSOffice 16)")
APPLE_MAIL_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                  "(KHTML, like Gecko)")
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36")
WINDOWS_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/124.0.0.0 Safari/537.36")
MAC_SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
              "like Gecko) Version/17.4 Safari/605.1.15")
LINE_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 Line/14.5.0")
LINE_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like "
                "Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 Line/14.5.0")
#: Safe Links fetches with an ordinary desktop Chrome string; only HEAD gives it away
SAFE_LINKS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
              "Gecko) Chrome/72.0.3626.109 Safari/537.36")
PROOFPOINT = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"

#: mail client: (share of people, user agent of their opens or None when the
#: client's opens never reach the tracker as such, user agent of their clicks)
MAIL_CLIENTS: dict[str, tuple[int, str | None, str]] = {
    "apple_mpp": (35, None, IPHONE_SAFARI),
    "gmail": (28, GMAIL_PROXY, ANDROID_CHROME),
    "outlook": (20, OUTLOOK, WINDOWS_CHROME),
    "apple_mail_mac": (10, APPLE_MAIL_MAC, MAC_SAFARI),
    "webmail": (7, WINDOWS_CHROME, WINDOWS_CHROME),
}

# ------------------------------------------------------------------ campaigns


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    channel: str
    settings: dict[str, Any] = field(default_factory=dict)


NEWSLETTER = Campaign("demo-newsletter", "Weekly newsletter (demo)", "email",
                      {"utm": {"utm_source": "newsletter", "utm_medium": "email",
                               "utm_campaign": "demo"}})
COUPON = Campaign("demo-app-coupon", "App coupon push (demo)", "push")
LINE_EVENT = Campaign("demo-line-event", "LINE store event (demo)", "line")
CAMPAIGNS = (NEWSLETTER, COUPON, LINE_EVENT)

NEWSLETTER_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>This week at Example Shop</title></head>
<body style="font-family: Helvetica, Arial, sans-serif; color: #222">
<table role="presentation" width="600" align="center"><tr><td>
<p><a href="https://shop.example.com/sale?season=winter"><img
  src="https://cdn.example.com/img/winter-sale.png" alt="Winter sale: up to 40% off"
  width="600"></a></p>
<h1>Winter sale: up to 40% off</h1>
<p>Hello {{first_name}}, our warmest pieces are on sale until Sunday.</p>
<p><a href="https://shop.example.com/products/wool-coat?color=navy&amp;size=m">The navy wool
coat</a> &middot; <a href="https://shop.example.com/products/cashmere-scarf">Cashmere scarf</a></p>
<p>From the journal: <a href="https://blog.example.com/2026/how-to-layer">How to layer for
the cold</a></p>
<p style="font-size: 12px; color: #777">Questions?
<a href="mailto:help@example.com">help@example.com</a> &middot;
<a href="{{unsubscribe_url}}">Unsubscribe</a></p>
</td></tr></table>
</body></html>
"""

NEWSLETTER_TEXT = """Winter sale: up to 40% off
https://shop.example.com/sale?season=winter

The navy wool coat: https://shop.example.com/products/wool-coat?color=navy&size=m
Cashmere scarf: https://shop.example.com/products/cashmere-scarf
How to layer for the cold: https://blog.example.com/2026/how-to-layer

Unsubscribe: {{unsubscribe_url}}
"""

COUPON_TEXT = "20% off everything in the app today: https://shop.example.com/app/coupon?code=DEMO20"

LINE_TEXT = """Store event this weekend at Example Shop Shibuya!
Details: https://shop.example.com/events/winter-weekend
Map: https://maps.example.com/stores/shibuya
"""

#: the bodies of POST /u/: a mail client's one-click unsubscribe (RFC 8058), and the
#: unsubscribe page's button for changing one's mind
ONE_CLICK = "List-Unsubscribe=One-Click"
RESUBSCRIBE = "action=resubscribe"

#: the chance a clicking reader picks each link, in the order the links appear
NEWSLETTER_LINK_WEIGHTS = (45, 25, 15, 15)

# ------------------------------------------------------------------ people


@dataclass(frozen=True)
class Person:
    user_id: str
    mail: str  # a MAIL_CLIENTS key
    gateway: str | None  # "safelinks" or "proofpoint": scans every message on arrival
    phone: str  # "ios" or "android"
    engagement: float  # chance of reading a given message
    bad_address: bool  # the mailbox does not exist: every email bounces hard
    stale_token: bool  # the app was reinstalled: push says "token not registered"
    leaving: bool  # unsubscribes the first time they read
    blocked_line: bool  # blocked the LINE account: LINE sends to them fail
    has_app: bool
    line_friend: bool


def people(count: int, rng: random.Random) -> list[Person]:
    """``count`` people. The rare traits (a dead address, a stale push token, the
    wish to unsubscribe, a blocked LINE account) go to a fixed share of them, not to
    chance, so that even a small sample shows every kind of figure."""
    names = list(MAIL_CLIENTS)
    weights = [MAIL_CLIENTS[n][0] for n in names]
    out = []
    for i in range(1, count + 1):
        mail = rng.choices(names, weights)[0]
        gateway = None
        if mail in ("outlook", "webmail") and rng.random() < 0.25:
            gateway = rng.choice(("safelinks", "proofpoint"))
        out.append(Person(
            user_id=f"demo-user-{i:05d}", mail=mail, gateway=gateway,
            phone="ios" if mail in ("apple_mpp", "apple_mail_mac") or rng.random() < 0.3
            else "android",
            engagement=0.7 if i % 50 == 11 else rng.choices((0.1, 0.35, 0.7), (50, 32, 18))[0],
            bad_address=i % 40 == 7, stale_token=i % 20 == 3, leaving=i % 50 == 11,
            blocked_line=i % 30 == 13,
            has_app=rng.random() < 0.8, line_friend=rng.random() < 0.6))
    return out


# ------------------------------------------------------------------ sends


@dataclass(frozen=True)
class Send:
    """One schedule task: a campaign sent to a list of people at one time."""

    campaign: Campaign
    task_id: str
    sent_at: datetime
    people: tuple[Person, ...]
    #: its hits go over HTTP to the running service now; the others' are history
    live: bool = False

    @property
    def html(self) -> str | None:
        return NEWSLETTER_HTML if self.campaign.channel == "email" else None

    @property
    def text(self) -> str:
        return {"email": NEWSLETTER_TEXT, "push": COUPON_TEXT}.get(self.campaign.channel,
                                                                   LINE_TEXT)


def schedule(now: datetime, audience: list[Person]) -> list[Send]:
    """The sends of the last three weeks, oldest first. The newest newsletter went
    out two hours ago: its readers are arriving live."""

    def at(days_ago: int, hour: int) -> datetime:
        return (now - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0,
                                                        microsecond=0)

    everyone = tuple(audience)
    app = tuple(p for p in audience if p.has_app)
    line = tuple(p for p in audience if p.line_friend)
    sends = [Send(NEWSLETTER, f"newsletter-{at(d, 9):%Y-%m-%d}", at(d, 9), everyone)
             for d in (22, 15, 8)]
    live_at = now - timedelta(hours=2)
    sends.append(Send(NEWSLETTER, f"newsletter-{live_at:%Y-%m-%d}-live", live_at, everyone,
                      live=True))
    sends += [Send(COUPON, f"coupon-{at(d, 12):%Y-%m-%d}", at(d, 12), app) for d in (18, 4)]
    sends.append(Send(LINE_EVENT, f"store-event-{at(11, 18):%Y-%m-%d}", at(11, 18), line))
    return sorted(sends, key=lambda s: s.sent_at)


# ------------------------------------------------------------------ reactions


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered, bounced, soft_bounced, failed
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Hit:
    """One request a person's client (or a machine) makes to the tracker."""

    at: datetime  # when it happens; a live send's hits are sent now instead
    path: str  # "o" (pixel), "c" (link), "u" (unsubscribe)
    method: str  # GET, HEAD or POST
    user_agent: str
    link: int = 0  # which of the message's tracked links (by order), for "c"
    #: who made it, as the model knows (the tracker must work it out): "person",
    #: "prefetch" (Apple's proxy) or "scanner" (a security gateway)
    by: str = "person"
    #: the form a POST to "u" sends
    form: str = ""

    @property
    def resubscribes(self) -> bool:
        return self.form == RESUBSCRIBE


@dataclass(frozen=True)
class Purchase:
    """A conversion of the person, ``after`` one of their clicks (the model's cause;
    the tracker finds the credited click itself)."""

    click: Hit
    delay: timedelta
    value: Decimal


@dataclass
class Reaction:
    outcome: Outcome
    hits: list[Hit] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)


def outcome(person: Person, channel: str, rng: random.Random) -> Outcome:
    r = rng.random()
    if channel == "email":
        if person.bad_address:
            return Outcome("bounced", "Permanent:General",
                           f"550 5.1.1 <{person.user_id}@example.net>: Recipient address "
                           "rejected: User unknown in virtual mailbox table")
        if r < 0.02:
            return Outcome("soft_bounced", "Transient:MailboxFull",
                           "452 4.2.2 The email account that you tried to reach is over quota")
        if r < 0.03:
            return Outcome("soft_bounced", "Transient:General",
                           "421 4.7.0 Try again later, closing connection")
        if r < 0.035:
            return Outcome("failed", "RENDERING_FAILURE",
                           "first_name is not defined for this recipient")
    elif channel == "push":
        if person.stale_token:
            return Outcome("failed", "messaging/registration-token-not-registered",
                           "Requested entity was not found.")
        if r < 0.02:
            return Outcome("failed", "messaging/internal-error",
                           "An internal error has occurred. Please retry the request.")
    elif person.blocked_line:
        return Outcome("failed", "unknown", "Failed to send messages")
    return Outcome("delivered")


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=rng.uniform(low, high))


def _buy(rng: random.Random, click: Hit, chance: float) -> list[Purchase]:
    if rng.random() >= chance:
        return []
    return [Purchase(click, _minutes(rng, 5, 36 * 60),
                     Decimal(rng.choice((19, 29, 49, 89, 129, 249))) - Decimal("0.01"))]


def react(person: Person, send: Send, sent_at: datetime, links: int,
          rng: random.Random) -> Reaction:
    """What happens to one message: its outcome, then, if delivered, every hit."""
    result = Reaction(outcome(person, send.campaign.channel, rng))
    if result.outcome.status != "delivered":
        return result
    channel = send.campaign.channel
    if channel == "email":
        _email(person, sent_at, links, rng, result)
    else:
        _tap(person, channel, sent_at, links, rng, result)
    return result


def _email(person: Person, sent_at: datetime, links: int, rng: random.Random,
           result: Reaction) -> None:
    hits = result.hits
    _, open_agent, click_agent = MAIL_CLIENTS[person.mail]
    if person.gateway is not None:
        # a security gateway checks the message on arrival: the pixel, then every link
        method, agent = (("HEAD", SAFE_LINKS) if person.gateway == "safelinks"
                         else ("GET", PROOFPOINT))
        scanned = sent_at + timedelta(seconds=rng.uniform(2, 8))
        hits.append(Hit(scanned, "o", method, agent, by="scanner"))
        hits += [Hit(scanned + timedelta(seconds=0.2 * (i + 1)), "c", method, agent, i,
                     by="scanner") for i in range(links)]
    if person.mail == "apple_mpp":
        # Apple's proxy fetches the pixel when the phone gets the mail: nobody read it
        hits.append(Hit(sent_at + _minutes(rng, 1, 45), "o", "GET", APPLE_MPP, by="prefetch"))
    if rng.random() >= person.engagement:
        return
    read = sent_at + timedelta(minutes=3) + timedelta(hours=rng.expovariate(1 / 5))
    if open_agent is not None:
        hits.append(Hit(read, "o", "GET", open_agent))
        if rng.random() < 0.3:
            hits.append(Hit(read + _minutes(rng, 60, 3 * 24 * 60), "o", "GET", open_agent))
    if links and rng.random() < 0.2:
        order = rng.choices(range(links), NEWSLETTER_LINK_WEIGHTS[:links], k=2)
        click = Hit(read + timedelta(seconds=rng.uniform(20, 240)), "c", "GET", click_agent,
                    order[0])
        hits.append(click)
        result.purchases += _buy(rng, click, 0.2)
        if order[1] != order[0] and rng.random() < 0.3:
            hits.append(Hit(click.at + _minutes(rng, 1, 10), "c", "GET", click_agent, order[1]))
    if person.leaving or rng.random() < 0.003:
        left = Hit(read + _minutes(rng, 0.5, 3), "u", "POST", click_agent, form=ONE_CLICK)
        hits.append(left)
        if rng.random() < 0.2:
            hits.append(Hit(left.at + _minutes(rng, 2, 24 * 60), "u", "POST", click_agent,
                            form=RESUBSCRIBE))


def _tap(person: Person, channel: str, sent_at: datetime, links: int, rng: random.Random,
         result: Reaction) -> None:
    """Push and LINE: no pixel; a tap on a link opens the phone's browser."""
    if not links or rng.random() >= 0.04 + 0.15 * person.engagement:
        return
    if channel == "line":
        agent = LINE_IOS if person.phone == "ios" else LINE_ANDROID
    else:
        agent = IPHONE_SAFARI if person.phone == "ios" else ANDROID_CHROME
    first = 0 if links == 1 or rng.random() < 0.8 else 1
    tap = Hit(sent_at + timedelta(minutes=1) + timedelta(minutes=rng.expovariate(1 / 40)),
              "c", "GET", agent, first)
    result.hits.append(tap)
    result.purchases += _buy(rng, tap, 0.25)
    if links > 1 and rng.random() < 0.2:
        result.hits.append(Hit(tap.at + _minutes(rng, 1, 20), "c", "GET", agent, 1 - first))
