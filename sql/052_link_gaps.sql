-- 052_link_gaps: distinct clicking users per link for any period, without raw clicks
-- (F5, F12). Per (campaign or 0 for the project, link URL, user) and per kind of click
-- (bots true: every click; bots false: human clicks only), one row per gap between two
-- consecutive distinct click times:
--   gap_start  a click time
--   gap_end    the next later click time of the same pair
-- A pair clicked inside [S, E) either first clicked inside it (report_link_first_counts)
-- or clicked before S and again inside, and then exactly one of its gaps enters the
-- period: gap_start < S <= gap_end < E. Written by tracker.store.link_rollups in the
-- shipper's transaction; a click landing inside a stored gap splits it.
CREATE TABLE report_link_gaps (
    campaign  integer     NOT NULL,
    url_id    bigint      NOT NULL,
    user_id   text        NOT NULL,
    bots      boolean     NOT NULL,
    gap_start timestamptz NOT NULL,
    gap_end   timestamptz NOT NULL,
    PRIMARY KEY (campaign, url_id, user_id, bots, gap_start)
);
-- A period's entering gaps, found from whichever bound holds fewer of them.
CREATE INDEX report_link_gaps_end ON report_link_gaps (campaign, url_id, bots, gap_end)
    INCLUDE (gap_start);
CREATE INDEX report_link_gaps_start ON report_link_gaps (campaign, url_id, bots, gap_start)
    INCLUDE (gap_end);

-- The gaps replace the look-ups these served.
DROP INDEX report_link_users_first, report_link_users_last, report_link_users_first_human,
           report_link_users_last_human;

-- Backfill (empty on a new install); the same SQL as tracker.store.link_rollups.rebuild.
INSERT INTO report_link_gaps (campaign, url_id, user_id, bots, gap_start, gap_end)
SELECT campaign, url_id, user_id, bots, previous, ts
FROM (SELECT p.*, lag(p.ts) OVER (PARTITION BY p.campaign, p.url_id, p.user_id,
                                               p.bots ORDER BY p.ts) AS previous
      FROM (SELECT DISTINCT c.campaign, k.url_id, k.user_id, v.bots, k.ts
            FROM (SELECT e.campaign, e.url_id, d.user_id, e.ts,
                         (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2) AS human
                  FROM events e JOIN deliveries d ON d.delivery_id = e.delivery_id
                  WHERE e.kind = 2 AND NOT d.is_test) k
            CROSS JOIN LATERAL (VALUES (k.campaign), (0)) c (campaign)
            CROSS JOIN LATERAL (VALUES (true), (false)) v (bots)
            WHERE v.bots OR k.human) p) g
WHERE previous IS NOT NULL;

ANALYZE report_link_gaps;
