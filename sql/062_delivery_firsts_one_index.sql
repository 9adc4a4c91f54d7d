-- 062_delivery_firsts_one_index: report_delivery_firsts keeps one index, not two.
-- sql/054 added a covering index (delivery_id) INCLUDE (the five first times) beside
-- the primary key on (delivery_id), so the user figures read the firsts from the index
-- alone. The primary key itself can carry them: same look-ups, same index-only reads,
-- and the upserts' ON CONFLICT (delivery_id) still finds it. One key a delivery less
-- (issue 17: ~17 of ~95 bytes a read delivery in loadtests/bytes_per_event.py).
ALTER TABLE report_delivery_firsts
    DROP CONSTRAINT report_delivery_firsts_pkey,
    ADD PRIMARY KEY (delivery_id)
        INCLUDE (first_open, first_human_open, first_click, first_human_click,
                 first_conversion);
DROP INDEX report_delivery_firsts_covering;
