-- 065_link_counts_by_channel: the click ranking keeps its link counters for each
-- channel too, and report_click_users and report_click_hours go (issue 17).
--
-- report_click_users held a row per (campaign, link, user, schedule task, channel):
-- 40 bytes per recorded open or click after a realistic read of a real send
-- (loadtests/bytes_per_event.py), a fifth of the database's growth, read only by the
-- project-wide ranking under a schedule task or channel filter, or in a time zone
-- whose midnights fall inside a UTC hour. Those rankings now read:
--
--   * a channel filter: the link counters (sql/060) at a channel's scope, -1 (email),
--     -2 (push) or -3 (line), beside a campaign's id and 0 for the whole project. A
--     user clicking a link in two email campaigns is one pair of scope -1, as of 0.
--   * a schedule task filter (with or without a channel, a campaign): its raw clicks,
--     found by the (schedule_task, ts) index, as one campaign's ranking under a
--     filter already was (tracker.reports.clicks).
--   * a period whose ends are not whole UTC hours: the counters for its whole hours,
--     and raw clicks at its two partial hours; a pair clicking only there is one more
--     user when it has no click in the whole hours (one probe of the clicks' index
--     by its user's deliveries).
--
-- report_click_hours (clicks per campaign, hour, task, channel, link) was read by the
-- same filtered rankings only; clicks add up over scopes, so the counters answer
-- them too, and it goes as well.
--
-- The fold is sql/063's with the channel's scope added: a click's channel is its
-- delivery's (or, for a delivery not stored, its campaign's), as every report filters
-- it. tracker_refold_links recounts both tables from the event log with it; the
-- rebuild (tracker.store.link_rollups.rebuild) and this migration call it: one
-- declaration.
CREATE OR REPLACE FUNCTION tracker_fold_links(b_delivery bigint[], b_url bigint[],
                                              b_us bigint[], b_flags smallint[],
                                              b_campaign integer[])
RETURNS void LANGUAGE sql AS $$
WITH batch AS (
    SELECT b.campaign,
           coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3
                                              ELSE 1 END)::int AS channel,
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
    -- and (apart) the batch's, per campaign, channel, pair, hour and human. Each
    -- user's deliveries, then each delivery's clicks of the link: the lateral read
    -- behind OFFSET 0 is one index probe per delivery and partition, whatever the
    -- statistics say (sql/063)
    SELECT e.campaign, d.channel::int AS channel, p.url_id, p.user_id,
           date_trunc('hour', e.ts, 'UTC') AS hour, tracker_is_human(e.flags) AS human,
           count(*) AS n, 0 AS batch
    FROM pairs p
    JOIN deliveries d ON d.user_id = p.user_id AND NOT d.is_test
    CROSS JOIN LATERAL (
        SELECT c.campaign, c.ts, c.flags FROM events c
        WHERE c.delivery_id = d.delivery_id AND c.kind = 2 AND c.url_id = p.url_id
        OFFSET 0) e
    GROUP BY 1, 2, 3, 4, 5, 6
    UNION ALL
    SELECT campaign, channel, url_id, user_id, hour, human, 0, n
    FROM batch WHERE user_id IS NOT NULL
), hours AS (
    -- per scope (campaign, project, channel), pair, kind of click (bots: any) and UTC
    -- hour: clicks, and the batch's
    SELECT s.scope, x.url_id, x.user_id, v.bots, x.hour, sum(x.n) AS n, sum(x.batch) AS batch
    FROM every x
    CROSS JOIN LATERAL (VALUES (x.campaign), (0), (-x.channel)) s (scope)
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

-- Both tables counted again from the event log: the fold given every click at once
-- (it reads each pair's clicks from the log, so it cannot go month by month).
CREATE FUNCTION tracker_refold_links() RETURNS void LANGUAGE sql AS $$
    TRUNCATE report_link_counts, report_link_returns;
    SELECT tracker_fold_links(array_agg(e.delivery_id), array_agg(e.url_id),
                              array_agg(tracker_us(e.ts)), array_agg(e.flags),
                              array_agg(e.campaign))
    FROM events e WHERE e.kind = 2;
$$;

DROP TABLE report_click_users, report_click_hours;

-- The counters' keys without their counts: sql/060 included them so that a period's
-- sums were read from the index alone, but then every fold's update of a count
-- changes an indexed column, so none is HOT: each makes a new index entry and leaves
-- its heap page for another (after the realistic read: 8.9 bytes per open or click of
-- report_link_counts' heap for ~100 live rows, all churn). Keyed alone, a count's
-- update stays on its page, and the key is 40% smaller on the 1M bench set.
ALTER TABLE report_link_counts DROP CONSTRAINT report_link_counts_pkey,
    ADD PRIMARY KEY (scope, span, at, url_id);
ALTER TABLE report_link_returns DROP CONSTRAINT report_link_returns_pkey,
    ADD PRIMARY KEY (scope, url_id, bots, "to", "from");

SELECT tracker_refold_links();

ANALYZE report_link_counts, report_link_returns;
