"""The embedded PostgreSQL used when no TRACKER_DATABASE_URL is given.

The ``pgserver`` wheel ships a real PostgreSQL server; this module only decides
where its data lives, hands back a DSN, and stops the server when the process
that started it ends (and only then: a ``tracker token`` run beside a running
``tracker serve`` must not stop the service's database). It listens on a Unix
socket inside the data directory, never on a TCP port.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running in ``pgdata``, from its postmaster.pid; None if
    none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


#: PostgreSQL refuses to run as root; pgserver then runs it as this user (creating it),
#: and so do the local cluster's nodes (tracker.cluster)
SERVER_USER = "pgserver"


def server_user() -> str | None:
    """The user to run PostgreSQL's programs as: ``pgserver`` under root, else ourselves."""
    return SERVER_USER if os.geteuid() == 0 else None


def is_running(pgdata: Path) -> bool:
    return postmaster_pid(pgdata) is not None


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's too), a zombie counting as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie answers signal 0; a postmaster is pg_ctl's grandchild, not ours
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def start_embedded(pgdata: Path, *, stop_at_exit: bool = True) -> str:
    """Start (or attach to) the embedded server in ``pgdata`` and return its DSN.

    With ``stop_at_exit`` the server is stopped when this process exits, but only
    if this process is the one that started it."""
    started_here = not is_running(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver imports get_server into its package without re-exporting it
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    if started_here and stop_at_exit:
        atexit.register(pg_ctl_stop, pgdata)
    return server.get_uri()


def pg_ctl_stop(pgdata: Path, mode: str = "fast") -> None:
    """Stop the embedded server in ``pgdata`` now (``mode``: smart, fast, immediate)."""
    # pgserver makes its pg_ctl wrapper at import time (globals()), so no stub names it
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    if not is_running(pgdata):
        return
    try:
        pg_ctl(["-m", mode, "-w", "stop"], pgdata=pgdata, user=server_user(), timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log.warning("could not stop embedded PostgreSQL in %s: %s", pgdata, exc)
