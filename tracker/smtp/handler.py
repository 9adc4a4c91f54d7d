"""The aiosmtpd handler: who may send (MAIL), who may receive (RCPT), and DATA.

DATA answers ``250`` only once the upstream took every recipient's copy; until
then the sending MTA keeps the message, so the relay needs no queue of its own.
"""

from __future__ import annotations

import logging
import weakref

from aiosmtpd.smtp import SMTP, Envelope, Session

from tracker.rewrite.errors import RewriteError
from tracker.rewrite.send import Sender
from tracker.smtp import headers, tracking, upstream
from tracker.smtp.access import may_send_without_auth
from tracker.smtp.pool import DATABASE_ERRORS, Pool
from tracker.smtp.settings import RelaySettings
from tracker.store.suppressions import suppression
from tracker.tokens import Channel

log = logging.getLogger("tracker.smtp")

DB_DOWN = ("451 4.3.0 the tracker's database is unavailable; the message was not accepted, "
           "retry later")


class RelayHandler:
    """One per server; sessions and envelopes are aiosmtpd's."""

    def __init__(self, settings: RelaySettings, pool: Pool, sender: Sender) -> None:
        self.settings = settings
        self.pool = pool
        self.sender = sender
        #: upstream connections, kept between messages
        self.upstreams = upstream.Connections(settings.upstream)
        #: recipients refused at RCPT as suppressed, per envelope (recorded after DATA)
        self._refused: weakref.WeakKeyDictionary[Envelope, list[str]] = (
            weakref.WeakKeyDictionary())

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not session.authenticated and not may_send_without_auth(session.peer,
                                                                   self.settings.allow):
            return ("530 5.7.0 authentication required: log in with AUTH PLAIN or LOGIN "
                    "using the API key as password (after STARTTLS), or send from a network "
                    "listed in TRACKER_SMTP_ALLOW")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        try:
            async with self.pool.acquire() as conn:
                found = await suppression(conn, address, Channel.EMAIL)
        except DATABASE_ERRORS as exc:
            log.warning("smtp: suppression check failed: %s", exc)
            return DB_DOWN
        if found is not None:
            self._refused.setdefault(envelope, []).append(address)
            return (f"550 5.7.1 {address} is on the suppression list ({found[0]} since "
                    f"{found[1]:%Y-%m-%d}); the tracker sends it nothing (F14)")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        refused = self._refused.pop(envelope, [])
        try:
            found, stripped = headers.split(content)
            fields = headers.parse(found)
        except headers.HeaderError as exc:
            return f"554 5.6.0 {exc}; nothing was relayed"
        relayed: list[upstream.Copy] = []
        try:
            if fields.campaign is None:
                relayed = [upstream.Copy(r, content) for r in envelope.rcpt_tos]
                await self._relay(envelope, relayed)
                return "250 2.0.0 relayed untracked (no X-Tracker-Campaign header)"
            async with tracking.recorded(self.pool, self.sender, fields,
                                         list(envelope.rcpt_tos), stripped) as tracked:
                await self._relay(envelope, tracked.copies)
                relayed = tracked.copies
        except upstream.Refused as exc:
            log.info("smtp: not relayed: %s", exc.reply)
            return exc.reply
        except RewriteError as exc:
            return f"554 5.6.0 the message cannot be read as MIME: {exc}; nothing was relayed"
        except DATABASE_ERRORS as exc:
            if not relayed:
                log.warning("smtp: database error: %s", exc)
                return DB_DOWN
            # the upstream has every copy: asking the client to retry would send twice
            log.error("smtp: relayed %d copies but their deliveries were not recorded: %s",
                      len(relayed), exc)
            return "250 2.0.0 relayed (the deliveries could not be recorded)"
        try:
            await tracking.record_refused(self.pool, self.sender, fields, refused)
        except DATABASE_ERRORS as exc:  # the mail is out: never ask again
            log.warning("smtp: suppressed recipients %s not recorded: %s", refused, exc)
        return (f"250 2.0.0 relayed {len(relayed)} tracked copies for campaign "
                f"{fields.campaign}")

    async def _relay(self, envelope: Envelope, copies: list[upstream.Copy]) -> None:
        if copies:
            await self.upstreams.relay(envelope.mail_from or "", copies,
                                       upstream.mail_options(envelope.mail_options))
        log.info("smtp: relayed %d copies from %s", len(copies), envelope.mail_from)
