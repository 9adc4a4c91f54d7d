-- 061_click_index: one index of clicks by campaign instead of two indexes that no
-- report needs any more (issue 17: every index earns its bytes by a query).
--
-- Reports read rollups for whole UTC hours and raw events only for the partial hours
-- at a period's edges (time zones whose midnight is not on a whole hour), which BRIN
-- on time finds; the one raw read over a whole period is one campaign's clicks for
-- the click ranking under a schedule task or channel filter, or in such a time zone
-- (tracker.reports.clicks._link_users_raw). It reads this index alone.
--   events_campaign_ts (campaign, ts) on every event:        ~33 bytes an event
--   events_clicks_ts (ts) INCLUDE (...) on clicks:           ~15 bytes an event
--   events_clicks_campaign_ts, below, on clicks:             ~15 bytes an event
-- (bench_reports, 1M events). events_task_ts stays: it is the F3 filter of
-- message_event_log. events_click_delivery_ts (sql/010) stays: conversions'
-- attribution and the click ranking's fold (sql/060) read a user's clicks by delivery.
CREATE INDEX events_clicks_campaign_ts ON events (campaign, ts)
    INCLUDE (url_id, delivery_id, flags) WHERE kind = 2;
DROP INDEX events_campaign_ts, events_clicks_ts;
