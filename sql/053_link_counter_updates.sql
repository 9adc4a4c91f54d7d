-- 053_link_counter_updates: cheaper updates of report_link_first_counts on landing.
-- Its key included n (050) so sums are read from the index alone; but then every
-- counter update changes an indexed column, and PostgreSQL can never update in place
-- (HOT): each of the ~8 counter updates per new (link, user) pair wrote new index
-- entries (measured: 0 of 1.6M updates HOT). Its reads touch few rows (candidate
-- links only), so the key goes back to the plain columns and pages keep room for
-- in-place updates. report_link_click_counts keeps n in its key: a year's ranking
-- sums ~50k of its rows (21 ms from the index, 80-95 ms from the heap).
ALTER TABLE report_link_first_counts
    DROP CONSTRAINT report_link_first_counts_pkey,
    ADD PRIMARY KEY (campaign, url_id, bots, span, at);
ALTER TABLE report_link_first_counts SET (fillfactor = 80);
