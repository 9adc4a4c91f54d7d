-- 073_citus_settings: on Citus, two settings for every session of this database (the
-- trackers', the reports'); on plain PostgreSQL nothing.
--
-- citus.multi_shard_modify_mode = sequential: multi-shard statements run over one
--   connection per worker. The shipper lands a batch in one transaction, COPY of its
--   events first and then tracker_fold_events, which reads the events it just wrote
--   (tracker_fold_links: the batch's users' clicks of its links). In Citus's default
--   parallel mode the COPY of a batch whose campaigns fall on several shards of one
--   worker writes them over several connections, and the fold's read then fails
--   ("cannot perform query with placements that were modified over multiple
--   connections"). Cost: a multi-shard statement (a project report, a batch of many
--   campaigns) goes through a worker's shards one after another instead of over a
--   connection each; the workers still work in parallel. A narrower alternative is
--   for the landing transaction alone to SET LOCAL it before its COPY.
-- plan_cache_mode = force_custom_plan: a prepared statement (asyncpg prepares and
--   caches every statement; PL/pgSQL every statement of a function) is planned with
--   its parameters' values each time. After five executions PostgreSQL may keep a
--   generic plan instead, and Citus cannot plan the tracker's queries without the
--   values: with generic plans forced, landing fails ("could not create distributed
--   plan") and the people figures' re-ask with raw look-ups ("complex joins are only
--   supported when all distributed tables are co-located and joined on their
--   distribution columns"), both seen on the cluster. Cost: planning every time,
--   which Citus's coordinator does for a distributed query anyway.
--
-- A database setting applies to sessions started after this migration: restart the
-- trackers after it on Citus. Only the coordinator needs them (the trackers connect
-- there), so they are not propagated to the workers.
DO $$
BEGIN
    IF tracker_is_citus() THEN
        SET LOCAL citus.enable_ddl_propagation = off;
        EXECUTE format('ALTER DATABASE %I SET citus.multi_shard_modify_mode = sequential',
                       current_database());
        EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_custom_plan',
                       current_database());
    END IF;
END $$;
