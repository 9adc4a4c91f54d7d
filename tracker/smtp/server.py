"""The relay on a socket: aiosmtpd's SMTP protocol (with the DATA reader of
:mod:`.protocol`), the handler, AUTH and TLS.

``start`` is what ``tracker smtp`` runs and what the tests start in a thread."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tracker.api.auth import key_matches
from tracker.rewrite.engine import Rewriter
from tracker.rewrite.send import Sender
from tracker.smtp.handler import RelayHandler
from tracker.smtp.pool import Pool
from tracker.smtp.protocol import RelaySMTP
from tracker.smtp.settings import RelaySettings
from tracker.tokens import TokenCodec

#: Largest message accepted (advertised as SIZE): what big providers take.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
POOL_SIZE = 10


class KeyAuthenticator:
    """AUTH PLAIN/LOGIN: any user name, the API key as password (TLS only: aiosmtpd
    does not even offer AUTH before STARTTLS)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and key_matches(auth_data.password,
                                                                self.api_key):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 wrong credentials: the password is the "
                                  "tracker's API key (TRACKER_API_KEY), any user name")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """For STARTTLS; OSError/SSLError when the files cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


@dataclass
class Running:
    server: asyncio.Server
    pool: Pool
    handler: RelayHandler | None = None

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        if self.handler is not None:
            self.handler.upstreams.close()
        await self.pool.close()


async def start(settings: RelaySettings, *, dsn: str, secret_keys: list[str], public_url: str,
                api_key: str, tls: ssl.SSLContext | None = None) -> Running:
    """Listen on ``settings.listen_host:listen_port`` (port 0: any free one)."""
    pool = Pool(dsn, POOL_SIZE)
    await pool.start()
    sender = Sender(Rewriter(TokenCodec(secret_keys), public_url))
    handler = RelayHandler(settings, pool, sender)
    authenticator = KeyAuthenticator(api_key)

    def protocol() -> SMTP:
        return RelaySMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True,
                    decode_data=False, ident="tracker smtp relay", tls_context=tls,
                    auth_require_tls=True, authenticator=authenticator)

    try:
        server = await asyncio.get_running_loop().create_server(
            protocol, settings.listen_host, settings.listen_port)
    except OSError:
        await pool.close()
        raise
    return Running(server, pool, handler)
