"""Many regular expressions matched against one string in one pass (Hyperscan).

The classifier asks of every never-seen user agent which of some 1,500 patterns
match it; Python's ``re`` tries them one at a time, position by position, at a cost
that a stranger controls by the length of the string. Hyperscan (Intel's
multi-pattern engine, made for this) compiles them all into one automaton and
scans the string once. The compiled database is shared; each thread gets its own
scratch space, which Hyperscan requires.

Compiling crawlerdetect's lists takes about a fifth of a second, so a set compiles
on its first match, not at import: a CLI command or a report that never classifies
an agent does not pay for it, and the service compiles them before it serves
(``tracker.classify.warm``), so no hit waits for it. A set compiled once on this
machine is loaded from disk after (``tracker.classify.compiled``).
"""

from __future__ import annotations

import contextlib
import re
import threading

import hyperscan

from tracker.classify import compiled as compiled_databases

_STOP = True  #: a match handler's answer that ends the scan
#: every set made, so that compile_all() can compile them before a service serves
_ALL: list[PatternSet] = []


def compile_all() -> None:
    """Compile every pattern set now (the service's start, before the first hit)."""
    for pattern_set in _ALL:
        pattern_set.compile()


class PatternSet:
    """Patterns (Python ``re`` syntax, each with its own ``re.I`` or not) numbered
    by their position in the list."""

    def __init__(self, patterns: list[re.Pattern[str]] | list[str], *, caseless: bool = False,
                 spans: bool = False) -> None:
        self._patterns = patterns
        self._caseless = caseless
        self._spans = spans
        self._database: hyperscan.Database | None = None
        self._compiling = threading.Lock()
        self._local = threading.local()
        _ALL.append(self)

    def compile(self) -> hyperscan.Database:
        """The compiled database, compiled now if it was not yet (once, whichever
        thread asks first)."""
        with self._compiling:
            if self._database is None:
                compiled = [re.compile(p, re.I if self._caseless else 0)
                            if isinstance(p, str) else p for p in self._patterns]
                base = (hyperscan.HS_FLAG_SOM_LEFTMOST if self._spans
                        else hyperscan.HS_FLAG_SINGLEMATCH)
                expressions = [p.pattern.encode() for p in compiled]
                flags = [base | (hyperscan.HS_FLAG_CASELESS if p.flags & re.I else 0)
                         for p in compiled]
                database = compiled_databases.load(expressions, flags)
                if database is None:
                    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
                    database.compile(expressions=expressions,
                                     ids=list(range(len(compiled))), flags=flags)
                    compiled_databases.save(expressions, flags, database)
                self._database = database
            return self._database

    def _scratch(self, database: hyperscan.Database) -> hyperscan.Scratch:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(database)
        return scratch

    def any(self, data: bytes) -> bool:
        """Whether any pattern matches ``data``; stops at the first match."""
        matched = False

        def on_match(*_args: object) -> bool:
            nonlocal matched
            matched = True
            return _STOP

        if data:
            database = self._database or self.compile()
            with contextlib.suppress(hyperscan.ScanTerminated):
                database.scan(data, match_event_handler=on_match,
                              scratch=self._scratch(database))
        return matched

    def matching(self, data: bytes) -> set[int]:
        """The numbers of the patterns that match ``data``."""
        found: set[int] = set()

        def on_match(ident: int, *_args: object) -> None:
            found.add(ident)

        database = self._database or self.compile()
        database.scan(data, match_event_handler=on_match, scratch=self._scratch(database))
        return found

    def spans(self, data: bytes) -> list[tuple[int, int, int]]:
        """Every (start, end, pattern number) of a match, the leftmost start for each
        end (needs ``spans=True``)."""
        found: list[tuple[int, int, int]] = []

        def on_match(ident: int, start: int, end: int, *_args: object) -> None:
            found.append((start, end, ident))

        database = self._database or self.compile()
        database.scan(data, match_event_handler=on_match, scratch=self._scratch(database))
        return found
