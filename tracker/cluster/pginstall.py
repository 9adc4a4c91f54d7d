"""Where the embedded PostgreSQL is installed.

Found from the ``pgserver`` package's location without importing it (an import
starts nothing, but costs a tenth of a second and warns without XDG_RUNTIME_DIR).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tracker.cluster.errors import ClusterError


def pginstall() -> Path:
    """The embedded PostgreSQL's installation folder (bin, lib, share, include)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise ClusterError(
            "the pgserver package is not installed in this Python; install the tracker "
            "with its dependencies: pip install -e ."
        )
    return Path(spec.origin).parent / "pginstall"


def binary(name: str) -> Path:
    """A program of the embedded PostgreSQL (initdb, pg_ctl, pg_config)."""
    return pginstall() / "bin" / name
