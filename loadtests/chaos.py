"""Chaos run (issue 8): break the tracker or its database under load, heal, count.

    .venv/bin/python loadtests/chaos.py                 # all five, 20 s outages
    .venv/bin/python loadtests/chaos.py --outage 5 --scenarios sigkill,pg-stop

Scenarios, each with a fixed number of requests, loopback only, against the real
service (``python -m tracker serve``) and a PostgreSQL of its own (embedded, in a
temporary directory, so it can be stopped and killed):

1. ``sigkill``: SIGKILL every process of the service mid-load, three times, and
   restart it on the same data directory and database.
2. ``pg-stop``: stop PostgreSQL (fast shutdown) for ``--outage`` seconds mid-load.
3. ``pg-kill``: kill PostgreSQL (immediate shutdown: a crash) mid-load, while the
   shipper COPYs continuously.
4. ``disk-full``: a journal capped by TRACKER_JOURNAL_MAX_BYTES fills while the
   database is away; then it drains and keeps events again.
5. ``shipper-kill``: SIGKILL the shipper process alone mid-load, three times, with
   ``--workers`` serving processes; one of them starts the next shipper.

Each request carries its own delivery's token, so rows per delivery show lost
and doubled events exactly. The table: scenario, sent, acknowledged, landed,
duplicates, time to drain (from the heal to the last acknowledged event in
PostgreSQL). Exit status 1 if any acknowledged event is missing or doubled.
The same code runs in the suite with short outages (tests/test_chaos.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos_support import (  # noqa: E402
    Result,
    journal_full,
    postgres_outage,
    shipper_kills,
    sigkill_restarts,
    table,
)
from tests.support import Databases, Service  # noqa: E402
from tracker.embedded import pg_ctl_stop, start_embedded  # noqa: E402

SCENARIOS = ("sigkill", "pg-stop", "pg-kill", "disk-full", "shipper-kill")


def problems(result: Result, *, exact: bool) -> list[str]:
    """What broke the promise; empty when every acknowledged event landed once."""
    fates, landed = result.fates, result.landed
    found = []
    if fates.wrong:
        found.append(f"{len(fates.wrong)} answers other than 200/302")
    if landed.duplicates:
        found.append(f"{landed.duplicates} duplicates")
    if not exact:  # disk full: compared with the journaled count instead
        if landed.rows != result.seen.get("journaled"):
            found.append(f"rows {landed.rows} != journaled {result.seen.get('journaled')}")
        return found
    lost = fates.acked - landed.deliveries
    if lost:
        found.append(f"{len(lost)} acknowledged events lost")
    extra = landed.deliveries - fates.acked - fates.in_doubt
    if extra:
        found.append(f"{len(extra)} events landed that were never sent")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=20.0,
                        help="seconds PostgreSQL stays down (default 20)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per scenario")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2,
                        help="service workers for sigkill and shipper-kill")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown or args.outage <= 0 or args.requests < 100:
        parser.error(f"scenarios are {', '.join(SCENARIOS)}; --outage > 0; --requests >= 100")

    root = Path(tempfile.mkdtemp(prefix="tracker-chaos-"))
    root.chmod(0o755)  # initdb runs as the unprivileged pgserver user under root
    pgdata = root / "pgdata"
    rows: list[Result] = []
    failed: list[str] = []
    try:
        databases = Databases(start_embedded(pgdata, stop_at_exit=False))

        def service(name: str, **kwargs) -> Service:
            return Service(databases.fresh(), root / name, **kwargs).start()

        for name in chosen:
            started = time.monotonic()
            print(f"chaos: {name} ...", file=sys.stderr, flush=True)
            if name == "sigkill":
                svc = service(name, workers=args.workers)
                result = sigkill_restarts(svc, count=args.requests, kills=args.kills)
            elif name in ("pg-stop", "pg-kill"):
                svc = service(name)
                result = postgres_outage(svc, pgdata, outage=args.outage, count=args.requests,
                                         mode="fast" if name == "pg-stop" else "immediate")
            elif name == "shipper-kill":
                svc = service(name, workers=args.workers)
                result = shipper_kills(svc, count=args.requests, kills=args.kills)
            else:
                svc = service(name, env={"TRACKER_JOURNAL_MAX_BYTES": "64k"})
                result = journal_full(svc, pgdata, outage=args.outage, count=args.requests)
            svc.stop()
            rows.append(result)
            failed += [f"{name}: {p}" for p in problems(result, exact=name != "disk-full")]
            print(f"chaos: {name} done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    finally:
        pg_ctl_stop(pgdata)
        shutil.rmtree(root, ignore_errors=True)
    print(table([r.row for r in rows]))
    for line in failed:
        print("FAILED " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
