"""Putting a cached Citus build into the embedded PostgreSQL, unless it is there.

A file is written beside its target and renamed over it: a server already running
with ``citus.so`` loaded keeps the file it mapped (overwriting it in place would
crash that server). Comparing the cached tree with the installed files (3.8 MB, a
few milliseconds) is how "already installed" is known, so a venv made afresh, or a
pgserver upgraded under it, is simply filled again.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tracker.cluster.build import Build, Progress, ensure_built, locked
from tracker.cluster.pginstall import pginstall
from tracker.cluster.source import find_source


def _files(build: Build) -> Iterator[Path]:
    for path in sorted(build.tree.rglob("*")):
        if path.is_file():
            yield path.relative_to(build.tree)


def missing_files(build: Build) -> list[Path]:
    """The files of ``build`` that the embedded PostgreSQL lacks or holds otherwise."""
    target = pginstall()
    return [relative for relative in _files(build)
            if not (target / relative).is_file()
            or not filecmp.cmp(build.tree / relative, target / relative, shallow=False)]


def install(build: Build) -> int:
    """Copy what is missing into the embedded PostgreSQL; the number of files copied."""
    target = pginstall()
    missing = missing_files(build)
    for relative in missing:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        shutil.copy2(build.tree / relative, partial)
        os.replace(partial, destination)
    return len(missing)


def prepare(*, rebuild: bool = False, progress: Progress = lambda _: None) -> str:
    """Make Citus loadable by the embedded PostgreSQL (building it if no cache has
    it); the version installed."""
    source = find_source()
    with locked():
        build = ensure_built(source, rebuild=rebuild, progress=progress)
        copied = install(build)
    if copied:
        progress(f"installed Citus {source.version} into {pginstall()} ({copied} files)")
    return source.version
