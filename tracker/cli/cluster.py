"""``tracker cluster up|down|status|build``: a local Citus cluster in one command.

``up`` builds Citus into the embedded PostgreSQL if no cached build is there, starts
a coordinator and two workers on loopback ports and prints the coordinator's
``TRACKER_DATABASE_URL=...`` as its only output on stdout (so
``export $(tracker cluster up)`` points the tracker at it); what it does goes to
stderr. ``down`` stops the nodes and removes their data. See docs/cluster.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import click

from tracker.cli.database import settings_or_exit
from tracker.cluster import build as citus_build
from tracker.cluster import install, nodes
from tracker.cluster.errors import ClusterError
from tracker.cluster.source import find_source


def _directory(given: Path | None) -> Path:
    return given if given is not None else settings_or_exit().data_dir / "cluster"


def _say(message: str) -> None:
    click.echo(message, err=True)


dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The cluster's folder (one data directory per node) [default: TRACKER_DATA_DIR/cluster].",
)


@click.group()
def cluster() -> None:
    """A local Citus cluster (a coordinator and two workers) for development and tests."""


@cluster.command()
@dir_option
def up(directory: Path | None) -> None:
    """Build Citus if needed, start the cluster, print its TRACKER_DATABASE_URL."""
    folder = _directory(directory)
    try:
        started = nodes.up(folder, progress=_say)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    ports = ", ".join(str(worker.port) for worker in started.workers)
    _say(f"coordinator on port {started.coordinator.port}, workers on {ports}; "
         f"stop with: tracker cluster down --dir {started.directory}")
    click.echo(f"TRACKER_DATABASE_URL={started.dsn}")


@cluster.command()
@dir_option
def down(directory: Path | None) -> None:
    """Stop the cluster's nodes and remove their data."""
    folder = _directory(directory).resolve()
    try:
        stopped = nodes.down(folder)
    except (ClusterError, OSError) as exc:
        raise click.ClickException(f"could not take down the cluster in {folder}: {exc}") from None
    _say(f"stopped {len(stopped)} nodes, removed {folder}" if stopped
         else f"no node was running in {folder}")


@cluster.command()
@dir_option
def status(directory: Path | None) -> None:
    """Say which nodes run; exit status 1 unless the whole cluster is up."""
    folder = _directory(directory).resolve()
    found = nodes.read(folder)
    if found is None:
        click.echo(f"no cluster in {folder}; start one with: tracker cluster up --dir {folder}")
        raise SystemExit(1)
    pids = found.pids()
    for each in found.nodes:
        pid = pids[each.name]
        state = f"running (pid {pid})" if pid else "stopped"
        click.echo(f"{each.name:<12} {each.dsn}  {state}")
    if not all(pids.values()):
        raise SystemExit(1)
    try:
        workers = asyncio.run(nodes.registered_workers(found))
    except (OSError, asyncpg.PostgresError) as exc:
        raise click.ClickException(f"the coordinator does not answer ({exc})") from None
    active = sum(1 for _, _, is_active in workers if is_active)
    click.echo(f"workers registered with the coordinator: {len(workers)}, active: {active}")
    click.echo(f"TRACKER_DATABASE_URL={found.dsn}")


@cluster.command()
@click.option("--rebuild", is_flag=True, help="Build again even if a cached build exists.")
def build(rebuild: bool) -> None:
    """Build Citus (if not cached) and install it into the embedded PostgreSQL."""
    try:
        version = install.prepare(rebuild=rebuild, progress=_say)
        found = citus_build.cached(find_source())
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    _say(f"Citus {version} is installed (cached build: {found.tree if found else 'none'})")
    missing = citus_build.missing_libraries()
    if missing:
        _say("built without columnar compression by lz4/zstd; for it: "
             f"apt-get install -y {' '.join(missing)}, then tracker cluster build --rebuild")
