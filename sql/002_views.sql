-- 002_views: the SQL views for people who write their own queries (F13; the user's
-- guide, with example queries: docs/sql-views.md).
--
-- message_event_log: one row per event and per delivery outcome, test sends excluded.
--   event_name       message_open, message_click, message_unsubscribe, message_subscribe,
--                    message_conversion, and for outcomes message_send (delivered),
--                    message_bounce, message_soft_bounce, message_fail, message_suppressed
--   timestamp        when it happened (outcomes: when the message was sent)
--   campaign_id      the sender's campaign id
--   schedule_task_id the sender's schedule task id
--   delivery_id      the delivery (one message to one user)
--   user_id          the user the delivery went to (members and visitors alike)
--   channel          email, push or line
--   link_url         the clicked URL (message_click only)
--   link_position    the link's position in the message (0-based, clicks only)
--   error_code       outcome error code (F9), NULL for events
--   error_message    outcome error message, NULL for events
--   user_agent       the client's User-Agent header, when one was sent
--   is_head          the hit was a HEAD request (scanners and prefetchers)
-- Filter on "timestamp" and schedule_task_id: both prune (F3).
CREATE VIEW message_event_log AS
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
    (e.flags & 1) = 1 AS is_head
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
    false
FROM deliveries d
JOIN campaigns c ON c.id = d.campaign
JOIN schedule_tasks st ON st.id = d.schedule_task
WHERE d.status > 0 AND NOT d.is_test;

-- campaign_settings: campaign_id, name, channel, status, created_at, updated_at, plus
-- settings (jsonb: UTM tagging, tracking mode, conversion window).
CREATE VIEW campaign_settings AS
SELECT campaign_id, name, channel, status, created_at, updated_at, settings
FROM campaigns;
