"""The ``X-Tracker-*`` headers: read, checked and cut out of the message's bytes.

They are removed at the byte level (the header lines and their continuation
lines), so everything else reaches the rewriter exactly as the sender wrote it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracker.api.bodies import BadRequest
from tracker.api.campaigns import check_id
from tracker.tokens import CHANNELS_BY_NAME, channel_named

CAMPAIGN = "x-tracker-campaign"
TASK = "x-tracker-task"
USER = "x-tracker-user"
CHANNEL = "x-tracker-channel"
TEST = "x-tracker-test"
NAMES = {CAMPAIGN: "X-Tracker-Campaign", TASK: "X-Tracker-Task", USER: "X-Tracker-User",
         CHANNEL: "X-Tracker-Channel", TEST: "X-Tracker-Test"}
#: The schedule task of a message without X-Tracker-Task.
DEFAULT_TASK = "smtp"

_HEADER_END = re.compile(rb"\r?\n(?=\r?\n)")
_LINE = re.compile(rb"[^\n]*(?:\n|$)")
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")


class HeaderError(ValueError):
    """An X-Tracker header is unusable; the text says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class TrackerHeaders:
    """What the sender asked for; ``campaign`` None means relay untracked."""

    campaign: str | None = None
    task: str = DEFAULT_TASK
    user: str | None = None
    channel: str = "email"
    is_test: bool = False


def split(content: bytes) -> tuple[dict[str, str], bytes]:
    """({lower-case X-Tracker name: value}, the message without those headers).

    Without any X-Tracker header the very same bytes come back."""
    match = _HEADER_END.search(content)
    end = match.end() if match else len(content)
    found: dict[str, str] = {}
    kept: list[bytes] = []
    dropping: str | None = None
    for line in _LINE.findall(content[:end]):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the line before
            if dropping is None:
                kept.append(line)
            else:
                found[dropping] += " " + _text(line, dropping).strip()
            continue
        field = _FIELD.match(line)
        name = field.group(1).decode("ascii").lower() if field else ""
        if field is None or name not in NAMES:
            dropping = None
            kept.append(line)
            continue
        if name in found:
            raise HeaderError(f"{NAMES[name]} appears twice; give it once")
        dropping = name
        found[name] = _text(line[field.end():], name).strip()
    if not found:
        return found, content
    return found, b"".join(kept) + content[end:]


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"{NAMES[name]} is not UTF-8 text (byte {exc.start}); write the id "
                          "in ASCII or UTF-8") from exc


def parse(found: dict[str, str]) -> TrackerHeaders:
    """Check the values as ``POST /v1/messages`` checks its fields."""
    if CAMPAIGN not in found:
        return TrackerHeaders()
    try:
        campaign = check_id(found[CAMPAIGN], NAMES[CAMPAIGN])
        task = check_id(found[TASK], NAMES[TASK]) if TASK in found else DEFAULT_TASK
        user = check_id(found[USER], NAMES[USER]) if USER in found else None
    except BadRequest as exc:
        raise HeaderError(str(exc.detail)) from exc
    channel = found.get(CHANNEL, "email").lower()
    if channel_named(channel) is None:
        raise HeaderError(f"X-Tracker-Channel must be one of {', '.join(CHANNELS_BY_NAME)}, "
                          f"not {found[CHANNEL][:40]!r}")
    test = found.get(TEST, "0")
    if test not in ("0", "1"):
        raise HeaderError(f"X-Tracker-Test must be 1 (a test send) or 0, not {test[:40]!r}")
    return TrackerHeaders(campaign, task, user, channel, test == "1")
