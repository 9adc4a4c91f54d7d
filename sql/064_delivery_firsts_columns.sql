-- 064_delivery_firsts_columns: a delivery's first open, click and conversion are
-- columns of deliveries, not rows of report_delivery_firsts (issue 17).
--
-- report_delivery_firsts cost ~76 bytes per recorded open or click after a realistic
-- read of a real send (loadtests/bytes_per_event.py: a row of its own, ~135 bytes with
-- its key, for each delivery read). As columns the five times cost nothing on a
-- delivery never read (its NULLs fit the null bitmap's existing bytes) and 8 bytes
-- each when set; the updates that set them change no indexed column, and the pages
-- freed by VACUUM after the outcomes' updates take the new versions (measured on that
-- send: deliveries and their indexes grew 5.3 bytes per open or click, against 76).
-- The user figures read them from the delivery rows they scan anyway: no join.
--
-- A delivery row exists before any event of it: tokens come only from minting
-- (POST /v1/messages stores the delivery first, sql/059) and conversions attribute
-- to stored deliveries. An event whose delivery is not stored has no firsts to keep
-- (no report counts a delivery that is not stored).
--
-- One declaration folds events into the firsts: tracker_fold_firsts, given the
-- events' times (microseconds since the Unix epoch, as journaled), delivery ids, kinds
-- and flags. The shipper calls it for every landed batch; the rebuild and this
-- migration's backfill call it month by month over the event log.
--
-- Locking: every writer of delivery rows takes the deliveries' counters lock (7302040,
-- sql/040, tracker.store.deliveries.DELIVERY_COUNTERS_LOCK) before its row locks, so
-- the shipper setting firsts and the outcome API changing statuses never wait on each
-- other's rows while holding it. tracker_fold_firsts takes it only when some first
-- would change (firsts only ever move earlier, so a batch that changes none unlocked
-- changes none locked either).
--
-- The campaign list's counters (sql/055) are kept by the triggers on deliveries alone:
-- a change of firsts is an UPDATE of deliveries like any other.

ALTER TABLE deliveries
    ADD COLUMN first_open        timestamptz,   -- any open, machine opens included
    ADD COLUMN first_human_open  timestamptz,
    ADD COLUMN first_click       timestamptz,   -- any click, bots included
    ADD COLUMN first_human_click timestamptz,
    ADD COLUMN first_conversion  timestamptz;

CREATE FUNCTION tracker_fold_firsts(ts bigint[], ids bigint[], kinds smallint[],
                                    flags smallint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d_ bigint[];
    o_ timestamptz[];
    ho_ timestamptz[];
    c_ timestamptz[];
    hc_ timestamptz[];
    v_ timestamptz[];
BEGIN
    -- per delivery of the batch its first of each; human: not HEAD, verdict human or
    -- proxied open (tracker.store.rollups.HUMAN_SQL)
    SELECT array_agg(b.id ORDER BY b.id), array_agg(b.o ORDER BY b.id),
           array_agg(b.ho ORDER BY b.id), array_agg(b.c ORDER BY b.id),
           array_agg(b.hc ORDER BY b.id), array_agg(b.v ORDER BY b.id)
    INTO d_, o_, ho_, c_, hc_, v_
    FROM (SELECT e.id,
                 tracker_time(min(e.t) FILTER (WHERE e.k = 1)) AS o,
                 tracker_time(min(e.t) FILTER (WHERE e.k = 1 AND (e.f & 1) = 0
                                                     AND ((e.f >> 1) & 7) IN (0, 2))) AS ho,
                 tracker_time(min(e.t) FILTER (WHERE e.k = 2)) AS c,
                 tracker_time(min(e.t) FILTER (WHERE e.k = 2 AND (e.f & 1) = 0
                                                     AND ((e.f >> 1) & 7) IN (0, 2))) AS hc,
                 tracker_time(min(e.t) FILTER (WHERE e.k = 5)) AS v
          FROM unnest(ts, ids, kinds, flags) AS e (t, id, k, f)
          WHERE e.k IN (1, 2, 5)
          GROUP BY e.id) b;
    IF d_ IS NULL OR NOT EXISTS (
        SELECT 1 FROM unnest(d_, o_, ho_, c_, hc_, v_) AS b (id, o, ho, c, hc, v)
        JOIN deliveries d ON d.delivery_id = b.id
        WHERE (d.first_open, d.first_human_open, d.first_click, d.first_human_click,
               d.first_conversion) IS DISTINCT FROM
              (least(d.first_open, b.o), least(d.first_human_open, b.ho),
               least(d.first_click, b.c), least(d.first_human_click, b.hc),
               least(d.first_conversion, b.v))) THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7302040);
    UPDATE deliveries d SET
        first_open = least(d.first_open, b.o),
        first_human_open = least(d.first_human_open, b.ho),
        first_click = least(d.first_click, b.c),
        first_human_click = least(d.first_human_click, b.hc),
        first_conversion = least(d.first_conversion, b.v)
    FROM unnest(d_, o_, ho_, c_, hc_, v_) AS b (id, o, ho, c, hc, v)
    WHERE d.delivery_id = b.id
      AND (d.first_open, d.first_human_open, d.first_click, d.first_human_click,
           d.first_conversion) IS DISTINCT FROM
          (least(d.first_open, b.o), least(d.first_human_open, b.ho),
           least(d.first_click, b.c), least(d.first_human_click, b.hc),
           least(d.first_conversion, b.v));
END $$;

-- The campaign list's repeats read the firsts from deliveries.
CREATE OR REPLACE FUNCTION tracker_list_repeats(campaigns integer[], users text[]) RETURNS void
LANGUAGE sql SET enable_seqscan = off AS $$
    DELETE FROM report_campaign_repeats r
    USING (SELECT DISTINCT * FROM unnest(campaigns, users)) p (campaign, user_id)
    WHERE r.campaign = p.campaign AND r.user_id = p.user_id;
    INSERT INTO report_campaign_repeats
    SELECT s.delivery_id, s.campaign, s.user_id, s.sent_at, s.first_human_open, s.first_open,
           s.first_human_click, s.first_click, s.first_conversion
    FROM (SELECT d.campaign, d.delivery_id, d.user_id, d.sent_at, d.first_human_open,
                 d.first_open, d.first_human_click, d.first_click, d.first_conversion,
                 count(*) OVER (PARTITION BY d.campaign, d.user_id) AS k
          FROM (SELECT DISTINCT * FROM unnest(campaigns, users)) p (campaign, user_id)
          JOIN deliveries d ON d.user_id = p.user_id AND d.campaign = p.campaign
          WHERE d.status = 1 AND NOT d.is_test AND d.sent_at IS NOT NULL) s
    WHERE s.k > 1
    ORDER BY s.delivery_id;
$$;

-- One trigger function for deliveries, firsts included: an update that changes only
-- firsts moves the delivery's figure cells (its figure 0 cancels out) and the firsts
-- copied into its repeat row; one that changes what is counted re-reads the pair's
-- repeats.
CREATE OR REPLACE FUNCTION tracker_list_deliveries_delta() RETURNS trigger LANGUAGE plpgsql
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
        SELECT array_agg(ROW(n.campaign, n.sent_at, true, n.first_human_open, n.first_open,
                             n.first_human_click, n.first_click, n.first_conversion,
                             1)::tracker_list_change),
               array_agg(n.campaign), array_agg(n.user_id)
        INTO changes, campaigns, users
        FROM new_rows n
        WHERE n.status = 1 AND NOT n.is_test AND n.sent_at IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(o.campaign, o.sent_at, true, o.first_human_open, o.first_open,
                             o.first_human_click, o.first_click, o.first_conversion,
                             -1)::tracker_list_change),
               array_agg(o.campaign), array_agg(o.user_id)
        INTO changes, campaigns, users
        FROM old_rows o
        WHERE o.status = 1 AND NOT o.is_test AND o.sent_at IS NOT NULL;
    ELSE
        SELECT array_agg(ROW(c.campaign, c.sent_at, true, c.first_human_open, c.first_open,
                             c.first_human_click, c.first_click, c.first_conversion,
                             c.sign)::tracker_list_change)
        INTO changes
        -- only rows whose counted columns changed (an error code alone changes nothing)
        FROM ((SELECT delivery_id, campaign, user_id, sent_at, status, is_test,
                      first_human_open, first_open, first_human_click, first_click,
                      first_conversion, -1 AS sign
               FROM old_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test,
                      first_human_open, first_open, first_human_click, first_click,
                      first_conversion, -1
               FROM new_rows)
              UNION ALL
              (SELECT delivery_id, campaign, user_id, sent_at, status, is_test,
                      first_human_open, first_open, first_human_click, first_click,
                      first_conversion, 1
               FROM new_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test,
                      first_human_open, first_open, first_human_click, first_click,
                      first_conversion, 1
               FROM old_rows)) c
        WHERE c.status = 1 AND NOT c.is_test AND c.sent_at IS NOT NULL;
        -- the pairs whose counted deliveries changed, firsts aside
        SELECT array_agg(c.campaign), array_agg(c.user_id)
        INTO campaigns, users
        FROM ((SELECT delivery_id, campaign, user_id, sent_at, status, is_test FROM old_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test FROM new_rows)
              UNION ALL
              (SELECT delivery_id, campaign, user_id, sent_at, status, is_test FROM new_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, user_id, sent_at, status, is_test FROM old_rows)) c
        WHERE c.status = 1 AND NOT c.is_test AND c.sent_at IS NOT NULL;
        -- firsts changed alone: the repeat rows' copies follow
        UPDATE report_campaign_repeats r
        SET first_human_open = n.first_human_open, first_open = n.first_open,
            first_human_click = n.first_human_click, first_click = n.first_click,
            first_conversion = n.first_conversion
        FROM new_rows n
        WHERE r.delivery_id = n.delivery_id
          AND (r.first_human_open, r.first_open, r.first_human_click, r.first_click,
               r.first_conversion) IS DISTINCT FROM
              (n.first_human_open, n.first_open, n.first_human_click, n.first_click,
               n.first_conversion);
    END IF;
    IF changes IS NOT NULL THEN
        PERFORM tracker_list_cells(changes);
    END IF;
    IF campaigns IS NOT NULL THEN
        PERFORM tracker_list_repeats(campaigns, users);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER report_delivery_firsts_list_insert ON report_delivery_firsts;
DROP TRIGGER report_delivery_firsts_list_update ON report_delivery_firsts;
DROP TRIGGER report_delivery_firsts_list_delete ON report_delivery_firsts;
DROP TRIGGER report_delivery_firsts_list_truncate ON report_delivery_firsts;
DROP FUNCTION tracker_list_firsts_delta();
DROP TABLE report_delivery_firsts;

-- Every delivery's firsts folded again from the whole event log by the shipper's own
-- fold, a month of events at a time: the migration's backfill and
-- tracker.store.rollups.rebuild. The list's and the outcome counters' update triggers
-- are off meanwhile (the outcome counters ignore firsts; the list's counters are the
-- caller's: the backfill gives the dropped table's firsts, which they were counted
-- from, and the rebuild counts them again after).
CREATE FUNCTION tracker_refold_firsts() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz;
    next_month timestamptz;
    last_month timestamptz;
BEGIN
    ALTER TABLE deliveries DISABLE TRIGGER deliveries_list_update;
    ALTER TABLE deliveries DISABLE TRIGGER deliveries_outcome_update;
    UPDATE deliveries SET first_open = NULL, first_human_open = NULL, first_click = NULL,
                          first_human_click = NULL, first_conversion = NULL
    WHERE (first_open, first_human_open, first_click, first_human_click,
           first_conversion) IS DISTINCT FROM (NULL, NULL, NULL, NULL, NULL);
    SELECT date_trunc('month', min(ts), 'UTC'), date_trunc('month', max(ts), 'UTC')
    INTO m, last_month FROM events WHERE kind IN (1, 2, 5);
    WHILE m <= last_month LOOP
        next_month := (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
        PERFORM tracker_fold_firsts(array_agg(tracker_us(e.ts)), array_agg(e.delivery_id),
                                    array_agg(e.kind), array_agg(e.flags))
        FROM events e
        WHERE e.kind IN (1, 2, 5) AND e.ts >= m AND e.ts < next_month;
        m := next_month;
    END LOOP;
    ALTER TABLE deliveries ENABLE TRIGGER deliveries_list_update;
    ALTER TABLE deliveries ENABLE TRIGGER deliveries_outcome_update;
END $$;

SELECT tracker_refold_firsts();
