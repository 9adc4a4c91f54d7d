-- 055_campaign_list_cells: the campaign list's people figures for periods of any length.
--
-- The list (/reports, issue 6) shows for every campaign its delivered people and the
-- people who opened, clicked or converted, by F4: deliveries sent inside the period
-- with their event inside it too. Reading every delivery of the period took 1.8 s for
-- a year of the bench data (a million deliveries). These two tables answer it from
-- counters instead, kept exactly in step by statement triggers on deliveries and on
-- report_delivery_firsts (so every writer of either keeps them, in its transaction):
--
-- report_delivery_cells: counted deliveries (status delivered, not a test, sent_at
--   known) per campaign, UTC hour of sending, figure and UTC hour of the figure's
--   first event. figure 0 is the delivery itself (event_hour = sent_hour); 1..5 are
--   first_human_open, first_open, first_human_click, first_click, first_conversion.
--   A delivery sent in [a, b) whose first event is not before a had an event inside
--   exactly when that first event is before b; with a and b on whole UTC hours that is
--   event_hour < b. A cell with event_hour < a (an event stamped before its send) tells
--   the reader to check raw events instead. A cell whose deliveries all moved on (a
--   first event landed earlier, an outcome changed) stays with n = 0: readers sum.
-- report_campaign_repeats: every counted delivery of a (campaign, user) pair that has
--   more than one, with its firsts. Counting deliveries counts such a user once per
--   delivery; the reader reads these few rows of the period (2% of the bench's
--   deliveries) and takes the surplus off, so the figures stay distinct people (F12).
--
-- Both triggers take one transaction-scoped advisory lock before reading the other
-- table: whichever of two concurrent writers (the shipper changing a first, the ingest
-- API changing a delivery) comes second then reads what the first one committed, so no
-- combination of the two is missed or counted twice. It is the outcome counters' lock
-- (040): one lock for everything counted from deliveries, so no two writers can take
-- two such locks in crossed order. The shipper takes it before it touches suppressions
-- (tracker.store.subscriptions), as the outcome API touches them while holding it.
-- One statement that writes both deliveries and report_delivery_firsts (a
-- data-modifying WITH) would count a first twice: each trigger sees the other's
-- table as changed already. No writer does that; keep it so.
-- The functions look rows up by key, a few or a batch's worth: they never scan a
-- table (enable_seqscan off), also when its statistics are stale after a bulk load
-- (a hundred thousand outcomes into a fresh deliveries table took minutes otherwise).
-- Citus: both tables carry campaign in their primary keys (distribute by campaign).

-- A user's deliveries of one campaign, found by one index probe per (user, campaign)
-- pair (the repeats below); it serves look-ups by user_id alone as deliveries_user did.
CREATE INDEX deliveries_user_campaign ON deliveries (user_id, campaign);
DROP INDEX deliveries_user;

CREATE TABLE report_delivery_cells (
    sent_hour  timestamptz NOT NULL,
    campaign   integer     NOT NULL,
    figure     smallint    NOT NULL,
    event_hour timestamptz NOT NULL,
    n          bigint      NOT NULL,
    PRIMARY KEY (sent_hour, campaign, figure, event_hour)
);

CREATE TABLE report_campaign_repeats (
    delivery_id       bigint      NOT NULL,
    campaign          integer     NOT NULL,
    user_id           text        NOT NULL,
    sent_at           timestamptz NOT NULL,
    -- the delivery's report_delivery_firsts, copied: the reader needs no look-up
    first_human_open  timestamptz,
    first_open        timestamptz,
    first_human_click timestamptz,
    first_click       timestamptz,
    first_conversion  timestamptz,
    PRIMARY KEY (delivery_id, campaign)
);
CREATE INDEX report_campaign_repeats_sent ON report_campaign_repeats (sent_at);
CREATE INDEX report_campaign_repeats_pair ON report_campaign_repeats (campaign, user_id);

-- One delivery's contribution to the cells, added (sign 1) or taken off (-1).
-- with_delivery: also figure 0 (a change of the delivery, not only of its firsts).
CREATE TYPE tracker_list_change AS (
    campaign          integer,
    sent_at           timestamptz,
    with_delivery     boolean,
    first_human_open  timestamptz,
    first_open        timestamptz,
    first_human_click timestamptz,
    first_click       timestamptz,
    first_conversion  timestamptz,
    sign              integer
);

CREATE FUNCTION tracker_list_cells(changes tracker_list_change[]) RETURNS void
LANGUAGE sql SET enable_seqscan = off AS $$
    INSERT INTO report_delivery_cells AS r (sent_hour, campaign, figure, event_hour, n)
    SELECT date_trunc('hour', c.sent_at, 'UTC'), c.campaign, x.figure,
           date_trunc('hour', x.t, 'UTC'), sum(c.sign)
    FROM unnest(changes) c
    CROSS JOIN LATERAL (VALUES (0::smallint, CASE WHEN c.with_delivery THEN c.sent_at END),
                               (1::smallint, c.first_human_open), (2::smallint, c.first_open),
                               (3::smallint, c.first_human_click), (4::smallint, c.first_click),
                               (5::smallint, c.first_conversion)) x (figure, t)
    WHERE x.t IS NOT NULL
    GROUP BY 1, 2, 3, 4
    HAVING sum(c.sign) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (sent_hour, campaign, figure, event_hour) DO UPDATE SET n = r.n + EXCLUDED.n;
$$;

-- The (campaign, user) pairs of changed deliveries: their repeat rows read again.
CREATE FUNCTION tracker_list_repeats(campaigns integer[], users text[]) RETURNS void
LANGUAGE sql SET enable_seqscan = off AS $$
    DELETE FROM report_campaign_repeats r
    USING (SELECT DISTINCT * FROM unnest(campaigns, users)) p (campaign, user_id)
    WHERE r.campaign = p.campaign AND r.user_id = p.user_id;
    INSERT INTO report_campaign_repeats
    SELECT s.delivery_id, s.campaign, s.user_id, s.sent_at, f.first_human_open, f.first_open,
           f.first_human_click, f.first_click, f.first_conversion
    FROM (SELECT d.campaign, d.delivery_id, d.user_id, d.sent_at,
                 count(*) OVER (PARTITION BY d.campaign, d.user_id) AS k
          FROM (SELECT DISTINCT * FROM unnest(campaigns, users)) p (campaign, user_id)
          JOIN deliveries d ON d.user_id = p.user_id AND d.campaign = p.campaign
          WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL) s
    LEFT JOIN report_delivery_firsts f ON f.delivery_id = s.delivery_id
    WHERE s.k > 1
    ORDER BY s.delivery_id;
$$;

CREATE FUNCTION tracker_list_deliveries_delta() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    changes tracker_list_change[];
    campaigns integer[];
    users text[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM report_delivery_cells;
        DELETE FROM report_campaign_repeats;
        RETURN NULL;
    END IF;
    -- a COPY of prepared deliveries (status 0) counts nothing: no lock, no work (each
    -- transition table only in the branch of the event that has it)
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status = 1) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status = 1)
           AND NOT EXISTS (SELECT 1 FROM old_rows WHERE status = 1) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(7302040);
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(n.campaign, n.sent_at, true, f.first_human_open, f.first_open,
                             f.first_human_click, f.first_click, f.first_conversion,
                             1)::tracker_list_change),
               array_agg(n.campaign), array_agg(n.user_id)
        INTO changes, campaigns, users
        FROM new_rows n LEFT JOIN report_delivery_firsts f ON f.delivery_id = n.delivery_id
        WHERE n.status = 1 AND NOT n.is_test AND n.sent_at IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(o.campaign, o.sent_at, true, f.first_human_open, f.first_open,
                             f.first_human_click, f.first_click, f.first_conversion,
                             -1)::tracker_list_change),
               array_agg(o.campaign), array_agg(o.user_id)
        INTO changes, campaigns, users
        FROM old_rows o LEFT JOIN report_delivery_firsts f ON f.delivery_id = o.delivery_id
        WHERE o.status = 1 AND NOT o.is_test AND o.sent_at IS NOT NULL;
    ELSE
        SELECT array_agg(ROW(c.campaign, c.sent_at, true, f.first_human_open, f.first_open,
                             f.first_human_click, f.first_click, f.first_conversion,
                             c.sign)::tracker_list_change),
               array_agg(c.campaign), array_agg(c.user_id)
        INTO changes, campaigns, users
        -- only rows whose counted columns changed (an error code alone changes nothing)
        FROM ((SELECT delivery_id, campaign, user_id, sent_at, status, is_test, -1 AS sign
               FROM old_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test, -1
               FROM new_rows)
              UNION ALL
              (SELECT delivery_id, campaign, user_id, sent_at, status, is_test, 1
               FROM new_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test, 1
               FROM old_rows)) c
        LEFT JOIN report_delivery_firsts f ON f.delivery_id = c.delivery_id
        WHERE c.status = 1 AND NOT c.is_test AND c.sent_at IS NOT NULL;
    END IF;
    IF changes IS NOT NULL THEN
        PERFORM tracker_list_cells(changes);
        PERFORM tracker_list_repeats(campaigns, users);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_list_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_deliveries_delta();
CREATE TRIGGER deliveries_list_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_deliveries_delta();
CREATE TRIGGER deliveries_list_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_deliveries_delta();
CREATE TRIGGER deliveries_list_truncate AFTER TRUNCATE ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_deliveries_delta();

CREATE FUNCTION tracker_list_firsts_delta() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    changes tracker_list_change[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM report_delivery_cells WHERE figure > 0;
        UPDATE report_campaign_repeats
        SET first_human_open = NULL, first_open = NULL, first_human_click = NULL,
            first_click = NULL, first_conversion = NULL;
        RETURN NULL;
    END IF;
    -- the shipper's upsert fires this for every batch, also when no first changed:
    -- then no lock and no work (each transition table only in its event's branch)
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7302040);
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(d.campaign, d.sent_at, false, n.first_human_open, n.first_open,
                             n.first_human_click, n.first_click, n.first_conversion,
                             1)::tracker_list_change)
        INTO changes
        FROM new_rows n JOIN deliveries d ON d.delivery_id = n.delivery_id
        WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(d.campaign, d.sent_at, false, o.first_human_open, o.first_open,
                             o.first_human_click, o.first_click, o.first_conversion,
                             -1)::tracker_list_change)
        INTO changes
        FROM old_rows o JOIN deliveries d ON d.delivery_id = o.delivery_id
        WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL;
    ELSE
        SELECT array_agg(ROW(d.campaign, d.sent_at, false, c.first_human_open, c.first_open,
                             c.first_human_click, c.first_click, c.first_conversion,
                             c.sign)::tracker_list_change)
        INTO changes
        FROM (SELECT o.*, -1 AS sign FROM old_rows o
              UNION ALL
              SELECT n.*, 1 FROM new_rows n) c
        JOIN deliveries d ON d.delivery_id = c.delivery_id
        WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL;
    END IF;
    IF changes IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM tracker_list_cells(changes);
    IF TG_OP = 'DELETE' THEN
        UPDATE report_campaign_repeats r
        SET first_human_open = NULL, first_open = NULL, first_human_click = NULL,
            first_click = NULL, first_conversion = NULL
        FROM old_rows o
        WHERE r.delivery_id = o.delivery_id;
    ELSE
        UPDATE report_campaign_repeats r
        SET first_human_open = n.first_human_open, first_open = n.first_open,
            first_human_click = n.first_human_click, first_click = n.first_click,
            first_conversion = n.first_conversion
        FROM new_rows n
        WHERE r.delivery_id = n.delivery_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER report_delivery_firsts_list_insert AFTER INSERT ON report_delivery_firsts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_firsts_delta();
CREATE TRIGGER report_delivery_firsts_list_update AFTER UPDATE ON report_delivery_firsts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_firsts_delta();
CREATE TRIGGER report_delivery_firsts_list_delete AFTER DELETE ON report_delivery_firsts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_firsts_delta();
CREATE TRIGGER report_delivery_firsts_list_truncate AFTER TRUNCATE ON report_delivery_firsts
    FOR EACH STATEMENT EXECUTE FUNCTION tracker_list_firsts_delta();

-- Backfill from what is already stored (empty on a new install); the same SQL as
-- tracker.store.rollups.rebuild.
INSERT INTO report_delivery_cells (sent_hour, campaign, figure, event_hour, n)
SELECT date_trunc('hour', d.sent_at, 'UTC'), d.campaign, x.figure,
       date_trunc('hour', x.t, 'UTC'), count(*)
FROM deliveries d
LEFT JOIN report_delivery_firsts f ON f.delivery_id = d.delivery_id
CROSS JOIN LATERAL (VALUES (0::smallint, d.sent_at), (1::smallint, f.first_human_open),
                           (2::smallint, f.first_open), (3::smallint, f.first_human_click),
                           (4::smallint, f.first_click), (5::smallint, f.first_conversion))
    x (figure, t)
WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL AND x.t IS NOT NULL
GROUP BY 1, 2, 3, 4;

INSERT INTO report_campaign_repeats
SELECT s.delivery_id, s.campaign, s.user_id, s.sent_at, f.first_human_open, f.first_open,
       f.first_human_click, f.first_click, f.first_conversion
FROM (SELECT d.campaign, d.delivery_id, d.user_id, d.sent_at,
             count(*) OVER (PARTITION BY d.campaign, d.user_id) AS k
      FROM deliveries d
      WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL) s
LEFT JOIN report_delivery_firsts f ON f.delivery_id = s.delivery_id
WHERE s.k > 1;
