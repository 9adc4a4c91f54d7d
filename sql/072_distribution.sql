-- 072_distribution: where each table lives when the database is a Citus cluster's
-- (issue 20). On plain PostgreSQL this migration only adds the functions below, which
-- do nothing there.
--
-- The same SQL files serve both: every migration creates ordinary tables and
-- functions, and this one hands them to Citus through tracker_distribute,
-- tracker_reference and tracker_adapt_for_citus, which act when the citus extension is
-- installed in this database and return otherwise. A later migration that creates a
-- table calls tracker_distribute or tracker_reference after its CREATE TABLE (a table
-- named by neither stays an ordinary table on the coordinator), and one that creates
-- or restates a SQL function writing tables calls tracker_adapt_for_citus() last.
-- tracker.migrate logs (INFO) where the tables are after a run on Citus.
--
-- Distributed by campaign, co-located (a campaign's rows on one shard group, so one
-- campaign's figures are read on one worker and the project's on all in parallel):
--   events (its month partitions follow it), report_event_hours, report_agent_hours;
--   report_link_counts and report_link_returns by their scope, which is the campaign
--   id for a campaign's counters (0 the project's, -channel a channel's: those few
--   scopes fall on one shard each).
-- Reference tables (a copy on every node, so any shard joins them locally):
--   campaigns, schedule_tasks, urls, user_agents.
-- On the coordinator, for the reasons given (the coordinator joins them with
-- distributed tables itself):
--   deliveries: its statement triggers keep report_outcome_hours,
--     report_delivery_cells and report_campaign_repeats, and Citus refuses to
--     distribute a table with triggers; its key is delivery_id alone, which the
--     outcome API's ON CONFLICT names, and a distributed table's unique keys must hold
--     its distribution column. Its foreign keys to campaigns and schedule_tasks make
--     Citus manage it as a local table of the coordinator (its triggers run there).
--   report_outcome_hours, report_delivery_cells, report_campaign_repeats: written by
--     those triggers, in the transaction that changes deliveries;
--   outcome_history, suppressions, conversions: keyed by delivery or user and read
--     and written with deliveries;
--   journal_positions: written in the transaction that lands the journal's events;
--     on the coordinator the position and the events commit together (Citus's
--     two-phase commit lets the coordinator's commit decide the workers'), so
--     shipping stays exactly-once;
--   report_sessions, ses_notifications, ses_subscriptions, schema_migrations.
--
-- The advisory locks of sql/067 (tracker_lock_delivery_counters,
-- tracker_lock_link_counters) are taken on the coordinator, through which every
-- tracker reads and writes: they serialise those writers as on one node. Nothing
-- relies on a lock taken on a worker.

-- Whether this database is a Citus cluster's (the extension installed here).
CREATE FUNCTION tracker_is_citus() RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');

-- On Citus, a table distributed by one column, co-located with colocate_with (a
-- distributed table), or the first of a new group when that is NULL; elsewhere nothing.
CREATE FUNCTION tracker_distribute(t regclass, by text, colocate_with regclass DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF tracker_is_citus() THEN
        -- (EXECUTE: create_distributed_table exists only where Citus does)
        EXECUTE 'SELECT create_distributed_table($1, $2, colocate_with => $3)'
        USING t, by, coalesce(colocate_with::text, 'default');
    END IF;
END $$;

-- On Citus, a table copied whole to every node; elsewhere nothing.
CREATE FUNCTION tracker_reference(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF tracker_is_citus() THEN
        EXECUTE 'SELECT create_reference_table($1)' USING t;
    END IF;
END $$;

-- On Citus, every function of LANGUAGE sql that takes arguments and returns void (the
-- folds and the counters' triggers' helpers, which write tables Citus manages; their
-- statements all write, as PL/pgSQL needs) restated in PL/pgSQL,
-- unchanged in meaning; elsewhere nothing. Two rewrites, both meaning-preserving:
--   * the language: Citus plans no statement on a table it manages that uses a SQL
--     function's parameters ("could not create distributed plan"); PL/pgSQL gives it
--     their values. A SQL function's name resolution (columns before parameters) is
--     kept by #variable_conflict use_column.
--   * "OFFSET 0", plain PostgreSQL's fence that keeps a lateral subquery from being
--     flattened (sql/063's one index probe per delivery), is dropped: Citus refuses an
--     OFFSET in a lateral subquery that reads a distributed table with a column of a
--     local table, and plans the flattened join itself.
-- Plain PostgreSQL keeps the SQL functions as written. A later migration that creates
-- or restates such a function calls tracker_adapt_for_citus() at its end.
CREATE FUNCTION tracker_adapt_for_citus() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    fn record;
BEGIN
    IF NOT tracker_is_citus() THEN
        RETURN;
    END IF;
    FOR fn IN
        SELECT p.oid, p.proname, p.prosrc FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
          AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
          AND p.prorettype = 'void'::regtype AND p.prosqlbody IS NULL AND p.pronargs > 0
        ORDER BY p.proname
    LOOP
        EXECUTE format('CREATE OR REPLACE FUNCTION public.%I(%s) RETURNS void'
                       ' LANGUAGE plpgsql AS %L', fn.proname,
                       pg_get_function_arguments(fn.oid),
                       E'#variable_conflict use_column\nBEGIN\n'
                       || regexp_replace(regexp_replace(fn.prosrc, '\mOFFSET 0\M', '', 'gi'),
                                         '[\s;]*$', '')
                       || E'\n;\nEND');
    END LOOP;
END $$;

SELECT tracker_reference('campaigns');
SELECT tracker_reference('schedule_tasks');
SELECT tracker_reference('urls');
SELECT tracker_reference('user_agents');

SELECT tracker_distribute('events', 'campaign');
SELECT tracker_distribute('report_event_hours', 'campaign', 'events');
SELECT tracker_distribute('report_agent_hours', 'campaign', 'events');
SELECT tracker_distribute('report_link_counts', 'scope', 'events');
SELECT tracker_distribute('report_link_returns', 'scope', 'events');

SELECT tracker_adapt_for_citus();
