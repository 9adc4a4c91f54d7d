-- 050_link_users: the click ranking (F5) without reading a row per click or per
-- clicking user. Counting distinct (link, user) pairs over a year read millions of rows
-- per report; these rollups turn clicks and clicking users per link into sums over a
-- few thousand counters. Like every rollup they are written by
-- tracker.store.rollups.apply in the shipper's transaction, so they never drift from
-- the event log.
--
-- Each figure is kept twice: per campaign (campaign = its id) and for the whole
-- project (campaign = 0; campaign ids start at 1), because one user clicking one link
-- in two campaigns is one clicking user of the project's ranking. Counters are kept
-- per UTC hour (span 1), UTC day (span 24) and UTC calendar month (span 744) starting
-- at "at": a period of whole hours sums its whole months, then whole days, then the
-- hours at its edges. Test sends are never counted (F2).

-- Clicks per (campaign or 0, link URL, human, span, at); human as in report_event_hours.
CREATE TABLE report_link_click_counts (
    campaign integer     NOT NULL,
    url_id   bigint      NOT NULL,
    human    boolean     NOT NULL,
    span     smallint    NOT NULL,
    at       timestamptz NOT NULL,
    n        bigint      NOT NULL,
    -- n is included so a period's sums are read from the index alone
    PRIMARY KEY (campaign, span, at, human, url_id) INCLUDE (n)
);

-- Per (campaign or 0, link URL, user): the first and last click, and the first and last
-- human click. A pair clicked inside [S, E) when its first click is inside; when its
-- first click is before S, when its last click is inside, or (first before S and last
-- at or after E: rare) when raw clicks say so. Clicks whose delivery the tracker does
-- not know have no user and are not here.
CREATE TABLE report_link_users (
    campaign    integer     NOT NULL,
    url_id      bigint      NOT NULL,
    user_id     text        NOT NULL,
    first_click timestamptz NOT NULL,
    last_click  timestamptz NOT NULL,
    first_human timestamptz,
    last_human  timestamptz,
    PRIMARY KEY (campaign, url_id, user_id)
);
-- Pairs clicked more than once are the only ones whose clicks can surround a period's
-- start; these small partial indexes find them from either side.
CREATE INDEX report_link_users_first ON report_link_users (campaign, first_click)
    WHERE first_click < last_click;
CREATE INDEX report_link_users_last ON report_link_users (campaign, last_click)
    WHERE first_click < last_click;
CREATE INDEX report_link_users_first_human ON report_link_users (campaign, first_human)
    WHERE first_human < last_human;
CREATE INDEX report_link_users_last_human ON report_link_users (campaign, last_human)
    WHERE first_human < last_human;

-- Per (campaign or 0, link URL, bots, span, at): how many pairs of report_link_users
-- had their first click inside the span.
--   bots  true: first click of any kind; false: first human click
CREATE TABLE report_link_first_counts (
    campaign integer     NOT NULL,
    url_id   bigint      NOT NULL,
    bots     boolean     NOT NULL,
    span     smallint    NOT NULL,
    at       timestamptz NOT NULL,
    n        bigint      NOT NULL,
    PRIMARY KEY (campaign, url_id, bots, span, at) INCLUDE (n)
);

-- Backfill from what is already stored (empty on a new install); the same SQL as
-- tracker.store.rollups.rebuild.
INSERT INTO report_link_click_counts (campaign, url_id, human, span, at, n)
SELECT c.campaign, k.url_id, k.human, s.span,
       CASE s.span WHEN 1 THEN k.hour WHEN 24 THEN date_trunc('day', k.hour, 'UTC')
                   ELSE date_trunc('month', k.hour, 'UTC') END,
       sum(k.n)
FROM (SELECT e.campaign, e.url_id, date_trunc('hour', e.ts, 'UTC') AS hour,
             (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2) AS human, count(*) AS n
      FROM events e LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
      WHERE e.kind = 2 AND NOT coalesce(d.is_test, false)
      GROUP BY 1, 2, 3, 4) k
CROSS JOIN LATERAL (VALUES (k.campaign), (0)) c (campaign)
CROSS JOIN (VALUES (1::smallint), (24::smallint), (744::smallint)) s (span)
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO report_link_users
SELECT e.campaign, e.url_id, d.user_id, min(e.ts), max(e.ts),
       min(e.ts) FILTER (WHERE (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2)),
       max(e.ts) FILTER (WHERE (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2))
FROM events e
JOIN deliveries d ON d.delivery_id = e.delivery_id
WHERE e.kind = 2 AND NOT d.is_test
GROUP BY 1, 2, 3;

INSERT INTO report_link_users
SELECT 0, url_id, user_id, min(first_click), max(last_click), min(first_human),
       max(last_human)
FROM report_link_users
GROUP BY 2, 3;

INSERT INTO report_link_first_counts (campaign, url_id, bots, span, at, n)
SELECT campaign, url_id, bots, span,
       CASE span WHEN 1 THEN date_trunc('hour', t, 'UTC') WHEN 24 THEN date_trunc('day', t, 'UTC')
                 ELSE date_trunc('month', t, 'UTC') END,
       count(*)
FROM (SELECT campaign, url_id, true AS bots, first_click AS t FROM report_link_users
      UNION ALL
      SELECT campaign, url_id, false, first_human FROM report_link_users
      WHERE first_human IS NOT NULL) f
CROSS JOIN (VALUES (1::smallint), (24::smallint), (744::smallint)) s (span)
GROUP BY 1, 2, 3, 4, 5;

ANALYZE report_link_click_counts, report_link_users, report_link_first_counts;
