"""``tracker rewrite``: rewrite a message from stdin, as ``POST /v1/messages`` would.

One recipient (``--user``): the rewritten message goes to stdout, the delivery id to
stderr as its first line (then, for bare bodies, the headers to add, and any
warnings). A suppressed user writes nothing and exits with status 3.

Many recipients (``--recipients FILE --out DIR``): FILE holds one user id per line,
or CSV whose first column is the user id (a ``user_id`` header row is skipped).
DIR receives ``<delivery_id>.eml`` (or ``.html``/``.txt`` with ``--html``/``--text``)
per message and ``index.ndjson``, one line per recipient in input order:
``{"user_id", "delivery_id", "file", "headers"}`` or ``{"user_id", "delivery_id",
"suppressed": true, "reason"}``. Recipients are processed in batches of 1000, each
one suppression query and one COPY.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any, Protocol

import click

from tracker.api.campaigns import MAX_ID_LENGTH
from tracker.cli.database import connect, database_url, migrate_or_exit, settings_or_exit
from tracker.rewrite.engine import Rewriter
from tracker.rewrite.errors import RewriteError
from tracker.rewrite.send import Prepared, Recipient, Result, Sender
from tracker.tokens import CHANNELS_BY_NAME, TokenCodec

BATCH = 1000
EXIT_SUPPRESSED = 3


def read_recipients(path: Path) -> list[str]:
    """User ids from a list or CSV file (first column), blank lines and header skipped."""
    users: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.reader(fh), 1):
            if not row or not row[0].strip():
                continue
            user = row[0].strip()
            if number == 1 and user.lower() in ("user_id", "user", "userid"):
                continue
            if len(user) > MAX_ID_LENGTH:
                raise click.BadParameter(f"line {number}: the user id is longer than "
                                         f"{MAX_ID_LENGTH} characters", param_hint="--recipients")
            users.append(user)
    if not users:
        raise click.BadParameter(f"{path} holds no user ids", param_hint="--recipients")
    return users


def _recipient(user: str, data: bytes, mode: str, is_test: bool) -> Recipient:
    if mode == "mime":
        return Recipient(user, mime=data, is_test=is_test)
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"stdin is not UTF-8 (byte {exc.start}); convert it (e.g. iconv -t UTF-8) or pass "
            "a whole MIME message, whose parts may use any charset") from exc
    return Recipient(user, html=body if mode == "html" else None,
                     text=body if mode == "text" else None, is_test=is_test)


def _output(result: Prepared, mode: str) -> bytes:
    m = result.message
    if mode == "mime":
        return m.mime or b""
    return ((m.html if mode == "html" else m.text) or "").encode("utf-8")


class _Progress(Protocol):
    def update(self, n_steps: int) -> None: ...


async def _run(dsn: str, sender: Sender, users: list[str], data: bytes, mode: str, *,
               campaign: str, task: str, channel: str, is_test: bool,
               progress: _Progress | None = None) -> list[Result]:
    results: list[Result] = []
    async with connect(dsn) as conn:
        for start in range(0, len(users), BATCH):
            batch = [_recipient(u, data, mode, is_test) for u in users[start:start + BATCH]]
            results += await sender.send(conn, campaign_id=campaign, schedule_task_id=task,
                                         channel=channel, recipients=batch)
            if progress is not None:
                progress.update(len(batch))
    return results


@click.command()
@click.option("--campaign", "campaign_id", required=True, help="The sender's campaign id.")
@click.option("--task", required=True, help="The schedule task id (one send run).")
@click.option("--user", help="The recipient's user id (or use --recipients).")
@click.option("--recipients", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of user ids (one a line, or CSV with user ids first).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the messages of --recipients.")
@click.option("--channel", default="email", show_default=True,
              type=click.Choice(list(CHANNELS_BY_NAME)))
@click.option("--test", "is_test", is_flag=True, help="A test send: served, never recorded.")
@click.option("--html", "mode", flag_value="html", help="stdin is a bare HTML body.")
@click.option("--text", "mode", flag_value="text", help="stdin is a bare text body.")
@click.option("--mime", "mode", flag_value="mime", default=True,
              help="stdin is a whole MIME message (the default).")
def rewrite(campaign_id: str, task: str, user: str | None, recipients: Path | None,
            out: Path | None, channel: str, is_test: bool, mode: str) -> None:
    """Rewrite the message on stdin: tracked links, open pixel, unsubscribe link."""
    if (user is None) == (recipients is None):
        raise click.UsageError("give exactly one of --user or --recipients")
    if recipients is not None and out is None:
        raise click.UsageError("--recipients needs --out DIR for the messages")
    if recipients is None:
        assert user is not None, "exactly one of the two, checked above"
        users = [user]
    else:
        users = read_recipients(recipients)
    data = sys.stdin.buffer.read()
    if not data.strip():
        raise click.ClickException("stdin is empty; pipe the message to rewrite into it")
    settings = settings_or_exit()
    dsn = database_url(settings)
    migrate_or_exit(dsn)
    sender = Sender(Rewriter(TokenCodec(settings.secret_keys), settings.public_url))
    def run(progress: _Progress | None = None) -> list[Result]:
        return asyncio.run(_run(dsn, sender, users, data, mode, campaign=campaign_id, task=task,
                                channel=channel, is_test=is_test, progress=progress))

    try:
        if recipients is None:
            results = run()
        else:
            with click.progressbar(length=len(users), label="rewriting", file=sys.stderr,
                                   show_pos=True) as bar:
                results = run(bar)
    except RewriteError as exc:
        raise click.ClickException(f"{exc} (nothing was recorded)") from exc
    if recipients is None:
        _single(results[0], mode)
    else:
        assert out is not None, "--recipients needs --out, checked above"
        _many(results, mode, out)


def _single(result: Result, mode: str) -> None:
    if not isinstance(result, Prepared):
        click.echo(result.delivery_id, err=True)
        click.echo(f"user {result.user_id!r} is suppressed ({result.reason}); nothing to send",
                   err=True)
        sys.exit(EXIT_SUPPRESSED)
    sys.stdout.buffer.write(_output(result, mode))
    sys.stdout.buffer.flush()
    click.echo(result.message.delivery_id, err=True)
    if mode != "mime":
        for name, value in result.message.headers.items():
            click.echo(f"{name}: {value}", err=True)
    for warning in result.message.warnings:
        click.echo(f"warning: {warning}", err=True)


def _many(results: list[Result], mode: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = {"mime": ".eml", "html": ".html", "text": ".txt"}[mode]
    suppressed = 0
    with (out / "index.ndjson").open("w", encoding="utf-8") as index:
        for result in results:
            line: dict[str, Any]
            if isinstance(result, Prepared):
                name = f"{result.message.delivery_id}{suffix}"
                (out / name).write_bytes(_output(result, mode))
                line = {"user_id": result.user_id, "delivery_id": str(result.message.delivery_id),
                        "file": name, "headers": result.message.headers}
            else:
                suppressed += 1
                line = {"user_id": result.user_id, "delivery_id": str(result.delivery_id),
                        "suppressed": True, "reason": result.reason}
            index.write(json.dumps(line, ensure_ascii=False) + "\n")
    click.echo(f"{len(results) - suppressed} messages written to {out}, {suppressed} suppressed; "
               f"see {out / 'index.ndjson'}", err=True)
