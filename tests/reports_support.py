"""Writing report test data exactly as the service's writers would.

Deliveries and outcomes go straight into ``deliveries`` with SQL (as the outcome
ingest does); events go through tracker.store.events.land, the shipper's own
code path, so the rollups are maintained exactly as in production.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.support import run
from tracker.events import dictionary_id
from tracker.store.events import land

_journal = itertools.count(1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

HUMAN, MACHINE_OPEN, PROXIED_OPEN, SCANNER, OTHER_BOT = 0, 1, 2, 3, 4
CHANNEL = {"email": 1, "push": 2, "line": 3}


def flags(verdict: int = HUMAN, head: bool = False) -> int:
    return (verdict << 1) | int(head)


def at(text: str) -> datetime:
    """'2026-05-01 10:00' (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Data:
    """A handle on one database for writing campaigns, deliveries and events."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.campaign_ids: dict[str, int] = {}
        self.task_ids: dict[tuple[str, str], int] = {}
        self.delivery_info: dict[int, tuple[int, int]] = {}

    async def _conn(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    def campaign(self, campaign_id: str, channel: str = "email",
                 settings: dict | None = None) -> int:
        async def go() -> int:
            conn = await self._conn()
            try:
                return await conn.fetchval(
                    "INSERT INTO campaigns (campaign_id, name, channel, settings)"
                    " VALUES ($1, $1, $2, $3::jsonb) RETURNING id",
                    campaign_id, channel, json.dumps(settings or {}))
            finally:
                await conn.close()
        self.campaign_ids[campaign_id] = run(go())
        return self.campaign_ids[campaign_id]

    def task(self, campaign_id: str, task_id: str) -> int:
        key = (campaign_id, task_id)
        if key not in self.task_ids:
            async def go() -> int:
                conn = await self._conn()
                try:
                    return await conn.fetchval(
                        "INSERT INTO schedule_tasks (campaign, schedule_task_id)"
                        " VALUES ($1, $2) RETURNING id", self.campaign_ids[campaign_id], task_id)
                finally:
                    await conn.close()
            self.task_ids[key] = run(go())
        return self.task_ids[key]

    def deliveries(self, rows: list[dict]) -> list[int]:
        """Each row: campaign, task, user, status (0..5), sent_at, and optionally
        channel, has_html, is_test, error_code, error_message."""
        tasks = [self.task(r["campaign"], r.get("task", "t1")) for r in rows]

        async def go() -> list[int]:
            conn = await self._conn()
            try:
                first = await conn.fetchval(
                    "SELECT coalesce(max(delivery_id), 0) + 1 FROM deliveries")
                records = []
                for i, r in enumerate(rows):
                    campaign = self.campaign_ids[r["campaign"]]
                    task = tasks[i]
                    did = first + i
                    self.delivery_info[did] = (campaign, task)
                    records.append((
                        did, campaign, task, r.get("sent_at"), CHANNEL[r.get("channel", "email")],
                        r.get("status", 1), r.get("has_html", True), r.get("is_test", False),
                        r["user"], r.get("error_code"), r.get("error_message"),
                        r.get("created_at") or r.get("sent_at") or datetime.now(UTC)))
                await conn.copy_records_to_table(
                    "deliveries", records=records,
                    columns=("delivery_id", "campaign", "schedule_task", "sent_at", "channel",
                             "status", "has_html", "is_test", "user_id", "error_code",
                             "error_message", "created_at"))
                return [rec[0] for rec in records]
            finally:
                await conn.close()
        return run(go())

    def delivery(self, **row) -> int:
        return self.deliveries([row])[0]

    def events(self, rows: list[tuple]) -> None:
        """Each row: (delivery_id, ts, kind[, flags[, url]]), landed as the shipper does."""
        async def go() -> None:
            conn = await self._conn()
            try:
                events, urls = [], {}
                for row in rows:
                    did, ts, kind = row[:3]
                    fl = row[3] if len(row) > 3 else 0
                    url = row[4] if len(row) > 4 else None
                    url_id = 0
                    if url is not None:
                        url_id = dictionary_id(url.encode())
                        urls[url_id] = url.encode()
                    campaign, task = self.delivery_info[did]
                    ts_us = (ts - EPOCH) // timedelta(microseconds=1)
                    events.append((ts_us, did, url_id, 0, campaign, task, kind, fl, 0))
                await land(conn, journal=f"reports-test-{next(_journal)}", segment=1, offset=1,
                           events=events, urls=urls, user_agents={})
            finally:
                await conn.close()
        run(go())

    def event(self, delivery_id: int, ts: datetime, kind: int, fl: int = 0,
              url: str | None = None) -> None:
        self.events([(delivery_id, ts, kind, fl, url)])
