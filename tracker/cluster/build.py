"""Building Citus against the embedded PostgreSQL, once, and caching the result.

A build unpacks the source in a scratch folder beside the cache, runs Citus's
``configure`` with the embedded ``pg_config``, ``make`` and ``make install`` into a
staging folder (``DESTDIR``), and keeps what was installed, as a tree relative to the
PostgreSQL installation folder, under ``$XDG_CACHE_HOME/tracker/citus/`` (else
``~/.cache/tracker/citus/``). It is moved there whole when complete, so a cached
build is never half a build.

The cache entry is named by Citus's version and a hash of everything that makes the
build differ: the source (a tarball's content), the server's version and library
folder (``citus.so`` finds ``libpq`` through a run path to it) and the configure
options. lz4 and zstd (compression of Citus's columnar tables) are used when their
development files are installed and left out otherwise, so the build needs nothing
beyond a C compiler and make.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

from tracker.cluster.errors import ClusterError
from tracker.cluster.pginstall import binary
from tracker.cluster.source import Source
from tracker.config import cache_dir

#: libcurl serves only Citus's anonymous usage reports, which a local cluster should not send
BASE_OPTIONS = ("--without-libcurl",)

#: optional library -> the Debian package with its development files
OPTIONAL_LIBRARIES = {"lz4": "liblz4-dev", "zstd": "libzstd-dev"}

#: what the build runs -> the Debian package that provides it
BUILD_TOOLS = {"make": "make", "gcc": "gcc", "cpp": "cpp"}

#: PostgreSQL's build of the embedded server has no LLVM: no bitcode to make
MAKE_VARIABLES = ("with_llvm=no",)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Build:
    """A cached build: ``tree`` holds the installed files, relative to pginstall."""

    name: str
    tree: Path


def cache_root() -> Path:
    return cache_dir("citus")


def pg_config(option: str) -> str:
    return subprocess.run([str(binary("pg_config")), option], check=True,
                          capture_output=True, text=True).stdout.strip()


def configure_options() -> list[str]:
    """The configure options for this machine: optional libraries it lacks left out."""
    options = list(BASE_OPTIONS)
    for library in OPTIONAL_LIBRARIES:
        if not _links(library):
            options.append(f"--without-{library}")
    return options


def missing_libraries() -> list[str]:
    """Debian packages that would add columnar compression to a build (none needed)."""
    return [package for library, package in OPTIONAL_LIBRARIES.items() if not _links(library)]


def build_name(source: Source, options: list[str]) -> str:
    key = repr((source.identity, pg_config("--version"), pg_config("--libdir"), options))
    return f"{source.version}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def cached(source: Source) -> Build | None:
    name = build_name(source, configure_options())
    tree = cache_root() / name
    return Build(name, tree) if tree.is_dir() else None


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Held while building or installing, so two ``tracker cluster up`` runs at once
    build once and never copy over each other."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_built(source: Source, *, rebuild: bool = False,
                 progress: Progress = lambda _: None) -> Build:
    """The cached build of ``source``, built now if there is none (or ``rebuild``)."""
    options = configure_options()
    name = build_name(source, options)
    build = Build(name, cache_root() / name)
    if build.tree.is_dir() and not rebuild:
        return build
    _check_tools()
    progress(f"building Citus {source.version} from {source.path} (30-60 s on 2 cores; "
             f"cached in {build.tree})")
    log = cache_root() / f"{name}.log"
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=cache_root()))
    try:
        tree = _source_tree(source, scratch)
        stage = scratch / "stage"
        with open(log, "w") as out:
            _step(["./configure", *options, f"PG_CONFIG={binary('pg_config')}"], tree, out, log)
            _step(["make", f"-j{os.cpu_count() or 1}", *MAKE_VARIABLES], tree, out, log)
            _step(["make", "install", *MAKE_VARIABLES, f"DESTDIR={stage}"], tree, out, log)
        installed = stage / Path(pg_config("--bindir")).parent.relative_to("/")
        if not (installed / "lib").is_dir():
            raise ClusterError(f"Citus's make install put nothing under {installed}; see {log}")
        if build.tree.exists():
            shutil.rmtree(build.tree)
        installed.rename(build.tree)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return build


def _source_tree(source: Source, scratch: Path) -> Path:
    if not source.is_tarball:
        return source.path
    with tarfile.open(source.path) as archive:
        archive.extractall(scratch / "src", filter="tar")
    tops = [path for path in (scratch / "src").iterdir() if (path / "configure").is_file()]
    if len(tops) != 1:
        raise ClusterError(f"{source.path} does not hold one top folder with a configure script")
    return tops[0]


def _step(command: list[str], cwd: Path, out: IO[str], log: Path) -> None:
    out.write(f"$ {' '.join(command)}\n")
    out.flush()
    result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ClusterError(
            f"building Citus failed at `{' '.join(command[:2])}` (exit {result.returncode}); "
            f"the whole output is in {log}; its end:\n{tail}"
        )


def _check_tools() -> None:
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({BUILD_TOOLS[tool] for tool in missing}))
        raise ClusterError(
            f"building Citus needs {', '.join(missing)}, not found on PATH; on Debian or "
            f"Ubuntu: apt-get install -y {packages}"
        )


@cache
def _links(library: str) -> bool:
    """Whether a C program using ``library`` compiles and links here (its -dev package)."""
    program = f"#include <{library}.h>\nint main(void) {{ return 0; }}\n"
    try:
        result = subprocess.run(["gcc", "-x", "c", "-", "-o", os.devnull, f"-l{library}"],
                                input=program, capture_output=True, text=True)
    except OSError:
        return False
    return result.returncode == 0
