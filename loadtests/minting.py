"""Deliveries and signed tracking paths for load tests, minted as the send side would.

Shared by ``bench.py`` and ``locustfile.py``. Load tests need thousands of distinct
valid tokens whose deliveries exist in the target database (the reports join
events to deliveries), so this records them in one COPY and signs the tokens with
the target's keys. Links carry no database read, so minting is the only moment
the load generator touches PostgreSQL.

Also a script, because locust monkey-patches sockets with gevent and asyncpg should
not run under that: ``python loadtests/minting.py --deliveries N --campaign C``
prints the minted paths as JSON (DSN and keys from the environment, as the
service reads them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker.store import campaigns, deliveries  # noqa: E402
from tracker.tokens import Channel, Purpose, TokenCodec, TokenData  # noqa: E402

#: Links per message; click popularity over them is skewed (see ``link_url``).
LINKS_PER_MESSAGE = 5


def link_url(position: int) -> str:
    """The target of link ``position``: never fetched (clients do not follow
    redirects), but a real, safe https URL as the send side would sign."""
    return f"https://shop.example/item/{position}?utm_source=tracker-load"


@dataclass
class Minted:
    """Tracking paths (no host) for one campaign's deliveries, index-aligned."""

    campaign: int
    schedule_task: int
    delivery_ids: list[int] = field(default_factory=list)
    opens: list[str] = field(default_factory=list)
    clicks: list[list[str]] = field(default_factory=list)  # per delivery, per link position
    unsubscribes: list[str] = field(default_factory=list)


async def mint(dsn: str, secret_keys: list[str], campaign_id: str, count: int,
               *, task_id: str = "load", links: int = LINKS_PER_MESSAGE,
               unsubscribes: bool = True) -> Minted:
    """Record ``count`` e-mail deliveries with HTML and sign their paths: an open,
    ``links`` clicks and (with ``unsubscribes``) an unsubscribe link each."""
    codec = TokenCodec(secret_keys)
    conn = await asyncpg.connect(dsn)
    try:
        campaign = await campaigns.ensure_campaign(conn, campaign_id, "email")
        task = await campaigns.ensure_schedule_task(conn, campaign.id, task_id)
        ids = await campaigns.DeliveryIds().mint_many(conn, count)
        await deliveries.record_prepared(conn, [
            deliveries.PreparedDelivery(d, campaign.id, task, Channel.EMAIL,
                                        f"{campaign_id}-user-{i}", True, False)
            for i, d in enumerate(ids)
        ])
    finally:
        await conn.close()
    minted = Minted(campaign.id, task, ids)
    for delivery_id in ids:
        base = TokenData(delivery_id, campaign.id, task, Channel.EMAIL)
        minted.opens.append("/o/" + codec.mint(Purpose.OPEN, base))
        if unsubscribes:
            minted.unsubscribes.append("/u/" + codec.mint(Purpose.UNSUBSCRIBE, base))
        minted.clicks.append([
            "/c/" + codec.mint(Purpose.CLICK, base._replace(link_position=p, url=link_url(p)))
            for p in range(links)
        ])
    return minted


def keys_from_env() -> list[str]:
    raw = os.environ.get("TRACKER_SECRET_KEYS", "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise SystemExit("set TRACKER_SECRET_KEYS to the target service's signing keys "
                         "(comma-separated, newest first)")
    return keys


def dsn_from_env() -> str:
    dsn = os.environ.get("TRACKER_DATABASE_URL")
    if not dsn:
        raise SystemExit("set TRACKER_DATABASE_URL to the target service's database DSN")
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--campaign", default="load")
    args = parser.parse_args()
    if args.deliveries < 1:
        raise SystemExit("--deliveries must be at least 1")
    minted = asyncio.run(mint(dsn_from_env(), keys_from_env(), args.campaign, args.deliveries))
    json.dump(asdict(minted), sys.stdout)


if __name__ == "__main__":
    main()
