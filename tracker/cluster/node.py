"""One PostgreSQL server of the local cluster: made, started and stopped.

Each node is a data directory of its own, listening on a loopback TCP port only (no
Unix socket: nothing to clean up outside its directory), with Citus preloaded. Its
programs run as the unprivileged ``pgserver`` user when we are root (PostgreSQL
refuses root), which then owns the data directory; the folders above it are made
traversable for that user, as pgserver does for the embedded server's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tracker import embedded
from tracker.cluster.errors import ClusterError
from tracker.cluster.pginstall import binary
from tracker.embedded import alive, server_user

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DATABASE = "postgres"

#: seconds pg_ctl waits for a server to start or stop
PG_CTL_WAIT = 60


@dataclass(frozen=True)
class Node:
    name: str
    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    def settings(self) -> dict[str, str]:
        """What postgresql.conf gets beyond initdb's defaults."""
        return {
            "listen_addresses": f"'{HOST}'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "shared_preload_libraries": "'citus'",
        }


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def make_reachable(folder: Path) -> None:
    """Let the server's user traverse every folder above ``folder`` (when we are root)."""
    if server_user() is None:
        return
    for parent in folder.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def init(node: Node) -> None:
    """initdb the node's data directory (which must not exist yet) and configure it."""
    node.data_dir.mkdir(mode=0o700)
    user = server_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(node.data_dir, entry.pw_uid, entry.pw_gid)
    _run_as_server(node, [str(binary("initdb")), "-D", str(node.data_dir), "-U", SUPERUSER,
                          "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
    with open(node.data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# tracker cluster\n")
        conf.writelines(f"{key} = {value}\n" for key, value in node.settings().items())


def start(node: Node) -> int:
    """Start the node's server and wait until it accepts connections; its pid."""
    _run_as_server(node, [str(binary("pg_ctl")), "-D", str(node.data_dir), "-l", str(node.log),
                          "-w", "-t", str(PG_CTL_WAIT), "start"])
    pid = postmaster_pid(node)
    if pid is None:
        raise ClusterError(f"{node.name} did not start; its log ends:\n{tail(node)}")
    return pid


def stop(node: Node) -> int | None:
    """Stop the node's server (fast: sessions cut, a clean checkpoint) and wait for it
    to be gone; if it will not go, immediately, and at last SIGKILL. The pid stopped."""
    pid = postmaster_pid(node)
    if pid is None:
        return None
    for mode in ("fast", "immediate"):
        with contextlib.suppress(ClusterError):
            _run_as_server(node, [str(binary("pg_ctl")), "-D", str(node.data_dir), "-m", mode,
                                  "-w", "-t", str(PG_CTL_WAIT), "stop"])
        if not alive(pid):
            return pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def postmaster_pid(node: Node) -> int | None:
    """The pid of the node's running server, from its postmaster.pid; None if none runs."""
    return embedded.postmaster_pid(node.data_dir)


def _run_as_server(node: Node, command: list[str]) -> None:
    """Run a PostgreSQL program as the server's user. Output goes to a temporary file,
    not a pipe: a server started by pg_ctl could hold a pipe open (pgserver's note)."""
    with tempfile.TemporaryFile("w+") as output:
        try:
            result = subprocess.run(command, user=server_user(), cwd="/", stdin=subprocess.DEVNULL,
                                    stdout=output, stderr=subprocess.STDOUT,
                                    timeout=PG_CTL_WAIT + 30)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{Path(command[0]).name} for {node.name} did not finish in "
                               f"{exc.timeout:.0f} s; its log ends:\n{tail(node)}") from exc
        if result.returncode != 0:
            output.seek(0)
            raise ClusterError(
                f"{Path(command[0]).name} failed for {node.name} (exit {result.returncode}):\n"
                f"{output.read().strip()}\n{tail(node)}"
            )


def tail(node: Node, lines: int = 15) -> str:
    try:
        text = node.log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
