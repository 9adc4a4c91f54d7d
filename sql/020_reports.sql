-- 020_reports: rollups that make reports fast without ever making them differ.
--
-- Both tables are written only by tracker.store.rollups.apply, inside the shipper's
-- transaction that COPYs the events they summarise: a batch and its rollup rows
-- commit together or not at all, so they cannot drift from the event log.
-- Reports read them for whole hours and read raw events for anything finer.

-- Count figures: events per (campaign, schedule task, channel, UTC hour, kind, human).
--   channel  the delivery's channel (1 email, 2 push, 3 line); the campaign's when the
--            delivery is unknown
--   hour     date_trunc('hour', ts, 'UTC'); any time zone whose day boundaries fall on
--            whole hours is served from here alone
--   human    opens and clicks by people: not HEAD, classifier verdict 0 (human) or
--            2 (proxied open); machine opens and bot clicks are the false rows
--   n        number of events
-- Test sends (deliveries.is_test) are never counted (F2).
CREATE TABLE report_event_hours (
    hour          timestamptz NOT NULL,
    n             bigint      NOT NULL,
    campaign      integer     NOT NULL,
    schedule_task integer     NOT NULL,
    channel       smallint    NOT NULL,
    kind          smallint    NOT NULL,
    human         boolean     NOT NULL,
    PRIMARY KEY (campaign, hour, schedule_task, channel, kind, human)
);
CREATE INDEX report_event_hours_hour ON report_event_hours (hour);

-- User figures: per delivery, its first open, click and conversion (ever). A delivery
-- sent in a period P whose first event is not before its send has an event inside P
-- exactly when that first event is before the end of P, so unique-user figures need
-- no scan of raw events (the rare event stamped before its send is checked raw).
CREATE TABLE report_delivery_firsts (
    delivery_id       bigint PRIMARY KEY,
    first_open        timestamptz,   -- any open, machine opens included
    first_human_open  timestamptz,
    first_click       timestamptz,   -- any click, bots included
    first_human_click timestamptz,
    first_conversion  timestamptz
);

-- Click ranking for the whole project reads clicks by time without touching opens.
CREATE INDEX events_clicks_ts ON events (ts) INCLUDE (url_id, delivery_id, campaign, flags)
    WHERE kind = 2;

-- Error-code tables read only the failed outcomes of a period.
CREATE INDEX deliveries_failed_sent ON deliveries (sent_at) WHERE status IN (2, 3, 4);

-- Backfill from events already landed (empty on a new install).
INSERT INTO report_event_hours (hour, n, campaign, schedule_task, channel, kind, human)
SELECT date_trunc('hour', e.ts, 'UTC'), count(*), e.campaign, e.schedule_task,
       coalesce(d.channel, CASE c.channel WHEN 'push' THEN 2 WHEN 'line' THEN 3 ELSE 1 END),
       e.kind, (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2)
FROM events e
LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
LEFT JOIN campaigns c ON c.id = e.campaign
WHERE NOT coalesce(d.is_test, false)
GROUP BY 1, 3, 4, 5, 6, 7;

INSERT INTO report_delivery_firsts
SELECT delivery_id,
       min(ts) FILTER (WHERE kind = 1),
       min(ts) FILTER (WHERE kind = 1 AND (flags & 1) = 0 AND ((flags >> 1) & 7) IN (0, 2)),
       min(ts) FILTER (WHERE kind = 2),
       min(ts) FILTER (WHERE kind = 2 AND (flags & 1) = 0 AND ((flags >> 1) & 7) IN (0, 2)),
       min(ts) FILTER (WHERE kind = 5)
FROM events WHERE kind IN (1, 2, 5)
GROUP BY delivery_id;

-- message_event_log, extended (F13, docs/sql-views.md): the columns of 002 plus
--   kind_code      events.kind (1..5), NULL for outcomes
--   verdict        human, machine_open, proxied_open, scanner_click, other_bot (events)
--   is_human       counted among people in reports (not HEAD, verdict human or proxied)
--   client_class   coarse client/device class from the User-Agent: apple_mail_proxy,
--                  gmail_proxy, outlook, ios, android, windows, macos, linux, bot, other,
--                  unknown (no User-Agent). A caveat (F22): user agents are easily
--                  faked and mail proxies hide the reader's device.
-- Filter on "timestamp" and schedule_task_id: the time bound prunes partitions and the
-- (schedule_task, ts) index serves both (F3; see tests/test_reports_views.py).
CREATE OR REPLACE VIEW message_event_log AS
SELECT
    (CASE e.kind WHEN 1 THEN 'message_open' WHEN 2 THEN 'message_click'
        WHEN 3 THEN 'message_unsubscribe' WHEN 4 THEN 'message_subscribe'
        WHEN 5 THEN 'message_conversion' END)::text AS event_name,
    e.ts AS "timestamp",
    c.campaign_id,
    st.schedule_task_id,
    e.delivery_id,
    d.user_id,
    (CASE coalesce(d.channel, 0) WHEN 1 THEN 'email' WHEN 2 THEN 'push' WHEN 3 THEN 'line'
        ELSE c.channel END)::text AS channel,
    u.url AS link_url,
    e.link_position,
    NULL::text AS error_code,
    NULL::text AS error_message,
    ua.user_agent,
    (e.flags & 1) = 1 AS is_head,
    e.kind AS kind_code,
    (CASE (e.flags >> 1) & 7 WHEN 0 THEN 'human' WHEN 1 THEN 'machine_open'
        WHEN 2 THEN 'proxied_open' WHEN 3 THEN 'scanner_click' ELSE 'other_bot' END)::text
        AS verdict,
    (e.flags & 1) = 0 AND ((e.flags >> 1) & 7) IN (0, 2) AS is_human,
    (CASE
        WHEN ua.user_agent IS NULL THEN 'unknown'
        WHEN ((e.flags >> 1) & 7) IN (3, 4) OR ua.user_agent ~* '(bot|crawl|spider|scan)'
            THEN 'bot'
        WHEN ua.user_agent ~* 'GoogleImageProxy' THEN 'gmail_proxy'
        WHEN ((e.flags >> 1) & 7) IN (1, 2) THEN 'apple_mail_proxy'
        WHEN ua.user_agent ~* '(Outlook|Microsoft Office)' THEN 'outlook'
        WHEN ua.user_agent ~* '(iPhone|iPad|iPod)' THEN 'ios'
        WHEN ua.user_agent ~* 'Android' THEN 'android'
        WHEN ua.user_agent ~* 'Windows' THEN 'windows'
        WHEN ua.user_agent ~* 'Macintosh' THEN 'macos'
        WHEN ua.user_agent ~* 'Linux' THEN 'linux'
        ELSE 'other' END)::text AS client_class
FROM events e
JOIN campaigns c ON c.id = e.campaign
JOIN schedule_tasks st ON st.id = e.schedule_task
LEFT JOIN deliveries d ON d.delivery_id = e.delivery_id
LEFT JOIN urls u ON u.id = e.url_id AND e.url_id <> 0
LEFT JOIN user_agents ua ON ua.id = e.ua_id AND e.ua_id <> 0
WHERE NOT coalesce(d.is_test, false)
UNION ALL
SELECT
    (CASE d.status WHEN 1 THEN 'message_send' WHEN 2 THEN 'message_bounce'
        WHEN 3 THEN 'message_soft_bounce' WHEN 4 THEN 'message_fail'
        WHEN 5 THEN 'message_suppressed' END)::text,
    coalesce(d.sent_at, d.created_at),
    c.campaign_id,
    st.schedule_task_id,
    d.delivery_id,
    d.user_id,
    (CASE d.channel WHEN 1 THEN 'email' WHEN 2 THEN 'push' WHEN 3 THEN 'line' END)::text,
    NULL::text,
    NULL::smallint,
    d.error_code,
    d.error_message,
    NULL::text,
    false,
    NULL::smallint,
    NULL::text,
    NULL::boolean,
    NULL::text
FROM deliveries d
JOIN campaigns c ON c.id = d.campaign
JOIN schedule_tasks st ON st.id = d.schedule_task
WHERE d.status > 0 AND NOT d.is_test;
