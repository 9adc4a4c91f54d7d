"""The SQL views of F13: columns as documented, and plans that prune by time and
use the schedule-task index (F3)."""

from __future__ import annotations

import json

from tests.support import query

SETUP = """
INSERT INTO campaigns (campaign_id) VALUES ('c1'), ('c2');
INSERT INTO schedule_tasks (campaign, schedule_task_id)
    SELECT c, 't' || t FROM generate_series(1, 2) c, generate_series(1, 20) t;
SELECT tracker_ensure_month_partition(m::date)
    FROM generate_series('2026-01-01'::date, '2026-06-01'::date, interval '1 month') m;
INSERT INTO events (ts, delivery_id, campaign, schedule_task, kind)
    SELECT '2026-01-01'::timestamptz + (i * interval '9 minutes'), i, 1 + i % 2, 1 + i % 40,
           1 + i % 2
    FROM generate_series(1, 25000) i;
ANALYZE;
"""


def plan(dsn: str, sql: str) -> dict:
    rows = query(dsn, "EXPLAIN (FORMAT JSON) " + sql)
    return json.loads(rows[0][0])[0]["Plan"]


def nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def test_event_log_prunes_by_time_and_uses_the_task_index(database: str) -> None:
    for statement in SETUP.strip().split(";\n"):
        query(database, statement)
    sql = ("SELECT * FROM message_event_log WHERE \"timestamp\" >= '2026-03-01T00:00Z'"
           " AND \"timestamp\" < '2026-03-02T00:00Z' AND schedule_task_id = 't7'")
    tree = list(nodes(plan(database, sql)))
    scanned = {n["Relation Name"] for n in tree if n.get("Relation Name", "").startswith(
        "events")}
    assert scanned == {"events_y2026m03"}, scanned  # five other months pruned
    # the partition's schedule-task index finds the task's events (alone, or ANDed
    # with the BRIN on ts), and the time bound is applied in the same scan
    index_scans = [n for n in tree if n.get("Index Name", "").startswith("events_y2026m03")]
    task_scans = [n for n in index_scans
                  if n["Index Name"] == "events_y2026m03_schedule_task_idx"]
    assert len(task_scans) == 1, [n["Index Name"] for n in index_scans]
    assert "schedule_task" in task_scans[0]["Index Cond"]
    time_conditions = " ".join(n.get(key, "") for n in tree
                               for key in ("Index Cond", "Recheck Cond", "Filter"))
    assert "ts >=" in time_conditions and "ts <" in time_conditions, time_conditions
    rows = query(database, sql)
    expected = query(database, "SELECT count(*) FROM events e JOIN schedule_tasks st"
                     " ON st.id = e.schedule_task WHERE st.schedule_task_id = 't7'"
                     " AND e.ts >= '2026-03-01T00:00Z' AND e.ts < '2026-03-02T00:00Z'")[0][0]
    assert len(rows) == expected > 0


def test_event_log_has_the_documented_columns(database: str) -> None:
    columns = [r[0] for r in query(
        database, "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'message_event_log' ORDER BY ordinal_position")]
    for name in ("event_name", "timestamp", "campaign_id", "schedule_task_id", "delivery_id",
                 "user_id", "channel", "link_url", "error_code", "error_message",
                 "client_class", "verdict", "is_human"):
        assert name in columns
    settings = [r[0] for r in query(
        database, "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'campaign_settings'")]
    assert {"campaign_id", "name", "channel", "status", "created_at", "updated_at"} <= set(
        settings)
