-- 079_link_counts_local_days: the click ranking's counters by the reports' local days,
-- in rows without padding.
--
-- Report periods are whole local days of TRACKER_TIMEZONE (tracker.reports.periods),
-- yet the counters were kept per UTC hour, day and month: a period in any zone whose
-- midnight is not UTC's summed whole UTC days and months, then read hour rows at both
-- of its edges (Asia/Kolkata's half hours from raw clicks). Those hour rows were
-- two thirds of the counters (4.0M of 5.9M rows on the 10M-event bench set, most of
-- them the project's and the channels', which no campaign report reads), and every
-- row was padded: a counter's key (scope int, span smallint, at timestamptz, url_id
-- bigint) took 24 bytes where 16 hold it, a return's 40 where 24 do.
--
-- Kept instead by local day and local month of one zone, the one the reports use, a
-- period is whole months plus whole days, read from counters alone in every zone
-- (half-hour ones too):
--
--   report_link_zone     the zone the counters are kept in (one row; 'UTC' until
--                        `tracker serve` or `tracker migrate`, which know
--                        TRACKER_TIMEZONE, refold them by its days:
--                        tracker.store.link_rollups.align_zone)
--   report_link_counts   per (scope, slot, link): clicks, human clicks, and how many
--                        (link, user) pairs clicked first in the span; a slot is the
--                        span (a local day or month) and its first day in one integer
--                        (tracker_link_slot: the span's base plus the day's number
--                        from 1970-01-01), so each span's rows stay one range of the
--                        key ordered by time
--   report_link_returns  per (scope, bots, to, from, link): how many pairs clicked on
--                        the local day "from" and next on the later day "to" (days
--                        as integers; the key leads with what a period selects)
--
-- Wider columns come first in both, so nothing is padded. A pair clicked inside a
-- period of whole local days when its first click day lies inside, or when it clicked
-- before the period and again inside: then exactly one step between consecutive click
-- days enters the period. A report in a zone other than the counters' reads raw
-- clicks (exact, slower) until they are refolded.
DROP TABLE report_link_counts, report_link_returns;
DROP FUNCTION tracker_refold_links();

-- A counter's span, in hours (744 stands for a calendar month of any length;
-- tracker.store.link_rollups.Span in Python, tests/test_codes.py holds them equal).
CREATE FUNCTION tracker_span_day() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 24;
CREATE FUNCTION tracker_span_month() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 744;

CREATE TABLE report_link_zone (
    zone text    NOT NULL,
    one  boolean PRIMARY KEY DEFAULT true CHECK (one)
);
SELECT tracker_reference('report_link_zone');  -- (sql/072: a copy on every Citus node)
INSERT INTO report_link_zone (zone) VALUES ('UTC');

-- A local day, numbered from 1970-01-01.
CREATE FUNCTION tracker_day_number(day date) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN day - date '1970-01-01';

-- A link counter's span (tracker_span_day() or tracker_span_month()) and first day in
-- one integer: the days' and the months' rows each make one range ordered by time.
CREATE FUNCTION tracker_link_slot(span integer, day date) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN tracker_day_number(day)
           + CASE span WHEN tracker_span_month() THEN 536870912 ELSE 0 END;

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

SELECT tracker_distribute('report_link_counts', 'scope', 'events');
SELECT tracker_distribute('report_link_returns', 'scope', 'events');

-- The fold of sql/068, by the counters' zone's local days (the zone read once, as a
-- scalar subquery: joined as a table, it changed the plan and cost a click ~15 us).
CREATE OR REPLACE FUNCTION tracker_fold_links(b_delivery bigint[], b_url bigint[],
                                              b_us bigint[], b_flags smallint[],
                                              b_campaign integer[])
RETURNS void LANGUAGE sql AS $$
WITH batch AS (
    SELECT b.campaign, tracker_channel_of(d.channel, c.channel) AS channel,
           b.url_id, d.user_id,
           (tracker_time(b.us) AT TIME ZONE (SELECT zone FROM report_link_zone))::date AS day,
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
           (e.ts AT TIME ZONE (SELECT zone FROM report_link_zone))::date AS day,
           tracker_is_human(e.flags) AS human,
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
    SELECT campaign, channel, url_id, user_id, day, human, 0, n
    FROM batch WHERE user_id IS NOT NULL
), days AS (
    SELECT s.scope, x.url_id, x.user_id, v.bots, x.day, sum(x.n) AS n, sum(x.batch) AS batch
    FROM every x
    CROSS JOIN LATERAL (VALUES (x.campaign), (0), (-x.channel)) s (scope)
    CROSS JOIN LATERAL (VALUES (true), (false)) v (bots)
    WHERE v.bots OR x.human
    GROUP BY 1, 2, 3, 4, 5
), marks AS (
    SELECT scope, url_id, user_id, bots, day, 1 AS sign FROM days
    UNION ALL
    SELECT scope, url_id, user_id, bots, day, -1 FROM days WHERE n > batch
), chained AS (
    SELECT m.*, lag(day) OVER w AS previous, row_number() OVER w AS i
    FROM marks m
    WINDOW w AS (PARTITION BY scope, url_id, user_id, bots, sign ORDER BY day)
), counted AS (
    SELECT scope, url_id, day, sum(clicks) AS clicks, sum(human_clicks) AS human_clicks,
           sum(firsts) AS firsts, sum(human_firsts) AS human_firsts
    FROM (SELECT scope, url_id, day, 0 AS clicks, 0 AS human_clicks,
                 CASE WHEN bots THEN sign ELSE 0 END AS firsts,
                 CASE WHEN bots THEN 0 ELSE sign END AS human_firsts
          FROM chained WHERE i = 1
          UNION ALL
          SELECT s.scope, b.url_id, b.day, b.n, CASE WHEN b.human THEN b.n ELSE 0 END, 0, 0
          FROM batch b CROSS JOIN LATERAL (VALUES (b.campaign), (0), (-b.channel)) s (scope)
         ) k
    GROUP BY 1, 2, 3
    HAVING (sum(clicks), sum(firsts), sum(human_firsts)) <> (0, 0, 0)
), counts AS (
    INSERT INTO report_link_counts AS c (scope, slot, url_id, clicks, human_clicks,
                                         firsts, human_firsts)
    SELECT k.scope,
           tracker_link_slot(s.span, CASE s.span WHEN tracker_span_day() THEN k.day
                                     ELSE date_trunc('month', k.day)::date END),
           k.url_id, sum(k.clicks), sum(k.human_clicks), sum(k.firsts), sum(k.human_firsts)
    FROM counted k
    CROSS JOIN (VALUES (tracker_span_day()), (tracker_span_month())) s (span)
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
SELECT scope, bots, tracker_day_number(day), tracker_day_number(previous), url_id, sum(sign)
FROM chained WHERE previous IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
HAVING sum(sign) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (scope, bots, "to", "from", url_id) DO UPDATE SET n = r.n + EXCLUDED.n
$$;

-- Every click folded again, in the given zone (stored first) or the counters' own.
CREATE FUNCTION tracker_refold_links(new_zone text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE report_link_zone SET zone = coalesce(new_zone, zone);
    TRUNCATE report_link_counts, report_link_returns;
    PERFORM tracker_fold_links(array_agg(e.delivery_id), array_agg(e.url_id),
                               array_agg(tracker_us(e.ts)), array_agg(e.flags),
                               array_agg(e.campaign))
    FROM events e WHERE e.kind = tracker_kind_click();
END $$;

SELECT tracker_adapt_for_citus();  -- (sql/072: the fold restated for Citus's planner)

SELECT tracker_refold_links();

ANALYZE report_link_counts, report_link_returns;
