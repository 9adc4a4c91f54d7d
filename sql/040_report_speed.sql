-- 040_report_speed: rollups so no report figure scans deliveries or raw clicks for
-- whole hours (issue 5 speed targets). Like 020's, each is written in the same
-- transaction as the rows it summarises, so it can never drift; reports read them
-- for whole UTC hours and raw rows only for the partial hours at a period's edges.

-- Outcome figures (F6, F9, F14): deliveries per (campaign, UTC hour, schedule task,
-- channel, status, error code, error message).
--   hour    date_trunc('hour', t, 'UTC') where t is sent_at, or created_at for a
--           suppressed delivery that was never sent (the instant reports place it at)
--   status  1 delivered, 2 bounced, 3 soft bounced, 4 failed, 5 suppressed; prepared
--           deliveries (0), test sends and deliveries without an instant are not counted
--   n       number of deliveries (a row may reach 0 when deliveries change status)
-- Kept by statement-level triggers on deliveries (below), so every writer (outcome
-- ingest, SES, the sender's COPY, hand-written SQL) keeps it exact.
CREATE TABLE report_outcome_hours (
    campaign      integer     NOT NULL,
    hour          timestamptz NOT NULL,
    schedule_task integer     NOT NULL,
    channel       smallint    NOT NULL,
    status        smallint    NOT NULL,
    error_code    text,
    error_message text,
    n             bigint      NOT NULL,
    UNIQUE NULLS NOT DISTINCT (campaign, hour, schedule_task, channel, status, error_code,
                               error_message)
);
CREATE INDEX report_outcome_hours_hour ON report_outcome_hours (hour);

-- Click ranking counts (F5): clicks per (campaign, UTC hour, schedule task, channel,
-- link URL, human). channel and human as in report_event_hours.
CREATE TABLE report_click_hours (
    campaign      integer     NOT NULL,
    hour          timestamptz NOT NULL,
    schedule_task integer     NOT NULL,
    channel       smallint    NOT NULL,
    url_id        bigint      NOT NULL,
    human         boolean     NOT NULL,
    n             bigint      NOT NULL,
    PRIMARY KEY (campaign, hour, schedule_task, channel, url_id, human)
);
CREATE INDEX report_click_hours_hour ON report_click_hours (hour);

-- Click ranking users (F5, F12): per (campaign, link URL, user, schedule task, channel)
-- the first and last click, and the first and last human click. A user clicked the link
-- inside [S, E) when the first or last click is inside; never when both are on one
-- side; only when first < S and last >= E must raw clicks decide.
-- Clicks whose delivery row is unknown have no user and are not here.
CREATE TABLE report_click_users (
    campaign      integer     NOT NULL,
    url_id        bigint      NOT NULL,
    user_id       text        NOT NULL,
    schedule_task integer     NOT NULL,
    channel       smallint    NOT NULL,
    first_click   timestamptz NOT NULL,
    last_click    timestamptz NOT NULL,
    first_human   timestamptz,
    last_human    timestamptz,
    PRIMARY KEY (campaign, url_id, user_id, schedule_task, channel)
);

-- Client and device breakdown (F22): opens and clicks per (campaign, UTC hour,
-- schedule task, channel, user agent, kind, human). The user agent's client, OS and
-- device class are joined from user_agents when reporting, so a user agent described
-- after its events landed is reported with its description.
CREATE TABLE report_agent_hours (
    campaign      integer     NOT NULL,
    hour          timestamptz NOT NULL,
    schedule_task integer     NOT NULL,
    channel       smallint    NOT NULL,
    ua_id         bigint      NOT NULL,
    kind          smallint    NOT NULL,
    human         boolean     NOT NULL,
    n             bigint      NOT NULL,
    PRIMARY KEY (campaign, hour, schedule_task, channel, ua_id, kind, human)
);
CREATE INDEX report_agent_hours_hour ON report_agent_hours (hour);

-- The outcome rollup's triggers. One function per event because transition tables
-- need one trigger per event. Writers take one transaction-scoped advisory lock before
-- touching counters, so two transactions never hold counter rows in crossed order
-- (no deadlock); sends of prepared deliveries (status 0) touch nothing and take nothing.
-- One trigger function for every statement on deliveries (transition tables need one
-- trigger per event): old rows that counted are subtracted, new ones added. Writers take
-- one transaction-scoped advisory lock before touching counters, so two transactions
-- never hold counter rows in crossed order (no deadlock); a COPY of prepared deliveries
-- (status 0) touches no counter and takes no lock.
CREATE FUNCTION tracker_outcome_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- DELETE, not TRUNCATE: a TRUNCATE naming both tables is still running
        DELETE FROM report_outcome_hours;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status BETWEEN 1 AND 5) THEN
            RETURN NULL;
        END IF;
        PERFORM pg_advisory_xact_lock(7302040);
        INSERT INTO report_outcome_hours AS o (campaign, hour, schedule_task, channel, status,
                                               error_code, error_message, n)
        SELECT campaign, date_trunc('hour', coalesce(sent_at, created_at), 'UTC'),
               schedule_task, channel, status, error_code, error_message, count(*)
        FROM new_rows
        WHERE status BETWEEN 1 AND 5 AND NOT is_test AND (sent_at IS NOT NULL OR status = 5)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (campaign, hour, schedule_task, channel, status, error_code, error_message)
        DO UPDATE SET n = o.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status BETWEEN 1 AND 5) THEN
            RETURN NULL;
        END IF;
        PERFORM pg_advisory_xact_lock(7302040);
        INSERT INTO report_outcome_hours AS o (campaign, hour, schedule_task, channel, status,
                                               error_code, error_message, n)
        SELECT campaign, date_trunc('hour', coalesce(sent_at, created_at), 'UTC'),
               schedule_task, channel, status, error_code, error_message, -count(*)
        FROM old_rows
        WHERE status BETWEEN 1 AND 5 AND NOT is_test AND (sent_at IS NOT NULL OR status = 5)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (campaign, hour, schedule_task, channel, status, error_code, error_message)
        DO UPDATE SET n = o.n + EXCLUDED.n;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status BETWEEN 1 AND 5)
           AND NOT EXISTS (SELECT 1 FROM new_rows WHERE status BETWEEN 1 AND 5) THEN
            RETURN NULL;
        END IF;
        PERFORM pg_advisory_xact_lock(7302040);
        INSERT INTO report_outcome_hours AS o (campaign, hour, schedule_task, channel, status,
                                               error_code, error_message, n)
        SELECT campaign, date_trunc('hour', t, 'UTC'), schedule_task, channel, status,
               error_code, error_message, sum(n)
        FROM (SELECT campaign, coalesce(sent_at, created_at) AS t, schedule_task, channel,
                     status, error_code, error_message, is_test, sent_at, -1 AS n
              FROM old_rows
              UNION ALL
              SELECT campaign, coalesce(sent_at, created_at), schedule_task, channel,
                     status, error_code, error_message, is_test, sent_at, 1
              FROM new_rows) c
        WHERE status BETWEEN 1 AND 5 AND NOT is_test AND (sent_at IS NOT NULL OR status = 5)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        HAVING sum(n) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (campaign, hour, schedule_task, channel, status, error_code, error_message)
        DO UPDATE SET n = o.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_outcome_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tracker_outcome_delta();
CREATE TRIGGER deliveries_outcome_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_outcome_delta();
CREATE TRIGGER deliveries_outcome_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tracker_outcome_delta();
CREATE TRIGGER deliveries_outcome_truncate AFTER TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_outcome_delta();

-- Backfill from what is already stored (empty on a new install).
INSERT INTO report_outcome_hours (campaign, hour, schedule_task, channel, status, error_code,
                                  error_message, n)
SELECT campaign, date_trunc('hour', coalesce(sent_at, created_at), 'UTC'), schedule_task,
       channel, status, error_code, error_message, count(*)
FROM deliveries
WHERE status BETWEEN 1 AND 5 AND NOT is_test AND (sent_at IS NOT NULL OR status = 5)
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO report_click_hours (campaign, hour, schedule_task, channel, url_id, human, n)
SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task,
       coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END),
       e.url_id, (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2), count(*)
FROM events e
LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
LEFT JOIN campaigns c ON c.id = e.campaign
WHERE e.kind = 2 AND NOT coalesce(d.is_test, false)
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO report_click_users
SELECT e.campaign, e.url_id, d.user_id, e.schedule_task, d.channel, min(e.ts), max(e.ts),
       min(e.ts) FILTER (WHERE (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2)),
       max(e.ts) FILTER (WHERE (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2))
FROM events e
JOIN deliveries d ON d.delivery_id = e.delivery_id
WHERE e.kind = 2 AND NOT d.is_test
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO report_agent_hours (campaign, hour, schedule_task, channel, ua_id, kind, human, n)
SELECT e.campaign, date_trunc('hour', e.ts, 'UTC'), e.schedule_task,
       coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END),
       e.ua_id, e.kind, (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2), count(*)
FROM events e
LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
LEFT JOIN campaigns c ON c.id = e.campaign
WHERE e.kind IN (1, 2) AND NOT coalesce(d.is_test, false)
GROUP BY 1, 2, 3, 4, 5, 6, 7;

-- Plan the first reports with real row counts, not empty-table guesses.
ANALYZE report_outcome_hours, report_click_hours, report_click_users, report_agent_hours;
