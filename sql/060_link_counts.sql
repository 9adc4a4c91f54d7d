-- 060_link_counts: the click ranking (F5, F12) in two small counter tables instead of
-- the four of sql/050-053, which held ~9.5 derived rows a click and more bytes than
-- the events they summarise (issue 17: 410 of 784 bytes an event on bench_reports).
--
-- A (link, user) pair clicked inside a period [S, E) of whole UTC hours when the first
-- UTC hour it clicked in lies inside, or when it clicked in an hour before S and again
-- inside; then exactly one step between two consecutive distinct click hours of the
-- pair enters the period (before S, then inside). So distinct users per link are sums of
-- counters with no user in them:
--
--   report_link_counts   per (scope, span, at, link): clicks and human clicks, and how
--                        many pairs clicked first (any click; human clicks) in the span
--   report_link_returns  per (scope, link, bots, from, to): how many pairs clicked in
--                        the UTC hour "from" and next in the later hour "to"
--
-- scope is a campaign's id, or 0 for the whole project (one user clicking one link in
-- two campaigns is one clicking user of the project); span is 1 (a UTC hour), 24 (a UTC
-- day) or 744 (a UTC calendar month) starting at "at", so a period of whole hours sums
-- whole months, then whole days, then the hours at its edges (tracker.reports.clicks).
-- Test sends are never counted (F2); clicks whose delivery is unknown count as clicks,
-- never as users.
--
-- Both tables are kept by one function, tracker_fold_links, given clicks already in
-- the events table: it reads every click of their pairs (their users' deliveries,
-- sql/010's index of clicks by delivery) and counts the difference those clicks make.
-- Landing calls it for a batch in the shipper's transaction (tracker.store.link_rollups,
-- under LINK_USERS_LOCK); a rebuild calls it once for every click: one declaration.
CREATE TABLE report_link_counts (
    scope        integer     NOT NULL,
    span         smallint    NOT NULL,
    at           timestamptz NOT NULL,
    url_id       bigint      NOT NULL,
    clicks       bigint      NOT NULL,
    human_clicks bigint      NOT NULL,
    firsts       integer     NOT NULL,
    human_firsts integer     NOT NULL,
    -- the counts are included so a period's sums are read from the index alone
    PRIMARY KEY (scope, span, at, url_id) INCLUDE (clicks, human_clicks, firsts, human_firsts)
);

CREATE TABLE report_link_returns (
    scope   integer     NOT NULL,
    url_id  bigint      NOT NULL,
    bots    boolean     NOT NULL,
    "to"    timestamptz NOT NULL,
    "from"  timestamptz NOT NULL,
    n       integer     NOT NULL,
    -- a period's entering steps: "to" inside it, "from" before it
    PRIMARY KEY (scope, url_id, bots, "to", "from") INCLUDE (n)
);

-- The human predicate on events.flags, in one place for SQL (tracker.store.rollups
-- HUMAN_SQL is the same in Python): not a HEAD request, verdict human or proxied open.
CREATE FUNCTION tracker_is_human(flags smallint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (flags & 1) = 0 AND ((flags >> 1) & 7) IN (0, 2);

-- Fold clicks already in events (the batch: delivery, link, time in microseconds since
-- the Unix epoch, flags, campaign; any order, repeats allowed) into both tables. Its
-- pairs' other clicks are read from events: the pair's click hours without the batch
-- (old) and with it (new) differ in their first hour and their steps, and only those
-- differences are added. Called with every click at once it counts from nothing.
CREATE FUNCTION tracker_fold_links(b_delivery bigint[], b_url bigint[], b_us bigint[],
                                   b_flags smallint[], b_campaign integer[])
RETURNS void LANGUAGE sql AS $$
WITH batch AS (
    SELECT b.campaign, b.url_id, d.user_id, tracker_time(b.us) AS ts, b.delivery_id,
           tracker_is_human(b.flags) AS human
    FROM unnest(b_delivery, b_url, b_us, b_flags, b_campaign)
         AS b (delivery_id, url_id, us, flags, campaign)
    LEFT JOIN deliveries d ON d.delivery_id = b.delivery_id
    WHERE NOT coalesce(d.is_test, false)
), pairs AS (
    SELECT DISTINCT url_id, user_id FROM batch WHERE user_id IS NOT NULL
), every AS (
    -- every click of those pairs, the batch's own included (they are already landed)
    SELECT e.campaign, p.url_id, p.user_id, e.ts, tracker_is_human(e.flags) AS human,
           1 AS n, 0 AS batch
    FROM pairs p
    JOIN deliveries d ON d.user_id = p.user_id AND NOT d.is_test
    JOIN events e ON e.delivery_id = d.delivery_id AND e.kind = 2 AND e.url_id = p.url_id
    UNION ALL
    SELECT campaign, url_id, user_id, ts, human, 0, 1 FROM batch WHERE user_id IS NOT NULL
), hours AS (
    -- per scope, pair, kind of click (bots: any) and UTC hour: clicks, and the batch's
    SELECT s.scope, x.url_id, x.user_id, v.bots, date_trunc('hour', x.ts, 'UTC') AS hour,
           sum(x.n) AS n, sum(x.batch) AS batch
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
    SELECT scope, url_id, hour, 0 AS clicks, 0 AS human_clicks,
           CASE WHEN bots THEN sign ELSE 0 END AS firsts,
           CASE WHEN bots THEN 0 ELSE sign END AS human_firsts
    FROM chained WHERE i = 1
    UNION ALL
    SELECT s.scope, b.url_id, date_trunc('hour', b.ts, 'UTC'), 1, b.human::int, 0, 0
    FROM batch b CROSS JOIN LATERAL (VALUES (b.campaign), (0)) s (scope)
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

DROP TABLE report_link_click_counts, report_link_users, report_link_first_counts,
           report_link_gaps;

-- Count what is already stored (nothing on a new install): the same function as landing.
SELECT tracker_fold_links(array_agg(e.delivery_id), array_agg(e.url_id),
                          array_agg(tracker_us(e.ts)), array_agg(e.flags),
                          array_agg(e.campaign))
FROM events e WHERE e.kind = 2;

ANALYZE report_link_counts, report_link_returns;
