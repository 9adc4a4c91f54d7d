"""Putting a cached Citus build into the embedded PostgreSQL, unless it is there.

A file is written beside its target and renamed over it: a server already running
with ``citus.so`` loaded keeps the file it mapped (overwriting it in place would
crash that server). The build's name (version and hash, see ``build``) is written
last into the extension folder: when it is there, this build is installed and
nothing else is looked at (not even the cache, so a user who did not build it and
cannot write into the venv still starts clusters). A venv made afresh, or a pgserver
upgraded under it, lacks the name and is filled again from the cache.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tracker.cluster.build import (
    Build,
    Progress,
    build_name,
    cache_root,
    configure_options,
    ensure_built,
    locked,
)
from tracker.cluster.errors import ClusterError
from tracker.cluster.pginstall import pginstall
from tracker.cluster.source import find_source

#: where the installed build's name is kept, relative to pginstall
STAMP = Path("share/postgresql/extension/tracker_citus_build")


def installed_build() -> str | None:
    """The name of the build installed in the embedded PostgreSQL, if any."""
    try:
        return (pginstall() / STAMP).read_text().strip()
    except OSError:
        return None


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
    """Copy what is missing into the embedded PostgreSQL, then the build's name; the
    number of files copied."""
    target = pginstall()
    missing = missing_files(build)
    for relative in [*missing, STAMP]:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        if relative == STAMP:
            partial.write_text(build.name + "\n")
        else:
            shutil.copy2(build.tree / relative, partial)
        os.replace(partial, destination)
    return len(missing)


def prepare(*, rebuild: bool = False, progress: Progress = lambda _: None) -> str:
    """Make Citus loadable by the embedded PostgreSQL (building it if no cache has
    it); the version installed."""
    source = find_source()
    if not rebuild and installed_build() == build_name(source, configure_options()) \
            and (pginstall() / "lib" / "postgresql" / "citus.so").is_file():
        return source.version
    try:
        with locked():
            build = ensure_built(source, rebuild=rebuild, progress=progress)
            copied = install(build)
    except PermissionError as exc:
        raise ClusterError(
            f"cannot write {exc.filename}: building Citus needs a writable cache folder "
            f"({cache_root()}; set XDG_CACHE_HOME to move it) and installing it a writable "
            f"{pginstall()} (run `tracker cluster build` once as the venv's owner)"
        ) from exc
    if copied:
        progress(f"installed Citus {source.version} into {pginstall()} ({copied} files)")
    return source.version
