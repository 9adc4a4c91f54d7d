-- 071_link_counts_compact: the click ranking's counters in rows a third narrower.
--
-- On the 10M-event bench set the two counter tables are 95 of the 253 bytes an event
-- (loadtests/README.md), 5.9M and 1.9M rows whose keys and columns were padded: a
-- counter's key (scope int, span smallint, at timestamptz, url_id bigint) took 24
-- bytes where 16 hold it, a return's (scope, url_id, bots, "to", "from") 40 where 24
-- do. The same facts, laid out without padding:
--
--   * an hour is its number since the Unix epoch (tracker_hour_number): an integer
--     of 4 bytes instead of a timestamptz of 8, exact for whole UTC hours;
--   * a counter's span and start are one integer, its slot (tracker_link_slot):
--     the span's base (0 for an hour, 2^29 for a day, 2^30 for a month) plus the
--     start's hour number, so each span's rows stay in one run of the key ordered by
--     time, and a span's period is one range of slots;
--   * wider columns first, so nothing is padded; a return's key leads with
--     (scope, bots, "to"), the period's entering steps being one range of it.
--
-- Counts and users are unchanged (the exactness suites hold it); the fold of sql/068
-- is restated with the new columns, and the migration creates the tables and calls
-- the rebuild.
DROP TABLE report_link_counts, report_link_returns;

-- A counter's span, in hours (744 stands for a calendar month of any length).
-- (tracker.store.link_rollups.Span in Python; tests/test_codes.py holds them equal)
CREATE FUNCTION tracker_span_hour() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 1;
CREATE FUNCTION tracker_span_day() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 24;
CREATE FUNCTION tracker_span_month() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 744;

-- The UTC hour holding t, numbered from the Unix epoch (STABLE as extract from a
-- timestamptz is, so that the planner inlines it; sql/056).
CREATE FUNCTION tracker_hour_number(t timestamptz) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM t) / 3600)::integer;

-- A link counter's span and start hour in one integer (see above).
CREATE FUNCTION tracker_link_slot(span integer, at timestamptz) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN tracker_hour_number(at) + CASE span WHEN tracker_span_day() THEN 536870912
                                              WHEN tracker_span_month() THEN 1073741824
                                              ELSE 0 END;

CREATE TABLE report_link_counts (
    url_id       bigint  NOT NULL,
    clicks       bigint  NOT NULL,
    human_clicks bigint  NOT NULL,
    scope        integer NOT NULL,
    slot         integer NOT NULL,
    firsts       integer NOT NULL,
    human_firsts integer NOT NULL,
    PRIMARY KEY (scope, slot, url_id)
);

CREATE TABLE report_link_returns (
    url_id bigint  NOT NULL,
    scope  integer NOT NULL,
    "to"   integer NOT NULL,
    "from" integer NOT NULL,
    n      integer NOT NULL,
    bots   boolean NOT NULL,
    PRIMARY KEY (scope, bots, "to", "from", url_id)
);

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
    INSERT INTO report_link_counts AS c (scope, slot, url_id, clicks, human_clicks,
                                         firsts, human_firsts)
    SELECT k.scope,
           tracker_link_slot(s.span, CASE s.span
               WHEN tracker_span_hour() THEN k.hour
               WHEN tracker_span_day() THEN date_trunc('day', k.hour, 'UTC')
               ELSE date_trunc('month', k.hour, 'UTC') END),
           k.url_id, sum(k.clicks), sum(k.human_clicks), sum(k.firsts), sum(k.human_firsts)
    FROM counted k
    CROSS JOIN (VALUES (tracker_span_hour()), (tracker_span_day()), (tracker_span_month()))
        s (span)
    GROUP BY 1, 2, 3
    HAVING (sum(k.clicks), sum(k.firsts), sum(k.human_firsts)) <> (0, 0, 0)
    ORDER BY 1, 2, 3
    ON CONFLICT (scope, slot, url_id) DO UPDATE SET
        clicks = c.clicks + EXCLUDED.clicks,
        human_clicks = c.human_clicks + EXCLUDED.human_clicks,
        firsts = c.firsts + EXCLUDED.firsts,
        human_firsts = c.human_firsts + EXCLUDED.human_firsts
)
INSERT INTO report_link_returns AS r (scope, bots, "to", "from", url_id, n)
SELECT scope, bots, tracker_hour_number(hour), tracker_hour_number(previous), url_id, sum(sign)
FROM chained WHERE previous IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
HAVING sum(sign) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (scope, bots, "to", "from", url_id) DO UPDATE SET n = r.n + EXCLUDED.n
$$;

SELECT tracker_refold_links();

ANALYZE report_link_counts, report_link_returns;
