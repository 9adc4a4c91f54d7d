"""``tracker suppressions import|export FILE.csv``: the suppression list in bulk.

Marketers moving from another platform bring their lists (a million rows is
normal), so both directions stream through COPY with a progress bar. The CSV has
a header and the columns ``user_id,channel,reason,since``:

- ``channel``: ``email``, ``push`` or ``line``;
- ``reason``: ``hard_bounce``, ``complaint``, ``unsubscribe``,
  ``token_not_registered`` or ``import`` (empty means ``import``);
- ``since``: ISO 8601 (``2024-05-01T09:00:00+09:00``; without a zone it is UTC;
  empty means now).

An import is all or nothing: every row is checked first and any bad row (listed
by line number) aborts it. Rows already on the list keep their reason, except
that a harder one replaces ``unsubscribe`` (so a resubscribe cannot lift it).
"""

from __future__ import annotations

import asyncio
import csv
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from tracker.cli.database import connect, database_url, migrate_or_exit, settings_or_exit
from tracker.store import suppressions as store
from tracker.tokens import CHANNEL_NAMES, CHANNELS_BY_NAME

COLUMNS = ("user_id", "channel", "reason", "since")
CHUNK_ROWS = 50_000
MAX_LISTED_ERRORS = 20
MAX_USER_ID = 200


class BadRow(ValueError):
    pass


def parse_row(row: dict[str, str | None], now: datetime) -> tuple[str, int, str, datetime]:
    user_id = (row.get("user_id") or "").strip()
    if not user_id or len(user_id) > MAX_USER_ID or "\x00" in user_id:
        raise BadRow(f"user_id must be 1 to {MAX_USER_ID} characters")
    channel = (row.get("channel") or "").strip().lower()
    if channel not in CHANNELS_BY_NAME:
        raise BadRow(f"channel must be one of {', '.join(CHANNELS_BY_NAME)}, got {channel!r:.40}")
    reason = (row.get("reason") or "").strip() or "import"
    if reason not in store.REASONS:
        raise BadRow(f"reason must be one of {', '.join(store.REASONS)}, got {reason!r:.40}")
    raw_since = (row.get("since") or "").strip()
    if raw_since:
        try:
            since = datetime.fromisoformat(raw_since)
        except ValueError:
            raise BadRow(f"since {raw_since!r:.40} is not an ISO 8601 date and time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    else:
        since = now
    return user_id, int(CHANNELS_BY_NAME[channel]), reason, since


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
    return lines


async def import_file(dsn: str, path: Path) -> tuple[int, int]:
    """(rows read, rows added or changed); raises ClickException listing bad rows."""
    total = max(count_lines(path) - 1, 0)
    now = datetime.now(UTC)
    errors: list[str] = []
    read = 0
    async with connect(dsn) as conn, conn.transaction():
        await store.begin_import(conn)
        with path.open(newline="", encoding="utf-8-sig") as fh, click.progressbar(
                length=total, label="importing", file=sys.stderr) as bar:
            reader = csv.DictReader(fh)
            missing = [c for c in ("user_id", "channel") if c not in (reader.fieldnames or [])]
            if missing:
                raise click.ClickException(
                    f"{path}: the header must name the columns {','.join(COLUMNS)}; "
                    f"missing {', '.join(missing)}")
            chunk: list[tuple[str, int, str, datetime]] = []
            for row in reader:
                read += 1
                try:
                    chunk.append(parse_row(row, now))
                except BadRow as exc:
                    errors.append(f"line {reader.line_num}: {exc}")
                if len(chunk) >= CHUNK_ROWS:
                    if not errors:
                        await store.import_rows(conn, chunk)
                    bar.update(len(chunk))
                    chunk = []
            if chunk and not errors:
                await store.import_rows(conn, chunk)
            bar.update(len(chunk))
        if errors:
            listed = "\n  ".join(errors[:MAX_LISTED_ERRORS])
            more = f"\n  ... and {len(errors) - MAX_LISTED_ERRORS} more" \
                if len(errors) > MAX_LISTED_ERRORS else ""
            raise click.ClickException(
                f"{len(errors)} bad rows in {path}; nothing was imported. Fix them and run "
                f"again:\n  {listed}{more}")
        changed = await store.finish_import(conn)
    return read, changed


async def export_file(dsn: str, path: Path) -> int:
    async with connect(dsn) as conn:
        total = await store.count(conn)
        channel_case = " ".join(f"WHEN {int(c)} THEN '{n}'" for c, n in CHANNEL_NAMES.items())
        written = 0
        with path.open("wb") as fh, click.progressbar(
                length=total, label="exporting", file=sys.stderr) as bar:

            async def sink(data: bytes) -> None:
                nonlocal written
                fh.write(data)
                lines = data.count(b"\n")
                written += lines
                bar.update(lines)

            await conn.copy_from_query(
                f"SELECT user_id, CASE channel {channel_case} END AS channel, reason,"
                " to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS since"
                " FROM suppressions ORDER BY user_id, channel",
                output=sink, format="csv", header=True)
    return max(written - 1, 0)


@click.group()
def suppressions() -> None:
    """Move the suppression list in and out as CSV (user_id,channel,reason,since)."""


@suppressions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Add the users in FILE.csv to the suppression list (all rows or none)."""
    dsn = database_url(settings_or_exit())
    migrate_or_exit(dsn)
    read, changed = asyncio.run(import_file(dsn, file))
    click.echo(f"read {read} rows; {changed} added or changed, the rest already on the list")


@suppressions.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export_command(file: Path) -> None:
    """Write the whole suppression list to FILE.csv."""
    dsn = database_url(settings_or_exit())
    migrate_or_exit(dsn)
    written = asyncio.run(export_file(dsn, file))
    click.echo(f"wrote {written} rows to {file}")

