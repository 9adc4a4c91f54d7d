"""Finding Citus's source: TRACKER_CITUS_SOURCE, else ``../shared/citus/`` beside the
repository (where the project keeps the released tarball, since no package of Citus
reaches these machines).

Either a ``citus-<version>.tar.gz`` (as GitHub's release archive or ``git archive``
makes it: one top folder) or an unpacked tree with its ``configure`` script.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tracker.cluster.errors import ClusterError

#: The variable that names the source, overriding ../shared/citus/.
SOURCE_VARIABLE = "TRACKER_CITUS_SOURCE"

_TARBALL = re.compile(r"citus-(\d+(?:\.\d+)*)\.tar\.gz$")
_CONFIGURE_VERSION = re.compile(rb"^PACKAGE_VERSION='([^']+)'", re.MULTILINE)


@dataclass(frozen=True)
class Source:
    path: Path
    version: str
    #: what makes one build differ from another: a tarball's content hash, or an
    #: unpacked tree's path (edit a tree and rebuild with ``tracker cluster build --rebuild``)
    identity: str

    @property
    def is_tarball(self) -> bool:
        return self.path.is_file()


def default_location() -> Path:
    """``../shared/citus/`` beside the repository this package was installed from."""
    return Path(__file__).resolve().parents[3] / "shared" / "citus"


def find_source(environ: dict[str, str] | None = None) -> Source:
    env = os.environ if environ is None else environ
    named = env.get(SOURCE_VARIABLE)
    if named:
        path = Path(named).expanduser().resolve()
        if not path.exists():
            raise ClusterError(
                f"{SOURCE_VARIABLE}={named} does not exist; point it at Citus's source: "
                "a citus-<version>.tar.gz or an unpacked tree with its configure script"
            )
        return _describe(path)
    folder = default_location()
    tarballs = sorted(folder.glob("citus-*.tar.gz"), key=_version_key) if folder.is_dir() else []
    if not tarballs:
        raise ClusterError(
            f"no Citus source found: put citus-<version>.tar.gz in {folder} (the "
            f"repository's ../shared/citus/), or set {SOURCE_VARIABLE} to a tarball or "
            "an unpacked source tree (https://github.com/citusdata/citus/releases)"
        )
    return _describe(tarballs[-1])


def _version_key(path: Path) -> tuple[int, ...]:
    match = _TARBALL.search(path.name)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _describe(path: Path) -> Source:
    if path.is_dir():
        configure = path / "configure"
        if not configure.is_file():
            raise ClusterError(
                f"{path} has no configure script: give the top folder of Citus's source "
                f"(or its release tarball) in {SOURCE_VARIABLE}"
            )
        version = _configure_version(configure.read_bytes(), path)
        return Source(path, version, f"tree:{path}:{version}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    match = _TARBALL.search(path.name)
    version = match.group(1) if match else _tarball_version(path)
    return Source(path, version, f"tarball:{digest}")


def _tarball_version(path: Path) -> str:
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.name.count("/") <= 1 \
                        and member.name.endswith("configure"):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return _configure_version(handle.read(), path)
    except (OSError, tarfile.TarError) as exc:
        raise ClusterError(f"cannot read {path} as a tar.gz of Citus's source ({exc})") from exc
    raise ClusterError(f"{path} holds no configure script at its top: is it Citus's source?")


def _configure_version(text: bytes, where: Path) -> str:
    match = _CONFIGURE_VERSION.search(text)
    if match is None:
        raise ClusterError(f"cannot find Citus's version in the configure script of {where}")
    return match.group(1).decode()
