"""Handing copies to the upstream MTA, all or nothing as far as the reply goes.

The standard library's ``smtplib`` in a worker thread: the upstream is one
trusted MTA, one connection per relayed message, so an asyncio client would buy
nothing but a dependency. Every failure becomes :class:`Refused` with the reply
the relay gives its own client: 4xx while the sender should retry, 5xx when the
upstream refused for good."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass

from tracker.smtp.settings import Upstream

#: MAIL FROM parameters passed on to the upstream (SIZE is smtplib's own).
PASSED_OPTIONS = ("BODY=8BITMIME", "SMTPUTF8")


@dataclass(frozen=True, slots=True)
class Copy:
    """One recipient's own message."""

    recipient: str
    data: bytes


class Refused(Exception):
    """The upstream did not take every copy; ``reply`` is the SMTP reply to give."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply

    @property
    def permanent(self) -> bool:
        return self.reply.startswith("5")


def _one_line(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(text.split())[:300]


def _refusal(upstream: Upstream, code: int, text: bytes | str, recipient: str) -> Refused:
    said = f"{code} {_one_line(text)}"
    if 500 <= code < 600:
        mine = code if code in (550, 552, 553, 554) else 554
        return Refused(f"{mine} 5.0.0 the upstream {upstream.address} refused the copy for "
                       f"{recipient} ({said}); nothing more was relayed, fix the message "
                       "or the recipient")
    return Refused(f"451 4.4.0 the upstream {upstream.address} deferred the copy for "
                   f"{recipient} ({said}); the message was not accepted, retry later")


def mail_options(options: list[str]) -> list[str]:
    return [o for o in options if o.upper() in PASSED_OPTIONS]


def _check_extensions(client: smtplib.SMTP, upstream: Upstream, options: list[str]) -> None:
    """A message that needs SMTPUTF8 or 8BITMIME cannot go to an upstream without it
    (the relay converts nothing): refused for good, saying why."""
    wanted = {o.upper() for o in options}
    if "SMTPUTF8" in wanted and not client.has_extn("smtputf8"):
        raise Refused(f"554 5.6.7 the upstream {upstream.address} does not accept SMTPUTF8 "
                      "(non-ASCII addresses); send with ASCII addresses or use an upstream "
                      "that supports it")
    if "BODY=8BITMIME" in wanted and not client.has_extn("8bitmime"):
        raise Refused(f"554 5.6.3 the upstream {upstream.address} does not accept 8BITMIME; "
                      "send the message 7-bit (quoted-printable or base64 parts) or use an "
                      "upstream that supports it")


def _send(upstream: Upstream, sender: str, copies: list[Copy], options: list[str]) -> None:
    recipient = copies[0].recipient if copies else ""
    try:
        client = smtplib.SMTP(upstream.host, upstream.port, timeout=upstream.timeout)
        try:
            client.ehlo()
            if upstream.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if upstream.user is not None and upstream.password is not None:
                client.login(upstream.user, upstream.password)
            _check_extensions(client, upstream, options)
            for copy in copies:
                recipient = copy.recipient
                client.sendmail(sender, [copy.recipient], copy.data, options)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()  # every copy was already taken (or refused) by now
    except smtplib.SMTPAuthenticationError as exc:
        raise Refused(f"451 4.7.0 the upstream {upstream.address} refused the relay's login "
                      f"({exc.smtp_code} {_one_line(exc.smtp_error)}); the operator must fix "
                      "TRACKER_SMTP_UPSTREAM_USER/PASSWORD, retry later") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise Refused(f"451 4.7.0 the upstream {upstream.address} does not support "
                      f"{_one_line(str(exc))}; the operator must fix the relay's upstream "
                      "settings (TRACKER_SMTP_UPSTREAM_STARTTLS), retry later") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise _refusal(upstream, code, text, recipient) from exc
    except smtplib.SMTPResponseException as exc:
        raise _refusal(upstream, exc.smtp_code, exc.smtp_error, recipient) from exc
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timed out, TLS
        raise Refused(f"451 4.4.1 the upstream {upstream.address} is unreachable "
                      f"({_one_line(str(exc) or type(exc).__name__)}); the message was not "
                      "accepted, retry later") from exc


async def relay(upstream: Upstream, sender: str, copies: list[Copy],
                options: list[str]) -> None:
    """Send every copy (one upstream transaction each); Refused unless all were taken."""
    await asyncio.to_thread(_send, upstream, sender, copies, mail_options(options))
