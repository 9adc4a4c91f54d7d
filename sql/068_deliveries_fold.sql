-- 068_deliveries_fold: the derived state kept from deliveries is declared once, its
-- triggers and its rebuild built on that one declaration, and every live function
-- names its codes and locks (issue 17, goal 4).
--
-- Until now each table kept from deliveries had its aggregation written three times:
-- in its trigger (sql/040, sql/055, sql/064), in its migration's backfill and in
-- tracker.store.rollups.rebuild; and the live functions spelled codes as numbers
-- (status 1, kind 2, the human predicate bit by bit) and the locks as 7302040. Here:
--
--   * report_outcome_hours: tracker_fold_outcomes(changes) adds deliveries (sign 1)
--     or takes them off (-1); the trigger gives it the changed rows, the rebuild
--     (tracker_refold_outcomes) every delivery. A delivery counts when
--     tracker_outcome_counted(status, is_test, sent_at): an outcome, not a test send,
--     and an instant (sent, or suppressed before sending), placed at its hour of
--     coalesce(sent_at, created_at).
--   * report_delivery_cells and report_campaign_repeats: tracker_list_cells and
--     tracker_list_repeats (sql/055, sql/064), the same way; the rebuild is
--     tracker_refold_list. A delivery counts when tracker_list_counted(status,
--     is_test, sent_at): delivered, not a test send, its send time known.
--   * an update of deliveries that changes no counted column (a first event landing:
--     most updates) no longer recounts the outcome counters to a net zero: only rows
--     whose counted columns differ are compared, as the list's trigger already did.
--
-- The functions of sql/064 and sql/065 that landing calls (tracker_fold_firsts,
-- tracker_refold_firsts, tracker_fold_links, tracker_refold_links) are restated with
-- codes by name, unchanged otherwise. Every name folds into its number while
-- planning (sql/066), so the plans and the partial indexes they use are unchanged.
--
-- Lock order, the one of sql/067: every writer of delivery rows takes the deliveries'
-- counters lock (tracker_lock_delivery_counters) before it touches counters kept from
-- deliveries; the link counters' lock (tracker_lock_link_counters) comes last.

CREATE FUNCTION tracker_outcome_counted(status smallint, is_test boolean,
                                        sent_at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN status BETWEEN tracker_status_delivered() AND tracker_status_suppressed()
   AND NOT is_test AND (sent_at IS NOT NULL OR status = tracker_status_suppressed());

CREATE FUNCTION tracker_list_counted(status smallint, is_test boolean, sent_at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN status = tracker_status_delivered() AND NOT is_test AND sent_at IS NOT NULL;

-- One delivery added to the outcome counters (sign 1) or taken off (-1); "at" is
-- coalesce(sent_at, created_at).
CREATE TYPE tracker_outcome_change AS (
    campaign      integer,
    at            timestamptz,
    schedule_task integer,
    channel       smallint,
    status        smallint,
    error_code    text,
    error_message text,
    sign          integer
);

CREATE FUNCTION tracker_fold_outcomes(changes tracker_outcome_change[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO report_outcome_hours AS o (campaign, hour, schedule_task, channel, status,
                                           error_code, error_message, n)
    SELECT c.campaign, date_trunc('hour', c.at, 'UTC'), c.schedule_task, c.channel, c.status,
           c.error_code, c.error_message, sum(c.sign)
    FROM unnest(changes) c
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(c.sign) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (campaign, hour, schedule_task, channel, status, error_code, error_message)
    DO UPDATE SET n = o.n + EXCLUDED.n;
$$;

CREATE OR REPLACE FUNCTION tracker_outcome_delta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes tracker_outcome_change[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- DELETE, not TRUNCATE: a TRUNCATE naming both tables is still running
        DELETE FROM report_outcome_hours;
        RETURN NULL;
    END IF;
    -- (each transition table only in the branch of the event that has it)
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(n.campaign, coalesce(n.sent_at, n.created_at), n.schedule_task,
                             n.channel, n.status, n.error_code, n.error_message,
                             1)::tracker_outcome_change)
        INTO changes
        FROM new_rows n WHERE tracker_outcome_counted(n.status, n.is_test, n.sent_at);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(o.campaign, coalesce(o.sent_at, o.created_at), o.schedule_task,
                             o.channel, o.status, o.error_code, o.error_message,
                             -1)::tracker_outcome_change)
        INTO changes
        FROM old_rows o WHERE tracker_outcome_counted(o.status, o.is_test, o.sent_at);
    ELSE
        -- only rows whose counted columns changed (a first event alone changes nothing)
        SELECT array_agg(ROW(c.campaign, coalesce(c.sent_at, c.created_at), c.schedule_task,
                             c.channel, c.status, c.error_code, c.error_message,
                             c.sign)::tracker_outcome_change)
        INTO changes
        FROM ((SELECT delivery_id, campaign, sent_at, created_at, schedule_task, channel,
                      status, error_code, error_message, is_test, -1 AS sign
               FROM old_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, sent_at, created_at, schedule_task, channel,
                      status, error_code, error_message, is_test, -1
               FROM new_rows)
              UNION ALL
              (SELECT delivery_id, campaign, sent_at, created_at, schedule_task, channel,
                      status, error_code, error_message, is_test, 1
               FROM new_rows
               EXCEPT ALL
               SELECT delivery_id, campaign, sent_at, created_at, schedule_task, channel,
                      status, error_code, error_message, is_test, 1
               FROM old_rows)) c
        WHERE tracker_outcome_counted(c.status, c.is_test, c.sent_at);
    END IF;
    -- a COPY of prepared deliveries counts nothing: no lock, no work
    IF changes IS NOT NULL THEN
        PERFORM tracker_lock_delivery_counters();
        PERFORM tracker_fold_outcomes(changes);
    END IF;
    RETURN NULL;
END $$;

-- The outcome counters counted again: the fold given every delivery, 100,000 at a time.
CREATE FUNCTION tracker_refold_outcomes() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    low bigint;
    high bigint;
BEGIN
    TRUNCATE report_outcome_hours;
    SELECT min(delivery_id), max(delivery_id) INTO low, high FROM deliveries;
    WHILE low <= high LOOP
        PERFORM tracker_fold_outcomes(array_agg(ROW(
                    d.campaign, coalesce(d.sent_at, d.created_at), d.schedule_task, d.channel,
                    d.status, d.error_code, d.error_message, 1)::tracker_outcome_change))
        FROM deliveries d
        WHERE d.delivery_id >= low AND d.delivery_id < low + 100000
          AND tracker_outcome_counted(d.status, d.is_test, d.sent_at);
        low := low + 100000;
    END LOOP;
END $$;

-- The campaign list's repeats, by name (sql/064's otherwise).
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
          WHERE tracker_list_counted(d.status, d.is_test, d.sent_at)) s
    WHERE s.k > 1
    ORDER BY s.delivery_id;
$$;

-- The list's trigger (sql/064's), by name.
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
    -- a COPY of prepared deliveries counts nothing: no lock, no work (each transition
    -- table only in the branch of the event that has it)
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status = tracker_status_delivered()) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status = tracker_status_delivered())
           AND NOT EXISTS (SELECT 1 FROM old_rows WHERE status = tracker_status_delivered())
        THEN
            RETURN NULL;
        END IF;
    ELSE
        IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status = tracker_status_delivered()) THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM tracker_lock_delivery_counters();
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(n.campaign, n.sent_at, true, n.first_human_open, n.first_open,
                             n.first_human_click, n.first_click, n.first_conversion,
                             1)::tracker_list_change),
               array_agg(n.campaign), array_agg(n.user_id)
        INTO changes, campaigns, users
        FROM new_rows n
        WHERE tracker_list_counted(n.status, n.is_test, n.sent_at);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(o.campaign, o.sent_at, true, o.first_human_open, o.first_open,
                             o.first_human_click, o.first_click, o.first_conversion,
                             -1)::tracker_list_change),
               array_agg(o.campaign), array_agg(o.user_id)
        INTO changes, campaigns, users
        FROM old_rows o
        WHERE tracker_list_counted(o.status, o.is_test, o.sent_at);
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
        WHERE tracker_list_counted(c.status, c.is_test, c.sent_at);
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
        WHERE tracker_list_counted(c.status, c.is_test, c.sent_at);
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

-- The list's counters counted again: the cells and the repeats given every delivery,
-- 100,000 at a time (a pair reaching into two slices is read whole twice: the same rows).
CREATE FUNCTION tracker_refold_list() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    low bigint;
    high bigint;
BEGIN
    TRUNCATE report_delivery_cells, report_campaign_repeats;
    SELECT min(delivery_id), max(delivery_id) INTO low, high FROM deliveries;
    WHILE low <= high LOOP
        PERFORM tracker_list_cells(array_agg(ROW(
                    d.campaign, d.sent_at, true, d.first_human_open, d.first_open,
                    d.first_human_click, d.first_click, d.first_conversion,
                    1)::tracker_list_change))
        FROM deliveries d
        WHERE d.delivery_id >= low AND d.delivery_id < low + 100000
          AND tracker_list_counted(d.status, d.is_test, d.sent_at);
        -- the pairs with more than one counted delivery
        PERFORM tracker_list_repeats(array_agg(p.campaign), array_agg(p.user_id))
        FROM (SELECT DISTINCT d.campaign, d.user_id
              FROM deliveries d
              WHERE d.delivery_id >= low AND d.delivery_id < low + 100000
                AND tracker_list_counted(d.status, d.is_test, d.sent_at)
                AND EXISTS (SELECT 1 FROM deliveries o
                            WHERE o.user_id = d.user_id AND o.campaign = d.campaign
                              AND o.delivery_id <> d.delivery_id
                              AND tracker_list_counted(o.status, o.is_test, o.sent_at))) p
        HAVING count(*) > 0;
        low := low + 100000;
    END LOOP;
END $$;

-- The firsts' fold (sql/064's), by name.
CREATE OR REPLACE FUNCTION tracker_fold_firsts(ts bigint[], ids bigint[], kinds smallint[],
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
    -- per delivery of the batch its first of each
    SELECT array_agg(b.id ORDER BY b.id), array_agg(b.o ORDER BY b.id),
           array_agg(b.ho ORDER BY b.id), array_agg(b.c ORDER BY b.id),
           array_agg(b.hc ORDER BY b.id), array_agg(b.v ORDER BY b.id)
    INTO d_, o_, ho_, c_, hc_, v_
    FROM (SELECT e.id,
                 tracker_time(min(e.t) FILTER (WHERE e.k = tracker_kind_open())) AS o,
                 tracker_time(min(e.t) FILTER (WHERE e.k = tracker_kind_open()
                                                     AND tracker_is_human(e.f))) AS ho,
                 tracker_time(min(e.t) FILTER (WHERE e.k = tracker_kind_click())) AS c,
                 tracker_time(min(e.t) FILTER (WHERE e.k = tracker_kind_click()
                                                     AND tracker_is_human(e.f))) AS hc,
                 tracker_time(min(e.t) FILTER (WHERE e.k = tracker_kind_conversion())) AS v
          FROM unnest(ts, ids, kinds, flags) AS e (t, id, k, f)
          WHERE e.k IN (tracker_kind_open(), tracker_kind_click(), tracker_kind_conversion())
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
    PERFORM tracker_lock_delivery_counters();
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

-- Every delivery's firsts folded again (sql/064's), by name: the list's and the outcome
-- counters' update triggers are off meanwhile (the outcome counters ignore firsts; the
-- list's counters are counted again by the caller after).
CREATE OR REPLACE FUNCTION tracker_refold_firsts() RETURNS void LANGUAGE plpgsql AS $$
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
    INTO m, last_month FROM events
    WHERE kind IN (tracker_kind_open(), tracker_kind_click(), tracker_kind_conversion());
    WHILE m <= last_month LOOP
        next_month := (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
        PERFORM tracker_fold_firsts(array_agg(tracker_us(e.ts)), array_agg(e.delivery_id),
                                    array_agg(e.kind), array_agg(e.flags))
        FROM events e
        WHERE e.kind IN (tracker_kind_open(), tracker_kind_click(), tracker_kind_conversion())
          AND e.ts >= m AND e.ts < next_month;
        m := next_month;
    END LOOP;
    ALTER TABLE deliveries ENABLE TRIGGER deliveries_list_update;
    ALTER TABLE deliveries ENABLE TRIGGER deliveries_outcome_update;
END $$;

-- The link counters' fold (sql/065's), by name.
CREATE OR REPLACE FUNCTION tracker_fold_links(b_delivery bigint[], b_url bigint[],
                                              b_us bigint[], b_flags smallint[],
                                              b_campaign integer[])
RETURNS void LANGUAGE sql AS $$
WITH batch AS (
    SELECT b.campaign, tracker_channel_of(d.channel, c.channel) AS channel,
           b.url_id, d.user_id, date_trunc('hour', tracker_time(b.us), 'UTC') AS hour,
           tracker_is_human(b.flags) AS human, count(*) AS n
    FROM unnest(b_delivery, b_url, b_us, b_flags, b_campaign)
         AS b (delivery_id, url_id, us, flags, campaign)
    LEFT JOIN deliveries d ON d.delivery_id = b.delivery_id
    LEFT JOIN campaigns c ON c.id = b.campaign
    WHERE NOT coalesce(d.is_test, false)
    GROUP BY 1, 2, 3, 4, 5, 6
), pairs AS (
    SELECT DISTINCT url_id, user_id FROM batch WHERE user_id IS NOT NULL
), every AS (
    -- every click of those pairs, the batch's own included (they are already landed),
    -- and (apart) the batch's; each user's deliveries, then each delivery's clicks of
    -- the link, one index probe per delivery and partition (OFFSET 0, sql/063)
    SELECT e.campaign, d.channel::int AS channel, p.url_id, p.user_id,
           date_trunc('hour', e.ts, 'UTC') AS hour, tracker_is_human(e.flags) AS human,
           count(*) AS n, 0 AS batch
    FROM pairs p
    JOIN deliveries d ON d.user_id = p.user_id AND NOT d.is_test
    CROSS JOIN LATERAL (
        SELECT c.campaign, c.ts, c.flags FROM events c
        WHERE c.delivery_id = d.delivery_id AND c.kind = tracker_kind_click()
          AND c.url_id = p.url_id
        OFFSET 0) e
    GROUP BY 1, 2, 3, 4, 5, 6
    UNION ALL
    SELECT campaign, channel, url_id, user_id, hour, human, 0, n
    FROM batch WHERE user_id IS NOT NULL
), hours AS (
    SELECT s.scope, x.url_id, x.user_id, v.bots, x.hour, sum(x.n) AS n, sum(x.batch) AS batch
    FROM every x
    CROSS JOIN LATERAL (VALUES (x.campaign), (0), (-x.channel)) s (scope)
    CROSS JOIN LATERAL (VALUES (true), (false)) v (bots)
    WHERE v.bots OR x.human
    GROUP BY 1, 2, 3, 4, 5
), marks AS (
    SELECT scope, url_id, user_id, bots, hour, 1 AS sign FROM hours
    UNION ALL
    SELECT scope, url_id, user_id, bots, hour, -1 FROM hours WHERE n > batch
), chained AS (
    SELECT m.*, lag(hour) OVER w AS previous, row_number() OVER w AS i
    FROM marks m
    WINDOW w AS (PARTITION BY scope, url_id, user_id, bots, sign ORDER BY hour)
), counted AS (
    SELECT scope, url_id, hour, sum(clicks) AS clicks, sum(human_clicks) AS human_clicks,
           sum(firsts) AS firsts, sum(human_firsts) AS human_firsts
    FROM (SELECT scope, url_id, hour, 0 AS clicks, 0 AS human_clicks,
                 CASE WHEN bots THEN sign ELSE 0 END AS firsts,
                 CASE WHEN bots THEN 0 ELSE sign END AS human_firsts
          FROM chained WHERE i = 1
          UNION ALL
          SELECT s.scope, b.url_id, b.hour, b.n, CASE WHEN b.human THEN b.n ELSE 0 END, 0, 0
          FROM batch b CROSS JOIN LATERAL (VALUES (b.campaign), (0), (-b.channel)) s (scope)
         ) k
    GROUP BY 1, 2, 3
    HAVING (sum(clicks), sum(firsts), sum(human_firsts)) <> (0, 0, 0)
), counts AS (
    INSERT INTO report_link_counts AS c (scope, span, at, url_id, clicks, human_clicks,
                                         firsts, human_firsts)
    SELECT k.scope, s.span,
           CASE s.span WHEN 1 THEN k.hour WHEN 24 THEN date_trunc('day', k.hour, 'UTC')
                       ELSE date_trunc('month', k.hour, 'UTC') END,
           k.url_id, sum(k.clicks), sum(k.human_clicks), sum(k.firsts), sum(k.human_firsts)
    FROM counted k
    CROSS JOIN (VALUES (1::smallint), (24::smallint), (744::smallint)) s (span)
    GROUP BY 1, 2, 3, 4
    HAVING (sum(k.clicks), sum(k.firsts), sum(k.human_firsts)) <> (0, 0, 0)
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (scope, span, at, url_id) DO UPDATE SET
        clicks = c.clicks + EXCLUDED.clicks,
        human_clicks = c.human_clicks + EXCLUDED.human_clicks,
        firsts = c.firsts + EXCLUDED.firsts,
        human_firsts = c.human_firsts + EXCLUDED.human_firsts
)
INSERT INTO report_link_returns AS r (scope, url_id, bots, "to", "from", n)
SELECT scope, url_id, bots, hour, previous, sum(sign)
FROM chained WHERE previous IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
HAVING sum(sign) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (scope, url_id, bots, "to", "from") DO UPDATE SET n = r.n + EXCLUDED.n
$$;

CREATE OR REPLACE FUNCTION tracker_refold_links() RETURNS void LANGUAGE sql AS $$
    TRUNCATE report_link_counts, report_link_returns;
    SELECT tracker_fold_links(array_agg(e.delivery_id), array_agg(e.url_id),
                              array_agg(tracker_us(e.ts)), array_agg(e.flags),
                              array_agg(e.campaign))
    FROM events e WHERE e.kind = tracker_kind_click();
$$;
