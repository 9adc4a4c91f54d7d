-- 067_fold_events: everything landing a batch of events changes besides the log is
-- one SQL function, tracker_fold_events, in one lock order (issue 17, goal 4).
--
-- Until now the shipper aggregated a batch in Python (report_event_hours and
-- report_agent_hours, one delivery look-up, the suppressions of (un)subscribes) and
-- called two SQL folds (firsts, links), each a round trip, with the lock order spread
-- over three Python modules; the rebuild restated the two count tables' aggregation in
-- its own SQL. Now the shipper sends the batch's columns once (the event tuples as
-- journaled, times in microseconds) and PostgreSQL does the rest, in this order:
--
--   1. (un)subscribes change the suppression list, in time order; before their rows,
--      the deliveries' counters lock (tracker_lock_delivery_counters), which the
--      outcome API holds while it writes suppressions and which step 3 takes too:
--      taken first, neither waits on the other's rows while holding it.
--   2. report_event_hours and report_agent_hours: tracker_fold_counts, one
--      declaration, which tracker_refold_counts also gives the whole log to (the
--      rebuild, month by month).
--   3. the deliveries' firsts: tracker_fold_firsts (sql/064; takes the deliveries'
--      counters lock only when a first changes).
--   4. the click ranking's counters: tracker_fold_links (sql/065) under the link
--      counters' lock (tracker_lock_link_counters), last, so that nothing else is
--      touched after it: no shipper waits for the lock while holding what another
--      needs.
--
-- A batch's counter rows are written sorted by key, so concurrent shippers lock them
-- in one order. Test sends count nowhere but in their deliveries' firsts (the user
-- figures read deliveries, which leave test sends out). An event's channel is its
-- delivery's, or its campaign's for a delivery not stored (tracker_channel_of).

-- The two advisory locks of derived state, by name (their numbers are used nowhere else
-- from now on; sql/040 and sql/064, history, spell 7302040).
-- The deliveries' counters: every writer of delivery rows (the outcome API, the fold's
-- firsts and suppressions) takes it before its row locks.
CREATE FUNCTION tracker_lock_delivery_counters() RETURNS void LANGUAGE sql
AS $$ SELECT pg_advisory_xact_lock(7302040) $$;
-- The link counters: one folder at a time, since the fold reads what others landed;
-- waited for at most 10 s (a stalled holder must not stall every shipper: past that the
-- transaction fails and its batch is shipped again).
CREATE FUNCTION tracker_lock_link_counters() RETURNS void LANGUAGE sql
AS $$ SELECT set_config('lock_timeout', '10s', true); SELECT pg_advisory_xact_lock(7302050) $$;

-- The channel an event counts under: its delivery's, else its campaign's (by name).
CREATE FUNCTION tracker_channel_of(delivery_channel smallint, campaign_channel text)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(delivery_channel::integer,
                CASE campaign_channel WHEN 'push' THEN tracker_channel_push()
                                      WHEN 'line' THEN tracker_channel_line()
                                      ELSE tracker_channel_email() END);

-- Events counted per UTC hour: report_event_hours (every kind) and report_agent_hours
-- (opens and clicks per user agent), test sends left out, each event under its
-- channel (tracker_channel_of). One statement, so the batch's deliveries are looked up
-- once; concurrent folds run the same plan, so they write the two tables in the same
-- order.
CREATE FUNCTION tracker_fold_counts(b_us bigint[], b_delivery bigint[], b_ua bigint[],
                                    b_campaign integer[], b_task integer[],
                                    b_kind smallint[], b_flags smallint[])
RETURNS void LANGUAGE sql AS $$
WITH counted AS (
    SELECT date_trunc('hour', tracker_time(b.us), 'UTC') AS hour, b.campaign, b.task,
           tracker_channel_of(d.channel, c.channel) AS channel, b.ua, b.kind,
           tracker_is_human(b.flags) AS human
    FROM unnest(b_us, b_delivery, b_ua, b_campaign, b_task, b_kind, b_flags)
         AS b (us, delivery_id, ua, campaign, task, kind, flags)
    LEFT JOIN deliveries d ON d.delivery_id = b.delivery_id
    LEFT JOIN campaigns c ON c.id = b.campaign
    WHERE NOT coalesce(d.is_test, false)
), hours AS (
    INSERT INTO report_event_hours AS h (campaign, hour, schedule_task, channel, kind,
                                         human, n)
    SELECT campaign, hour, task, channel, kind, human, count(*)
    FROM counted
    GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (campaign, hour, schedule_task, channel, kind, human)
    DO UPDATE SET n = h.n + EXCLUDED.n
)
INSERT INTO report_agent_hours AS h (campaign, hour, schedule_task, channel, ua_id, kind,
                                     human, n)
SELECT campaign, hour, task, channel, ua, kind, human, count(*)
FROM counted
WHERE kind IN (tracker_kind_open(), tracker_kind_click())
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (campaign, hour, schedule_task, channel, ua_id, kind, human)
DO UPDATE SET n = h.n + EXCLUDED.n
$$;

-- Both count tables counted again from the log: the fold given each month's events.
CREATE FUNCTION tracker_refold_counts() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    month timestamptz;
BEGIN
    TRUNCATE report_event_hours, report_agent_hours;
    FOR month IN SELECT DISTINCT date_trunc('month', ts, 'UTC') FROM events ORDER BY 1 LOOP
        PERFORM tracker_fold_counts(array_agg(tracker_us(e.ts)), array_agg(e.delivery_id),
                                    array_agg(e.ua_id), array_agg(e.campaign),
                                    array_agg(e.schedule_task), array_agg(e.kind),
                                    array_agg(e.flags))
        FROM events e
        -- a UTC month's end, whatever the session's time zone
        WHERE e.ts >= month
          AND e.ts < (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
    END LOOP;
END $$;

-- A landed batch: the event tuples' columns as journaled (tracker.store.events
-- .EVENT_COLUMNS without link_position), in the order above.
CREATE FUNCTION tracker_fold_events(b_us bigint[], b_delivery bigint[], b_url bigint[],
                                    b_ua bigint[], b_campaign integer[], b_task integer[],
                                    b_kind smallint[], b_flags smallint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    -- 1. the suppression list, in time order (journal order on ties)
    IF tracker_kind_unsubscribe() = ANY (b_kind) OR tracker_kind_subscribe() = ANY (b_kind)
    THEN
        PERFORM tracker_lock_delivery_counters();
        FOR change IN
            SELECT b.delivery_id, b.kind, b.us
            FROM unnest(b_delivery, b_kind, b_us) WITH ORDINALITY
                 AS b (delivery_id, kind, us, i)
            WHERE b.kind IN (tracker_kind_unsubscribe(), tracker_kind_subscribe())
            ORDER BY b.us, b.i
        LOOP
            IF change.kind = tracker_kind_unsubscribe() THEN
                -- an unsubscribe puts the user on the channel's list (F14, F17)
                INSERT INTO suppressions (user_id, channel, reason, since)
                SELECT user_id, channel, 'unsubscribe', tracker_time(change.us)
                FROM deliveries WHERE delivery_id = change.delivery_id
                ON CONFLICT (user_id, channel) DO NOTHING;
            ELSE
                -- a resubscribe lifts an unsubscribe, never a hard bounce
                DELETE FROM suppressions s USING deliveries d
                WHERE d.delivery_id = change.delivery_id AND s.user_id = d.user_id
                  AND s.channel = d.channel AND s.reason = 'unsubscribe';
            END IF;
        END LOOP;
    END IF;

    -- 2. the count tables
    PERFORM tracker_fold_counts(b_us, b_delivery, b_ua, b_campaign, b_task, b_kind, b_flags);

    -- 3. the deliveries' firsts (test sends too: the user figures read deliveries,
    --    which leave test sends out)
    PERFORM tracker_fold_firsts(b_us, b_delivery, b_kind, b_flags);

    -- 4. the link counters, last, under their lock (tracker_fold_links leaves test
    --    sends out)
    IF tracker_kind_click() = ANY (b_kind) THEN
        PERFORM tracker_lock_link_counters();
        PERFORM tracker_fold_links(array_agg(b.delivery_id), array_agg(b.url_id),
                                   array_agg(b.us), array_agg(b.flags), array_agg(b.campaign))
        FROM unnest(b_delivery, b_url, b_us, b_flags, b_campaign, b_kind)
             AS b (delivery_id, url_id, us, flags, campaign, kind)
        WHERE b.kind = tracker_kind_click();
    END IF;
END $$;
