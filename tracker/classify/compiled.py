"""Compiled Hyperscan databases kept on disk, so a process starts without compiling.

Every process that classifies user agents compiles the same pattern sets (each worker
of ``tracker serve`` before it serves, the shipper at its first new agent): about a
fifth of a second of CPU each, at every start. A compiled database serialises to a
few hundred kilobytes and loads in a tenth of a millisecond, so it is kept under the
user's cache directory (``$XDG_CACHE_HOME/tracker``, else ``~/.cache/tracker``), named
by a hash of everything that makes it: the patterns, their flags and the Hyperscan
version. Hyperscan refuses a database made for another CPU or version when loading
it, and then (or when the file is unreadable, or the directory not writable) the set
is compiled as before: the cache can only save time, never change a match.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import hyperscan

from tracker.config import cache_dir


def _path(expressions: list[bytes], flags: list[int]) -> Path:
    version = getattr(hyperscan, "__version__", "")  # a database of another is refused anyway
    key = hashlib.sha256(repr((version, expressions, flags)).encode())
    return cache_dir("hyperscan") / f"{key.hexdigest()}.hsdb"


def load(expressions: list[bytes], flags: list[int]) -> hyperscan.Database | None:
    """The database compiled earlier from exactly these patterns, if this machine can
    use it."""
    try:
        return hyperscan.loadb(_path(expressions, flags).read_bytes(), hyperscan.HS_MODE_BLOCK)
    except (OSError, hyperscan.error):
        return None


def save(expressions: list[bytes], flags: list[int], database: hyperscan.Database) -> None:
    """Keep ``database`` for the next process (written whole, then renamed, so that a
    reader never sees half a file)."""
    path = _path(expressions, flags)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(hyperscan.dumpb(database))
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
