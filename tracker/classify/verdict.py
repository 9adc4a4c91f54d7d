"""The verdict on one hit: who (or what) made it (docs/figures.md#human).

The numbers are fixed: they are stored in bits 1-3 of ``events.flags``
(``tracker.events.Flag.VERDICT_SHIFT``/``VERDICT_MASK``), so every row already
landed keeps its meaning. Add new verdicts at the end (up to 7), never renumber.
"""

from __future__ import annotations

from enum import IntEnum

from tracker.events import Flag


class Verdict(IntEnum):
    HUMAN = 0  #: a person's mail client or browser (the default when nothing says otherwise)
    MACHINE_OPEN = 1  #: a pixel fetched with nobody reading: Apple MPP prefetch, scanners, HEAD
    PROXIED_OPEN = 2  #: a real open through an image proxy (Gmail, Yahoo) that hides the client
    SCANNER_CLICK = 3  #: a link followed by a security scanner (Safe Links, Mimecast, ...)
    OTHER_BOT = 4  #: any other automated client: crawlers, HTTP libraries, monitors


#: verdicts a report counts as people by default (``include_bots=true`` adds the rest)
PEOPLE = frozenset({Verdict.HUMAN, Verdict.PROXIED_OPEN})


def to_flags(verdict: int) -> int:
    """The verdict's bits, to OR into ``events.flags``."""
    return (verdict << Flag.VERDICT_SHIFT) & Flag.VERDICT_MASK


def from_flags(flags: int) -> Verdict:
    """The verdict stored in an ``events.flags`` value."""
    return Verdict((flags & Flag.VERDICT_MASK) >> Flag.VERDICT_SHIFT)


def verdict_sql(flags: str) -> str:
    """``from_flags`` as an SQL expression over the flags column ``flags`` (e.g.
    ``"e.flags"``): ``((e.flags >> 1) & 7)``; SQL's own is tracker_verdict (sql/066)."""
    return f"(({flags} >> {Flag.VERDICT_SHIFT}) & {Flag.VERDICT_MASK >> Flag.VERDICT_SHIFT})"


def is_human(flags: int) -> bool:
    """The human predicate (docs/figures.md#human): counted among people by default,
    i.e. not a HEAD request and a verdict in PEOPLE. SQL's own is tracker_is_human
    (sql/066); tests/test_codes.py holds the two to each other."""
    return not flags & Flag.HEAD and (flags & Flag.VERDICT_MASK) >> Flag.VERDICT_SHIFT in PEOPLE


def human_sql(flags: str) -> str:
    """``is_human`` as an SQL expression over the flags column ``flags``, written out
    rather than calling tracker_is_human so that report queries read as they always
    did: ``((e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2))``."""
    people = ", ".join(str(int(v)) for v in sorted(PEOPLE))
    return f"(({flags} & {Flag.HEAD}) = 0 AND {verdict_sql(flags)} IN ({people}))"
