"""The rewriting engine: the Python API for senders, used by the HTTP API and CLI.

Pure: it signs and joins, and never touches the database. The caller passes the
ids of the message (:class:`MessageIds`, minted by :mod:`tracker.rewrite.send` or
by the sender's own process), so the per-recipient path is only token signing.

    rewriter = Rewriter(codec, "https://t.example.com")
    out = rewriter.rewrite(MessageIds(delivery_id, campaign, task, Channel.EMAIL),
                           html=campaign_html, text=campaign_text)
    out.html, out.text, out.headers   # headers: List-Unsubscribe(-Post) for email
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import NamedTuple, TypeVar

from tracker.events import DELIVERY_HEADER
from tracker.rewrite import mime
from tracker.rewrite.cache import TemplateCache
from tracker.rewrite.derive import Family
from tracker.rewrite.html import PIXEL_TAG, assemble_scanned, scan_html
from tracker.rewrite.links import (
    TRACKING_ANONYMOUS,
    TRACKING_FULL,
    TRACKING_OFF,
    UNSUBSCRIBE_PLACEHOLDER,
    UTM,
    Own,
    anonymous_id,
)
from tracker.rewrite.mimetemplate import MimeTemplates, PartFiller
from tracker.rewrite.minting import Minter
from tracker.rewrite.template import PIXEL, UNSUBSCRIBE, Template, json_part
from tracker.rewrite.text import compile_text
from tracker.tokens import Channel, TokenCodec

ONE_CLICK = "List-Unsubscribe=One-Click"

_Body = TypeVar("_Body", str, bytes)  # a filled body: text, or a JSON string literal


class MessageIds(NamedTuple):
    """Who a message is for, as the tracker's ids (all tokens of it carry these)."""

    delivery_id: int
    campaign: int  # internal campaign id (campaigns.id)
    schedule_task: int  # internal schedule task id (schedule_tasks.id)
    channel: int  # a Channel value
    is_test: bool = False
    tracking: str = TRACKING_FULL  # the campaign's tracking mode (see links.tracking_mode)
    #: the campaign's tracking domain (an origin; None: the rewriter's public URL)
    tracking_domain: str | None = None


class _Site(NamedTuple):
    """The URLs of one base (the public URL or a tracking domain): the prefixes of
    its links, and the tracker's own URLs that its templates leave unwrapped."""

    own: Own
    click_prefix: str
    click_prefix_json: bytes
    open_prefix: str
    unsubscribe_prefix: str


@dataclass(slots=True)
class Rewritten:
    """One rewritten message. ``links`` counts tracked links; ``warnings`` names links
    that look meant to be tracked but could not be (too long, unsafe), left as is."""

    delivery_id: int
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    has_pixel: bool = False
    links: int = 0
    warnings: list[str] = field(default_factory=list)
    mime: bytes | None = None
    #: with ``as_json``: html and text as JSON string literals (UTF-8 bytes, quotes
    #: included, ``null`` when absent) instead of ``html``/``text``
    html_json: bytes | None = None
    text_json: bytes | None = None


class _Filler:
    """Fills templates for one message: one header, lazily minted pixel/unsubscribe."""

    __slots__ = ("rewriter", "site", "header", "unsubscribe_header", "position", "_open",
                 "_unsubscribe", "pixels", "warnings", "_open_json")

    def __init__(self, rewriter: Rewriter, ids: MessageIds, site: _Site) -> None:
        self.rewriter = rewriter
        self.site = site
        # the unsubscribe link always names the delivery: it must reach the right person
        self.unsubscribe_header = Minter.header(ids.delivery_id, ids.campaign,
                                                ids.schedule_task, ids.channel, ids.is_test)
        self.header = self.unsubscribe_header
        if ids.tracking == TRACKING_ANONYMOUS:
            # opens and clicks carry a random id that no table maps to a user
            self.header = Minter.header(anonymous_id(), ids.campaign, ids.schedule_task,
                                        ids.channel, ids.is_test)
        self.position = 0
        self._open: str | None = None
        self._unsubscribe: str | None = None
        self.pixels = 0
        self.warnings: list[str] = []
        self._open_json: bytes | None = None

    def unsubscribe_url(self) -> str:
        if self._unsubscribe is None:
            self._unsubscribe = self.site.unsubscribe_prefix + self.rewriter.minter.unsubscribe(
                self.unsubscribe_header)
        return self._unsubscribe

    def pixel_tag(self) -> str:
        if self._open is None:
            self._open = PIXEL_TAG.format(
                url=self.site.open_prefix + self.rewriter.minter.open(self.header))
        return self._open

    def untracked(self, body: str) -> str:
        """A body of a campaign whose tracking is off: every byte as sent, but the
        unsubscribe placeholder (unsubscribing is not tracking)."""
        return UNSUBSCRIBE_PLACEHOLDER.sub(lambda _: self.unsubscribe_url(), body)

    def untracked_json(self, body: str) -> bytes:
        return b'"' + json_part(self.untracked(body)) + b'"'

    def fill_json(self, template: Template) -> bytes:
        """``fill`` as a JSON string literal: pre-escaped segments and tokens (which
        need no escaping) joined as bytes; json.loads of it is fill(template)."""
        parts = template.json_parts()
        if len(parts) == 1:
            return b'"' + parts[0] + b'"'
        click = self.rewriter.minter.click_bytes
        prefix = self.site.click_prefix_json
        header = self.header
        link_bytes = template.link_bytes
        base = self.position
        out = [b'"', parts[0]]
        append = out.append
        index = 1
        for slot in template.slots:
            if slot >= 0:
                append(prefix + click(header, base + slot, link_bytes[slot]))
            elif slot == PIXEL:
                if self._open_json is None:
                    self._open_json = json_part(self.pixel_tag())
                append(self._open_json)
                self.pixels += 1
            elif slot == UNSUBSCRIBE:
                append(json_part(self.unsubscribe_url()))
            append(parts[index])
            index += 1
        append(b'"')
        self.position = base + len(template.links)
        if template.warnings:
            self.warnings.extend(template.warnings)
        return b"".join(out)

    def values(self, template: Template) -> list[str]:
        """What :meth:`fill` puts in the template's slots, in order (moving link
        positions, counting pixels, keeping warnings): :meth:`fill` joins them with the
        literal parts; mimetemplate encodes those parts once and joins them itself."""
        if len(template.parts) == 1:
            return []
        click = self.rewriter.minter.click
        prefix = self.site.click_prefix
        header = self.header
        link_bytes = template.link_bytes
        base = self.position
        out: list[str] = []
        append = out.append
        for slot in template.slots:
            if slot >= 0:
                append(prefix + click(header, base + slot, link_bytes[slot]))
            elif slot == PIXEL:
                append(self.pixel_tag())
                self.pixels += 1
            elif slot == UNSUBSCRIBE:
                append(self.unsubscribe_url())
        self.position = base + len(template.links)
        if template.warnings:
            self.warnings.extend(template.warnings)
        return out

    def fill(self, template: Template) -> str:
        parts = template.parts
        if len(parts) == 1:
            return parts[0]
        out = [parts[0]]
        for value, part in zip(self.values(template), parts[1:], strict=True):
            out += (value, part)
        return "".join(out)


class Rewriter:
    """Rewrites messages for one signing configuration and public URL (the default
    base of tracked links; a message's ``tracking_domain`` replaces it)."""

    def __init__(self, codec: TokenCodec, public_url: str, *, cache_size: int = 256) -> None:
        self.codec = codec
        self.public_url = public_url.rstrip("/")
        self.minter = Minter(codec)
        self.click_prefix = self.public_url + "/c/"
        self.click_prefix_json = json_part(self.click_prefix)
        self.open_prefix = self.public_url + "/o/"
        self.unsubscribe_prefix = self.public_url + "/u/"
        self.cache = TemplateCache(cache_size)
        self.mime_templates = MimeTemplates()
        #: every configured tracking domain: links to them are never wrapped either
        self.tracking_domains: frozenset[str] = frozenset()
        self._sites: dict[str | None, _Site] = {}
        #: the last HTML body compiled in full per (utm, pixel): personalised copies
        #: of it are derived from its template (see tracker.rewrite.derive)
        self.families: dict[tuple[UTM, bool, Own], Family] = {}
        self.derived = 0

    def set_tracking_domains(self, domains: frozenset[str]) -> None:
        """The configured tracking domains (origins, as stored by PUT). Templates are
        cached by the set, so a change recompiles each body once."""
        if domains != self.tracking_domains:
            self.tracking_domains = domains
            self._sites.clear()

    def site(self, tracking_domain: str | None = None) -> _Site:
        """The prefixes for links on ``tracking_domain`` (None: the public URL)."""
        found = self._sites.get(tracking_domain)
        if found is None:
            base = tracking_domain or self.public_url
            domains = self.tracking_domains
            if tracking_domain and tracking_domain not in domains:
                domains = domains | {tracking_domain}  # configured since the last refresh
            if len(self._sites) >= 1024:
                self._sites.clear()
            found = self._sites[tracking_domain] = _Site(
                Own(self.public_url, domains), base + "/c/", json_part(base + "/c/"),
                base + "/o/", base + "/u/")
        return found

    # --- compile (cached) -----------------------------------------------------------
    def compile_html(self, html: str, utm: UTM = (), *, pixel: bool = True,
                     own: Own | None = None) -> Template:
        """``own``: the tracker's URLs left unwrapped (default: the public URL's site)."""
        own = own or self.site().own
        return self.cache.get(("html", html, utm, pixel, own), html,
                              lambda: self._compile_html(html, utm, pixel, own))

    def _compile_html(self, html: str, utm: UTM, pixel: bool, own: Own) -> Template:
        key = (utm, pixel, own)
        family = self.families.get(key)
        if family is not None:
            derived = family.derive(html)
            if derived is not None:
                self.derived += 1
                return derived
        scanned = scan_html(html, own, utm)
        template = assemble_scanned(html, scanned, pixel=pixel)
        if len(self.families) >= 64 and key not in self.families:
            self.families.clear()
        self.families[key] = Family(html, template, scanned, own, utm, pixel)
        return template

    def compile_text(self, text: str, utm: UTM = (), *, own: Own | None = None) -> Template:
        own = own or self.site().own
        return self.cache.get(("text", text, utm, own), text,
                              lambda: compile_text(text, own, utm=utm))

    # --- rewrite ------------------------------------------------------------------
    def rewrite(self, ids: MessageIds, *, html: str | None = None, text: str | None = None,
                utm: UTM = (), headers: dict[str, str] | None = None,
                as_json: bool = False) -> Rewritten:
        """Rewrite a message given as an HTML and/or a text body.

        HTML links come first in link positions, then text links. Email gets the
        pixel (when there is HTML) and the List-Unsubscribe headers; push and LINE
        get neither. ``as_json`` fills ``html_json``/``text_json`` instead of
        ``html``/``text``, for answers that embed the bodies in JSON."""
        filler = _Filler(self, ids, self.site(ids.tracking_domain))
        email = ids.channel == Channel.EMAIL
        out_html: str | None = None
        out_text: str | None = None
        html_json: bytes | None = None
        text_json: bytes | None = None
        if as_json:
            html_json, text_json = self._bodies(ids, html, text, utm, email, filler.site.own,
                                                filler.fill_json, filler.untracked_json)
        else:
            out_html, out_text = self._bodies(ids, html, text, utm, email, filler.site.own,
                                              filler.fill, filler.untracked)
        out_headers = dict(headers) if headers else {}
        if email:
            self._email_headers(out_headers, filler, ids.delivery_id)
        if as_json:
            return Rewritten(ids.delivery_id, None, None, out_headers, filler.pixels > 0,
                             filler.position, filler.warnings, None,
                             html_json or b"null", text_json or b"null")
        return Rewritten(ids.delivery_id, out_html, out_text, out_headers,
                         filler.pixels > 0, filler.position, filler.warnings)

    def _bodies(self, ids: MessageIds, html: str | None, text: str | None, utm: UTM,
                pixel: bool, own: Own, fill: Callable[[Template], _Body],
                untracked: Callable[[str], _Body]) -> tuple[_Body | None, _Body | None]:
        """The HTML and text bodies filled (HTML first: its links come first in link
        positions), or passed through untracked when the campaign's tracking is off."""
        if ids.tracking == TRACKING_OFF:
            return (None if html is None else untracked(html),
                    None if text is None else untracked(text))
        out_html = (None if html is None
                    else fill(self.compile_html(html, utm, pixel=pixel, own=own)))
        out_text = None if text is None else fill(self.compile_text(text, utm, own=own))
        return out_html, out_text

    def rewrite_mime(self, ids: MessageIds, raw: bytes, utm: UTM = ()) -> Rewritten:
        """Rewrite a whole MIME message (bytes in, bytes out); see :mod:`mime`.

        Raises RewriteError when the message cannot be read at all (empty, no
        headers, an unknown transfer encoding); a part in an unknown or wrong
        charset is passed through with a warning instead. A message seen before
        (the same body: another recipient, another copy) is filled from its
        template (:mod:`mimetemplate`): what the parse would give, but for where
        a quoted-printable part's soft line breaks fall."""
        site = self.site(ids.tracking_domain)
        email = ids.channel == Channel.EMAIL
        template = self.mime_templates.get(raw)
        if template is not None:
            filler = _Filler(self, ids, site)
            body = template.fill(self._part_rewriter(ids, filler, utm, email),
                                 filler.warnings)
            if body is not None:
                headers: dict[str, str] = {}
                if email:
                    self._email_headers(headers, filler, ids.delivery_id,
                                        {"List-Unsubscribe": template.head.list_unsubscribe})
                return Rewritten(ids.delivery_id, None, None, headers, filler.pixels > 0,
                                 filler.position, filler.warnings,
                                 template.join(headers, body))
        filler = _Filler(self, ids, site)
        slow_headers: dict[str, str] = {}

        def make_headers(message: Message) -> dict[str, str]:
            if email:
                existing = {"List-Unsubscribe": ", ".join(
                    str(v) for v in message.get_all("List-Unsubscribe") or ())}
                self._email_headers(slow_headers, filler, ids.delivery_id, existing)
            return slow_headers

        data = mime.rewrite_message(raw, self._part_rewriter(ids, filler, utm, email).text,
                                    make_headers, filler.warnings)
        return Rewritten(ids.delivery_id, None, None, slow_headers, filler.pixels > 0,
                         filler.position, filler.warnings, data)

    def _part_rewriter(self, ids: MessageIds, filler: _Filler, utm: UTM,
                       email: bool) -> PartFiller:
        """What a MIME text part's body becomes, by subtype (html or plain)."""
        own = filler.site.own

        def compiled(subtype: str, body: str) -> Template:
            if subtype == "html":
                return self.compile_html(body, utm, pixel=email, own=own)
            return self.compile_text(body, utm, own=own)

        def text(subtype: str, body: str) -> str:
            if ids.tracking == TRACKING_OFF:
                return filler.untracked(body)
            return filler.fill(compiled(subtype, body))

        def pieces(subtype: str, body: str) -> tuple[Template, list[str]] | None:
            if ids.tracking == TRACKING_OFF:
                return None
            template = compiled(subtype, body)
            return template, filler.values(template)

        return PartFiller(text, pieces)

    def _email_headers(self, headers: dict[str, str], filler: _Filler, delivery_id: int,
                       existing: dict[str, str] | None = None) -> None:
        """RFC 2369 + RFC 8058 one-click, as Gmail and Yahoo require of bulk senders,
        and the delivery id, by which bounce notifications (SES) find the delivery.

        A ``List-Unsubscribe`` the sender set (in ``headers``, or ``existing`` for a
        MIME message) is extended, not replaced: ours first, so one-click clients
        use it, then the sender's own URIs (RFC 2369 allows several)."""
        ours = ("list-unsubscribe", "list-unsubscribe-post", DELIVERY_HEADER.lower())
        theirs = [value for name, value in (existing or {}).items()
                  if name.lower() == "list-unsubscribe"]
        for name in [n for n in headers if n.lower() in ours]:
            if name.lower() == "list-unsubscribe":
                theirs.append(headers[name])
            del headers[name]
        headers["List-Unsubscribe"] = unsubscribe_header(
            filler.unsubscribe_url(), theirs,
            (filler.site.unsubscribe_prefix, self.unsubscribe_prefix))
        headers["List-Unsubscribe-Post"] = ONE_CLICK
        headers[DELIVERY_HEADER] = str(delivery_id)


_ANGLED = re.compile(r"<([^<>]*)>")


def unsubscribe_header(url: str, theirs: list[str], prefix: str | tuple[str, ...]) -> str:
    """``<url>`` followed by every URI of the sender's own ``List-Unsubscribe``
    values (RFC 2369: angle-bracketed, comma-separated), less any of ours (a
    message rewritten twice does not list two tracker links)."""
    uris = [url]
    for value in theirs:
        found = _ANGLED.findall(value) or value.split(",")
        for uri in (u.strip() for u in found):
            if uri and not uri.startswith(prefix) and uri not in uris:
                uris.append(uri)
    return ", ".join(f"<{uri}>" for uri in uris)

