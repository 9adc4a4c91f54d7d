-- 066_codes: the codes stored in events, deliveries and suppressions, by name, for SQL
-- written from now on. Python defines each once (tracker.events.Kind, tracker.tokens
-- .Channel, tracker.store.deliveries.Status, tracker.classify.verdict.Verdict and its
-- PEOPLE); these functions define each once for SQL, and tests/test_codes.py holds the
-- two to each other, every member both ways. Write `e.kind = tracker_kind_click()`,
-- never `e.kind = 2`.
--
-- Each is a constant SQL function, IMMUTABLE and PARALLEL SAFE: PostgreSQL inlines it
-- and folds it to its constant while planning, so a query that spells a code by name
-- plans exactly as if it spelled the number, and still matches partial indexes written
-- with the number (`events_click_delivery_url ... WHERE kind = 2`; tests/test_codes.py
-- compares the plans). They return integer, as a number written in SQL is: the folded
-- comparison is then the very one the index predicate holds (smallint = integer).
-- Add a member here and in Python together; never renumber (stored rows keep theirs).
-- Migrations before this one spell codes as numbers: they are history.

-- events.kind
CREATE FUNCTION tracker_kind_open() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 1;
CREATE FUNCTION tracker_kind_click() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 2;
CREATE FUNCTION tracker_kind_unsubscribe() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 3;
CREATE FUNCTION tracker_kind_subscribe() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 4;
CREATE FUNCTION tracker_kind_conversion() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 5;

-- deliveries.channel, suppressions.channel (campaigns.channel holds the names)
CREATE FUNCTION tracker_channel_email() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 1;
CREATE FUNCTION tracker_channel_push() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 2;
CREATE FUNCTION tracker_channel_line() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 3;

-- deliveries.status, outcome_history.status
CREATE FUNCTION tracker_status_prepared() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 0;
CREATE FUNCTION tracker_status_delivered() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 1;
CREATE FUNCTION tracker_status_bounced() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 2;
CREATE FUNCTION tracker_status_soft_bounced() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 3;
CREATE FUNCTION tracker_status_failed() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 4;
CREATE FUNCTION tracker_status_suppressed() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 5;

-- the classifier's verdict, bits 1-3 of events.flags (tracker_verdict(flags) reads it)
CREATE FUNCTION tracker_verdict_human() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 0;
CREATE FUNCTION tracker_verdict_machine_open() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 1;
CREATE FUNCTION tracker_verdict_proxied_open() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 2;
CREATE FUNCTION tracker_verdict_scanner_click() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 3;
CREATE FUNCTION tracker_verdict_other_bot() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN 4;

-- events.flags: bit 0 a HEAD request, bits 1-3 the verdict (tracker.events.Flag)
CREATE FUNCTION tracker_is_head(flags smallint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN (flags & 1) = 1;
CREATE FUNCTION tracker_verdict(flags smallint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN (flags >> 1) & 7;

-- The human predicate (sql/060), restated by name: not a HEAD request, and a verdict the
-- reports count as people (tracker.classify.verdict.PEOPLE). The same function, so
-- everything that calls it (tracker_fold_links, tracker_fold_firsts) is unchanged.
CREATE OR REPLACE FUNCTION tracker_is_human(flags smallint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NOT tracker_is_head(flags)
       AND tracker_verdict(flags) IN (tracker_verdict_human(), tracker_verdict_proxied_open());

-- message_event_log (F13) as sql/057 left it, restated with the codes by name: the same
-- columns, rows and plan (every name folds into its number).
CREATE OR REPLACE VIEW message_event_log AS
SELECT
    (CASE e.kind WHEN tracker_kind_open() THEN 'message_open'
        WHEN tracker_kind_click() THEN 'message_click'
        WHEN tracker_kind_unsubscribe() THEN 'message_unsubscribe'
        WHEN tracker_kind_subscribe() THEN 'message_subscribe'
        WHEN tracker_kind_conversion() THEN 'message_conversion' END)::text AS event_name,
    e.ts AS "timestamp",
    c.campaign_id,
    st.schedule_task_id,
    e.delivery_id,
    d.user_id,
    (CASE coalesce(d.channel, 0) WHEN tracker_channel_email() THEN 'email'
        WHEN tracker_channel_push() THEN 'push' WHEN tracker_channel_line() THEN 'line'
        ELSE c.channel END)::text AS channel,
    u.url AS link_url,
    e.link_position,
    NULL::text AS error_code,
    NULL::text AS error_message,
    ua.user_agent,
    tracker_is_head(e.flags) AS is_head,
    e.kind AS kind_code,
    (CASE tracker_verdict(e.flags) WHEN tracker_verdict_human() THEN 'human'
        WHEN tracker_verdict_machine_open() THEN 'machine_open'
        WHEN tracker_verdict_proxied_open() THEN 'proxied_open'
        WHEN tracker_verdict_scanner_click() THEN 'scanner_click' ELSE 'other_bot' END)::text
        AS verdict,
    tracker_is_human(e.flags) AS is_human,
    (CASE
        WHEN ua.user_agent IS NULL THEN 'unknown'
        WHEN tracker_verdict(e.flags) IN (tracker_verdict_scanner_click(),
                                          tracker_verdict_other_bot())
             OR ua.user_agent ~* '(bot|crawl|spider|scan)'
            THEN 'bot'
        WHEN ua.user_agent ~* 'GoogleImageProxy' THEN 'gmail_proxy'
        WHEN tracker_verdict(e.flags) IN (tracker_verdict_machine_open(),
                                          tracker_verdict_proxied_open())
            THEN 'apple_mail_proxy'
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
    (CASE d.status WHEN tracker_status_delivered() THEN 'message_send'
        WHEN tracker_status_bounced() THEN 'message_bounce'
        WHEN tracker_status_soft_bounced() THEN 'message_soft_bounce'
        WHEN tracker_status_failed() THEN 'message_fail'
        WHEN tracker_status_suppressed() THEN 'message_suppressed' END)::text,
    coalesce(d.sent_at, d.created_at),
    c.campaign_id,
    st.schedule_task_id,
    d.delivery_id,
    d.user_id,
    (CASE d.channel WHEN tracker_channel_email() THEN 'email'
        WHEN tracker_channel_push() THEN 'push' WHEN tracker_channel_line() THEN 'line'
        END)::text,
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
WHERE d.status > tracker_status_prepared() AND NOT d.is_test;
