"""``tracker smtp``: the tracking SMTP relay (see tracker/smtp/)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from pathlib import Path

import click

from tracker.cli.database import database_url, migrate_or_exit, settings_or_exit
from tracker.smtp import server
from tracker.smtp.settings import RelaySettings, SettingsError, load


async def _serve(relay: RelaySettings, dsn: str, secret_keys: list[str], public_url: str,
                 api_key: str, tls: ssl.SSLContext | None) -> None:
    try:
        running = await server.start(relay, dsn=dsn, secret_keys=secret_keys,
                                     public_url=public_url, api_key=api_key, tls=tls)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {relay.listen_host}:{relay.listen_port} ({exc}); pick a free "
            "address with --listen or TRACKER_SMTP_LISTEN") from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    click.echo(f"tracker smtp: listening on {relay.listen_host}:{running.port}, relaying to "
               f"{relay.upstream.address}" + (" with STARTTLS" if relay.upstream.starttls else "")
               + ("; AUTH with the API key over STARTTLS" if tls else "; no TLS, so no AUTH"))
    try:
        await stop.wait()
    finally:
        await running.close()


@click.command()
@click.option("--listen", help="HOST:PORT to listen on [env TRACKER_SMTP_LISTEN, "
                               "default 127.0.0.1:2525].")
@click.option("--upstream", help="HOST:PORT of the MTA that delivers [env "
                                 "TRACKER_SMTP_UPSTREAM].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Certificate (PEM) for STARTTLS; needed for AUTH.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Private key (PEM) of --tls-cert.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def smtp(listen: str | None, upstream: str | None, tls_cert: Path | None,
         tls_key: Path | None, log_level: str) -> None:
    """Relay SMTP upstream, each message rewritten and recorded per recipient."""
    try:
        relay = load(os.environ, listen=listen, upstream=upstream)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    tls = None
    if tls_cert is not None and tls_key is not None:
        try:
            tls = server.tls_context(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise click.ClickException(f"cannot use {tls_cert} with {tls_key} for TLS ({exc}); "
                                       "give a PEM certificate and its private key") from exc
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(message)s")
    settings = settings_or_exit()
    dsn = database_url(settings)
    migrate_or_exit(dsn)
    serving = _serve(relay, dsn, settings.secret_keys, settings.public_url, settings.api_key, tls)
    try:
        # the server's and the shipper's loop (a dependency of uvicorn[standard]): 4-11%
        # more relayed copies per CPU-second (loadtests/README.md)
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serving)
    else:
        uvloop.run(serving)
