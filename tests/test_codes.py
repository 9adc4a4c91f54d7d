"""The codes stored in events and deliveries are defined once in Python and once in SQL
(sql/066); these tests hold the two to each other, every member both ways, and check
that SQL naming a code by its function plans exactly as SQL spelling the number, so
the partial indexes written with numbers still serve it."""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

import asyncpg
import pytest

from tests.support import query, run, scalar
from tracker.classify.verdict import PEOPLE, Verdict, human_sql, is_human
from tracker.events import Flag, Kind
from tracker.store.deliveries import Status
from tracker.store.link_rollups import Span
from tracker.tokens import Channel

#: each family's Python home; its SQL functions are tracker_<family>_<member>()
FAMILIES: dict[str, type[IntEnum]] = {
    "kind": Kind, "channel": Channel, "status": Status, "verdict": Verdict, "span": Span}


def test_every_code_is_the_same_in_python_and_sql(database: str) -> None:
    rows = query(database, """
        SELECT p.proname, pg_get_function_result(p.oid) AS result, p.provolatile::text,
               p.proparallel::text, l.lanname
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.proname ~ '^tracker_(kind|channel|status|verdict|span)_' AND p.pronargs = 0""")
    in_sql = {r["proname"]: scalar(database, f"SELECT {r['proname']}()") for r in rows}
    in_python = {f"tracker_{family}_{member.name.lower()}": int(member)
                 for family, codes in FAMILIES.items() for member in codes}
    assert in_sql == in_python
    for r in rows:  # inlinable constants: PostgreSQL folds them while planning
        assert (r["result"], r["provolatile"], r["proparallel"], r["lanname"]) == (
            "integer", "i", "s", "sql"), r["proname"]


def test_human_is_the_same_in_python_and_sql(database: str) -> None:
    """tracker_is_human (sql/060, restated by name in 066), the Python predicate and the
    SQL Python writes into its queries agree on every smallint value of flags."""
    rows = query(database, f"""
        SELECT f AS flags, tracker_is_human(f) AS function, {human_sql('f')} AS written,
               tracker_is_head(f) AS head, tracker_verdict(f) AS verdict
        FROM (SELECT g::smallint AS f FROM generate_series(-32768, 32767) g) s""")
    assert len(rows) == 65536
    for r in rows:
        expected = is_human(r["flags"])
        assert r["function"] is expected and r["written"] is expected, r["flags"]
        assert r["head"] is bool(r["flags"] & Flag.HEAD), r["flags"]
        assert r["verdict"] == (r["flags"] & Flag.VERDICT_MASK) >> Flag.VERDICT_SHIFT
    # what the predicate means, in the names it is made of
    for verdict in Verdict:
        assert is_human(verdict << Flag.VERDICT_SHIFT) is (verdict in PEOPLE)
        assert not is_human((verdict << Flag.VERDICT_SHIFT) | Flag.HEAD)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _plan(dsn: str, sql: str) -> str:
    """The plan of ``sql`` as text, sequential scans off (the tables are empty)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) {sql}"))
    finally:
        await conn.close()


@pytest.mark.parametrize(("by_number", "by_name", "index"), [
    ("SELECT ts FROM events WHERE delivery_id = 7 AND kind = 2",
     "SELECT ts FROM events WHERE delivery_id = 7 AND kind = tracker_kind_click()",
     "delivery_id_url_id_ts"),
    ("SELECT 1 FROM deliveries d WHERE d.campaign = 3"
     " AND d.channel = 1 AND d.has_html AND NOT d.is_test",
     "SELECT 1 FROM deliveries d WHERE d.campaign = 3"
     " AND d.channel = tracker_channel_email() AND d.has_html AND NOT d.is_test",
     "deliveries_html_email"),
    ("SELECT 1 FROM deliveries WHERE sent_at >= now() AND status IN (2, 3, 4)",
     "SELECT 1 FROM deliveries WHERE sent_at >= now() AND status IN"
     " (tracker_status_bounced(), tracker_status_soft_bounced(), tracker_status_failed())",
     "deliveries_failed_sent"),
])
def test_a_code_by_name_plans_as_its_number(database: str, by_number: str, by_name: str,
                                             index: str) -> None:
    """Partial indexes are written with numbers (WHERE kind = 2); a query naming the
    code gets the same plan, through the same index."""
    numbered, named = run(_plan(database, by_number)), run(_plan(database, by_name))
    assert named == numbered
    assert index in named, named


def test_the_view_by_name_is_the_view_of_057(database: str) -> None:
    """message_event_log restated with names (sql/066) has the rows and the plan of
    sql/057's, which spelled the numbers: every kind, verdict and HEAD bit, every
    status and channel, with and without a delivery row."""
    text = (Path(__file__).parent.parent / "sql" / "057_outcome_event_times.sql").read_text()
    start = text.index("CREATE OR REPLACE VIEW message_event_log AS")
    old = text[start:text.index(";", start) + 1].replace(
        "VIEW message_event_log", "VIEW event_log_057", 1)
    run(_execute(database, old))
    rows = query(database, """
        WITH c AS (INSERT INTO campaigns (campaign_id, name, channel)
                   VALUES ('mail', 'mail', 'email'), ('app', 'app', 'push') RETURNING id),
             t AS (INSERT INTO schedule_tasks (campaign, schedule_task_id)
                   SELECT id, 'run' FROM c RETURNING id, campaign),
             d AS (INSERT INTO deliveries (delivery_id, campaign, schedule_task, channel,
                                           user_id, status, sent_at, is_test)
                   SELECT g, t.campaign, t.id, g % 4 + 1, 'u' || g, g % 7, now(), g % 9 = 0
                   FROM t, generate_series(1, 60) g WHERE g % 2 = t.campaign % 2
                   RETURNING delivery_id)
        INSERT INTO events (ts, delivery_id, campaign, schedule_task, kind, flags)
        SELECT now(), g % 80, t.campaign, t.id, g % 5 + 1, g % 32
        FROM t, generate_series(1, 640) g
        RETURNING 1""")
    assert len(rows) == 1280
    for a, b in (("event_log_057", "message_event_log"), ("message_event_log", "event_log_057")):
        assert scalar(database, f"SELECT count(*) FROM (SELECT * FROM {a}"
                                f" EXCEPT ALL SELECT * FROM {b}) x") == 0
    assert scalar(database, "SELECT count(*) FROM message_event_log") > 640
    old_plan = run(_plan(database, "SELECT * FROM event_log_057 WHERE \"timestamp\" >= now()"))
    new_plan = run(_plan(database, "SELECT * FROM message_event_log WHERE \"timestamp\" >= now()"))
    assert new_plan == old_plan


#: functions that are the SQL home of a code, a predicate on flags or a lock's number
HOMES = re.compile(r"^tracker_(kind|channel|status|verdict|span)_\w+$|^tracker_(is_head|verdict"
                   r"|lock_delivery_counters|lock_link_counters)$")
#: a code spelled as a number: a comparison of a code column with a literal, a flag bit
#: taken by hand, an advisory lock by number
BY_NUMBER = re.compile(r"\b(kind|status|channel|k)\s*(=|<>|!=|IN\s*\(|BETWEEN)\s*\d"
                       r"|\bTHEN\s+[1-5]\b|\b(flags|f)\s*(&|>>)\s*\d|advisory_xact_lock\(\d",
                       re.IGNORECASE)


def test_no_live_function_or_view_spells_a_code_as_a_number(database: str) -> None:
    """Every function and view the tracker defines names its codes (sql/066), its
    predicates and its locks (sql/067, sql/068); only their homes hold the numbers.
    Migrations keep history; this reads what is live in a migrated database."""
    bodies = {r["name"]: r["body"] for r in query(database, """
        SELECT p.proname AS name, p.prosrc AS body FROM pg_proc p
        WHERE p.proname LIKE 'tracker\\_%'
        UNION ALL
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'""")}
    assert "tracker_fold_events" in bodies and "message_event_log" in bodies
    spelled = {name: BY_NUMBER.search(body).group(0) for name, body in bodies.items()
               if not HOMES.match(name) and BY_NUMBER.search(body)}
    assert spelled == {}
