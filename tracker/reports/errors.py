"""Error codes (docs/figures.md#f9): category (bounce, push, other) and kind (soft, hard, None).

``tracker.errorcodes`` (the ingest side's table) is the authority when present;
until then the codes docs/figures.md#f9 lists are classified here. Unknown codes are kept
verbatim under "other".
"""

from __future__ import annotations

from typing import Any

import asyncpg

_SOFT_BOUNCES = {"Transient:General", "Transient:MailboxFull", "Transient:ContentRejected",
                 "Transient:MessageTooLarge"}
_HARD_BOUNCES = {"Permanent:General", "Permanent:Suppressed"}
_PUSH = {"messaging/registration-token-not-registered", "messaging/invalid-payload",
         "messaging/mismatched-credential", "messaging/internal-error",
         "messaging/invalid-argument"}


def _fallback(code: str | None) -> tuple[str, str | None]:
    if code in _SOFT_BOUNCES or (code or "").startswith("Transient:"):
        return "bounce", "soft"
    if code in _HARD_BOUNCES or (code or "").startswith("Permanent:"):
        return "bounce", "hard"
    if code in _PUSH or (code or "").startswith("messaging/"):
        return "push", None
    return "other", None


def classify(code: str | None) -> tuple[str, str | None]:
    """(category, kind) of an error code."""
    try:
        from tracker import errorcodes
    except ImportError:
        return _fallback(code)
    lookup = getattr(errorcodes, "classify", None)
    if lookup is None:
        return _fallback(code)
    found = lookup(code)
    if isinstance(found, tuple) and len(found) == 2:
        return found
    category, kind = getattr(found, "category", None), getattr(found, "kind", None)
    return (category or "other", kind) if found is not None else _fallback(code)


def error_table(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The error codes of a report (counts.error_codes' rows), each with its category,
    kind and top messages."""
    table: dict[object, dict[str, Any]] = {}
    for r in rows:
        entry = table.get(r["code"])
        if entry is None:
            category, kind = classify(r["code"])
            entry = table[r["code"]] = {"category": category, "code": r["code"], "kind": kind,
                                        "count": r["total"], "top_messages": []}
        entry["top_messages"].append({"message": r["message"], "count": r["n"]})
    return list(table.values())
