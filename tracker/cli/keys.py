"""``tracker keys rotate|list``: signing-key rotation without breaking a sent link.

Every key verifies and only the first signs (``TRACKER_SECRET_KEYS``, newest first).
Rotating therefore prepends a new key: links minted from now on use it, links
already in inboxes keep verifying with the older keys until those are retired by
hand, once the messages that carry them no longer matter.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import click

from tracker.cli.database import settings_or_exit

KEYS_FILE = "secret_keys"


def fingerprint(key: str) -> str:
    """A short, non-secret name for a key (first 12 hex digits of its SHA-256)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def new_key() -> str:
    return secrets.token_urlsafe(32)


def write_keys(path: Path, keys: list[str]) -> None:
    """Replace the keys file atomically (write, fsync, rename), mode 0600: a crash
    leaves the old file or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@click.group()
def keys() -> None:
    """Signing keys of the tracking links."""


@keys.command()
def rotate() -> None:
    """Add a new signing key in front; the old ones keep verifying sent links."""
    settings = settings_or_exit()
    key = new_key()
    rotated = [key, *settings.secret_keys]
    older = ", ".join(fingerprint(k) for k in settings.secret_keys)
    if os.environ.get("TRACKER_SECRET_KEYS", "").strip():
        click.echo("TRACKER_SECRET_KEYS is set, so nothing was written. Set it to this value "
                   "(new key first) and restart the service:\n")
        click.echo(f"TRACKER_SECRET_KEYS={','.join(rotated)}\n")
        where = "TRACKER_SECRET_KEYS"
    else:
        path = settings.data_dir / KEYS_FILE
        write_keys(path, rotated)
        click.echo(f"added signing key {fingerprint(key)} in front of {path}; restart the "
                   "service to sign with it.")
        where = str(path)
    click.echo(f"New links are signed with {fingerprint(key)}; links already sent keep "
               f"verifying with the older keys ({older}).")
    click.echo(f"To retire an old key once no message that matters carries links signed "
               f"with it, delete it from the end of {where} and restart. Links it signed "
               "then answer 404 (clicks) or record nothing (opens).")


@keys.command(name="list")
def list_keys() -> None:
    """Show the keys' fingerprints (never the keys), the signing one first."""
    settings = settings_or_exit()
    for i, key in enumerate(settings.secret_keys):
        role = "signs and verifies" if i == 0 else "verifies"
        click.echo(f"{fingerprint(key)}  {role}")
