-- 057_outcome_event_times: outcomes follow the times of their own events, not the
-- order they arrive in (SNS does not keep order for HTTP endpoints: an SES Delivery
-- stamped 00:40:30 may arrive after the Bounce stamped 00:41:02).
--
-- outcome_history.occurred_at  when the outcome's event happened: SES bounce.timestamp,
--                              delivery.timestamp (mail.timestamp for Reject and
--                              Rendering Failure); /v1/outcomes occurred_at, or the
--                              arrival time (received_at) when the sender gives none.
--                              NULL on rows stored before 057: read as received_at.
-- deliveries.occurred_at       the event time of the delivery's current outcome: the one
--                              of its history with the latest event time (ties: the
--                              later arrival, seq). NULL until an outcome arrives after
--                              057 (or for deliveries never given one).
--
-- Both columns are nullable without a default, so adding them rewrites nothing and
-- fires no trigger (the counters of 040 and 055 read other columns only).
ALTER TABLE outcome_history ADD COLUMN IF NOT EXISTS occurred_at timestamptz;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS occurred_at timestamptz;

-- message_event_log (F13), as in 020 plus one last column:
--   occurred_at   when the event happened: events.ts for opens, clicks, unsubscribes,
--                 subscribes and conversions; for an outcome row the event time of the
--                 delivery's current outcome (e.g. when it bounced), NULL if unknown.
--   "timestamp" stays the send time for outcome rows, so a period filter on it counts
--   the outcomes the reports count (outcomes by the period they were sent in, F4/F6).
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
        ELSE 'other' END)::text AS client_class,
    e.ts AS occurred_at
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
    NULL::text,
    d.occurred_at
FROM deliveries d
JOIN campaigns c ON c.id = d.campaign
JOIN schedule_tasks st ON st.id = d.schedule_task
WHERE d.status > 0 AND NOT d.is_test;
