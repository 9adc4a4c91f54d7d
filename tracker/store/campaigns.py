"""Campaigns and schedule tasks: the sender's string ids and our small integer ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Campaign:
    id: int
    campaign_id: str
    name: str
    channel: str
    status: str
    settings: dict[str, Any]


def _campaign(row: asyncpg.Record) -> Campaign:
    settings = row["settings"]
    if isinstance(settings, str):
        settings = json.loads(settings)
    return Campaign(row["id"], row["campaign_id"], row["name"], row["channel"], row["status"],
                    settings)


async def upsert_campaign(conn: asyncpg.Connection, campaign_id: str, *, name: str,
                          channel: str, status: str,
                          settings: dict[str, Any] | None = None) -> Campaign:
    row = await conn.fetchrow(
        "INSERT INTO campaigns (campaign_id, name, channel, status, settings)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)"
        " ON CONFLICT (campaign_id) DO UPDATE SET name = EXCLUDED.name,"
        " channel = EXCLUDED.channel, status = EXCLUDED.status,"
        " settings = campaigns.settings || EXCLUDED.settings, updated_at = now()"
        " RETURNING *",
        campaign_id, name, channel, status, json.dumps(settings or {}),
    )
    return _campaign(row)


async def get_campaign(conn: asyncpg.Connection, campaign_id: str) -> Campaign | None:
    row = await conn.fetchrow("SELECT * FROM campaigns WHERE campaign_id = $1", campaign_id)
    return _campaign(row) if row else None


async def ensure_campaign(conn: asyncpg.Connection, campaign_id: str, channel: str) -> Campaign:
    """The campaign, created with defaults when the sender never PUT it."""
    found = await get_campaign(conn, campaign_id)
    if found is not None:
        return found
    row = await conn.fetchrow(
        "INSERT INTO campaigns (campaign_id, name, channel) VALUES ($1, $1, $2)"
        " ON CONFLICT (campaign_id) DO UPDATE SET campaign_id = EXCLUDED.campaign_id"
        " RETURNING *",
        campaign_id, channel,
    )
    return _campaign(row)


async def ensure_schedule_task(conn: asyncpg.Connection, campaign: int,
                               schedule_task_id: str) -> int:
    row = await conn.fetchrow(
        "INSERT INTO schedule_tasks (campaign, schedule_task_id) VALUES ($1, $2)"
        " ON CONFLICT (campaign, schedule_task_id) DO UPDATE"
        " SET schedule_task_id = EXCLUDED.schedule_task_id RETURNING id",
        campaign, schedule_task_id,
    )
    task: int = row["id"]
    return task


class DeliveryIds:
    """Mints delivery ids from blocks of 1000 reserved with one ``nextval``.

    Ids are unique across processes and machines sharing the database, start at
    ``deliveries.MINTED_FROM`` (where no sender's outcome can create one), and stay
    small in tokens (five bytes up to a hundred billion deliveries)."""

    BLOCK = 1000

    def __init__(self) -> None:
        self._next = 0
        self._end = 0

    async def mint(self, conn: asyncpg.Connection) -> int:
        if self._next >= self._end:
            start = await conn.fetchval("SELECT nextval('delivery_id_blocks')")
            self._next, self._end = start, start + self.BLOCK
        value = self._next
        self._next += 1
        return value

    async def mint_many(self, conn: asyncpg.Connection, count: int) -> list[int]:
        return [await self.mint(conn) for _ in range(count)]


async def tracking_domains(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Each configured tracking domain (campaign setting ``tracking_domain``) with
    the ids of the campaigns using it, both in order. The campaigns table is small
    (one row a campaign), so this reads it whole."""
    rows = await conn.fetch(
        "SELECT settings->>'tracking_domain' AS domain, campaign_id FROM campaigns"
        " WHERE coalesce(settings->>'tracking_domain', '') <> ''"
        " ORDER BY 1, 2")
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["domain"], []).append(row["campaign_id"])
    return found


async def newest_campaigns(conn: asyncpg.Connection, *, limit: int) -> list[tuple[str, str]]:
    """(campaign_id, name) of up to ``limit`` campaigns, last updated first."""
    rows = await conn.fetch("SELECT campaign_id, name FROM campaigns"
                            " ORDER BY updated_at DESC, campaign_id LIMIT $1", limit)
    return [(r["campaign_id"], r["name"]) for r in rows]


async def newest_schedule_task_ids(conn: asyncpg.Connection, campaign_id: str, *,
                                   limit: int) -> list[str]:
    """The sender's ids of up to ``limit`` schedule tasks of a campaign, newest first."""
    rows = await conn.fetch(
        "SELECT t.schedule_task_id FROM schedule_tasks t JOIN campaigns c"
        " ON c.id = t.campaign WHERE c.campaign_id = $1 ORDER BY t.created_at DESC,"
        " t.schedule_task_id LIMIT $2", campaign_id, limit)
    return [r[0] for r in rows]
