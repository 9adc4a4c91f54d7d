-- 063_fold_reads_by_delivery: the click ranking's fold (sql/060) reads a pair's clicks
-- by delivery and link, through the one index of clicks there is, whatever the
-- statistics say.
--
-- tracker_fold_links reads every click of a batch's (link, user) pairs: the users'
-- deliveries, then each delivery's clicks of the link. Measured with
-- loadtests/land_cost.py (20,000 deliveries, clicks over five links) when the month's
-- statistics were taken while it held only opens, as early in any month: the planner,
-- believing the partition held no clicks, read every click of the month once per pair
-- through whichever index of clicks it liked (sql/010's (delivery, ts) or sql/061's
-- (campaign, ts)): 0.7-0.9 ms of PostgreSQL's CPU a click, 1.2-2.7 s a 500-click
-- batch. Now there is one index of clicks, keyed (delivery, link, time) and covering
-- what the fold reads, and the fold probes it once per delivery (a lateral read
-- behind OFFSET 0): 93 ms for that batch under the same statistics.
-- sql/061's clicks-by-campaign index goes: its one reader (one campaign's click users
-- under a filter, tracker.reports.clicks._link_users_raw) reads the campaign's
-- schedule tasks through events_task_ts instead. Conversions' attribution and the
-- scanner-burst rule read clicks by delivery as before (a delivery's clicks are few).
CREATE INDEX events_click_delivery_url ON events (delivery_id, url_id, ts)
    INCLUDE (flags, campaign) WHERE kind = 2;
DROP INDEX events_click_delivery_ts, events_clicks_campaign_ts;

-- The fold as sql/060 declared it, with fewer rows between its steps: clicks are
-- grouped per (campaign, link, user, hour, human) before they are spread over scopes
-- and kinds of click, and counter deltas per (scope, link, hour) before they are
-- spread over hour, day and month (a 500-click batch made ~10,000 rows to aggregate;
-- loadtests/land_cost.py, PostgreSQL's CPU a click under stale statistics: 680-880 ->
-- 109-134 us).
CREATE OR REPLACE FUNCTION tracker_fold_links(b_delivery bigint[], b_url bigint[],
                                              b_us bigint[], b_flags smallint[],
                                              b_campaign integer[])
RETURNS void LANGUAGE sql AS $$
WITH batch AS (
    SELECT b.campaign, b.url_id, d.user_id, date_trunc('hour', tracker_time(b.us), 'UTC') AS hour,
           tracker_is_human(b.flags) AS human, count(*) AS n
    FROM unnest(b_delivery, b_url, b_us, b_flags, b_campaign)
         AS b (delivery_id, url_id, us, flags, campaign)
    LEFT JOIN deliveries d ON d.delivery_id = b.delivery_id
    WHERE NOT coalesce(d.is_test, false)
    GROUP BY 1, 2, 3, 4, 5
), pairs AS (
    SELECT DISTINCT url_id, user_id FROM batch WHERE user_id IS NOT NULL
), every AS (
    -- every click of those pairs, the batch's own included (they are already landed),
    -- and (apart) the batch's, per campaign, pair, hour and human. Each user's
    -- deliveries, then each delivery's clicks of the link: the lateral read behind
    -- OFFSET 0 is one index probe per delivery and partition, even when statistics
    -- taken early in a month say its partition holds no clicks (the planner then read
    -- every click of the month once per pair: 1.2 s a batch)
    SELECT e.campaign, p.url_id, p.user_id, date_trunc('hour', e.ts, 'UTC') AS hour,
           tracker_is_human(e.flags) AS human, count(*) AS n, 0 AS batch
    FROM pairs p
    JOIN deliveries d ON d.user_id = p.user_id AND NOT d.is_test
    CROSS JOIN LATERAL (
        SELECT c.campaign, c.ts, c.flags FROM events c
        WHERE c.delivery_id = d.delivery_id AND c.kind = 2 AND c.url_id = p.url_id
        OFFSET 0) e
    GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT campaign, url_id, user_id, hour, human, 0, n FROM batch WHERE user_id IS NOT NULL
), hours AS (
    -- per scope, pair, kind of click (bots: any) and UTC hour: clicks, and the batch's
    SELECT s.scope, x.url_id, x.user_id, v.bots, x.hour, sum(x.n) AS n, sum(x.batch) AS batch
    FROM every x
    CROSS JOIN LATERAL (VALUES (x.campaign), (0)) s (scope)
    CROSS JOIN LATERAL (VALUES (true), (false)) v (bots)
    WHERE v.bots OR x.human
    GROUP BY 1, 2, 3, 4, 5
), marks AS (
    -- the pair's click hours with the batch (+1) and without it (-1)
    SELECT scope, url_id, user_id, bots, hour, 1 AS sign FROM hours
    UNION ALL
    SELECT scope, url_id, user_id, bots, hour, -1 FROM hours WHERE n > batch
), chained AS (
    SELECT m.*, lag(hour) OVER w AS previous, row_number() OVER w AS i
    FROM marks m
    WINDOW w AS (PARTITION BY scope, url_id, user_id, bots, sign ORDER BY hour)
), counted AS (
    -- per scope, link and hour: clicks of the batch and pairs' first hours moved
    SELECT scope, url_id, hour, sum(clicks) AS clicks, sum(human_clicks) AS human_clicks,
           sum(firsts) AS firsts, sum(human_firsts) AS human_firsts
    FROM (SELECT scope, url_id, hour, 0 AS clicks, 0 AS human_clicks,
                 CASE WHEN bots THEN sign ELSE 0 END AS firsts,
                 CASE WHEN bots THEN 0 ELSE sign END AS human_firsts
          FROM chained WHERE i = 1
          UNION ALL
          SELECT s.scope, b.url_id, b.hour, b.n, CASE WHEN b.human THEN b.n ELSE 0 END, 0, 0
          FROM batch b CROSS JOIN LATERAL (VALUES (b.campaign), (0)) s (scope)) k
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
