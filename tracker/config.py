"""Settings from the environment (public names, listed in README.md "Configuration").

Secrets that are not configured are generated once and kept in the data
directory with mode 0600, so a restart keeps every link already sent valid.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(Exception):
    """A setting is present but unusable; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    secret_keys: list[str]
    api_key: str
    public_url: str
    timezone: str
    generated: list[str] = field(default_factory=list)
    #: TRACKER_JOURNAL_MAX_BYTES: cap on journal bytes waiting for PostgreSQL (None: the
    #: disk's own size). Past it new events are dropped and counted, as on a full disk.
    journal_max_bytes: int | None = None

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"


def cache_dir(kind: str) -> Path:
    """Where the tracker keeps what it can rebuild, per user and machine rather than
    per instance (compiled Hyperscan databases, Citus builds): ``$XDG_CACHE_HOME/
    tracker/<kind>``, else ``~/.cache/tracker/<kind>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tracker" / kind


def _read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    if path.exists():
        return path.read_text().strip(), False
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value, True


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TRACKER_* variables, generating missing secrets under the data dir."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("TRACKER_DATA_DIR") or "./.tracker").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    generated: list[str] = []

    raw_keys = env.get("TRACKER_SECRET_KEYS", "")
    keys = [k.strip() for k in raw_keys.split(",") if k.strip()]
    if raw_keys and not keys:
        raise ConfigError("TRACKER_SECRET_KEYS is set but holds no key; give key1,key2,...")
    if not keys:
        keys_file = data_dir / "secret_keys"
        text, made = _read_or_create(keys_file, lambda: secrets.token_urlsafe(32))
        keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
        if made:
            generated.append(f"signing key (kept in {keys_file})")
    for key in keys:
        if len(key) < 16:
            raise ConfigError(
                "every key in TRACKER_SECRET_KEYS must be at least 16 characters; "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )

    api_key = env.get("TRACKER_API_KEY", "").strip()
    if not api_key:
        api_key_file = data_dir / "api_key"
        api_key, made = _read_or_create(api_key_file, lambda: secrets.token_urlsafe(24))
        if made:
            generated.append(f"API key {api_key} (kept in {api_key_file})")

    public_url = (env.get("TRACKER_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"TRACKER_PUBLIC_URL must start with http:// or https://, got {public_url!r}"
        )
    timezone = env.get("TRACKER_TIMEZONE") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"TRACKER_TIMEZONE={timezone!r} is not a known time zone; use a name such as "
            "UTC or Asia/Tokyo"
        ) from exc

    journal_max_bytes = _size_or_none(env, "TRACKER_JOURNAL_MAX_BYTES")

    return Settings(
        data_dir=data_dir,
        database_url=env.get("TRACKER_DATABASE_URL") or None,
        secret_keys=keys,
        api_key=api_key,
        public_url=public_url,
        timezone=timezone,
        generated=generated,
        journal_max_bytes=journal_max_bytes,
    )


def _size_or_none(env: Mapping[str, str], name: str) -> int | None:
    """A positive byte count (suffixes k, M, G accepted), or None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    number, factor = raw, 1
    if raw[-1].lower() in units:
        number, factor = raw[:-1], units[raw[-1].lower()]
    try:
        value = int(number) * factor
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a byte count; give e.g. 500000000 or 512M")
    return value
