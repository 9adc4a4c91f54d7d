-- 001_base: campaigns, schedule tasks, deliveries, the event log and its dictionaries.
-- Fn below are the reporting rules of docs/figures.md (e.g. F3: docs/figures.md#f3).
--
-- Design rules:
--   * Sender ids (campaign_id, schedule_task_id, user_id) are text, as the sender
--     gives them. Links carry the tracker's small integer ids instead, so tokens
--     stay short and events stay narrow.
--   * Events are append-only, partitioned by month on ts (F3, F10: never deleted),
--     with columns ordered widest first so rows carry no alignment padding.
--   * User agents and link URLs are stored once, in dictionary tables keyed by a
--     64-bit hash of their bytes, so the edge can name them without a lookup.

CREATE TABLE campaigns (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- internal id, carried in tokens
    campaign_id text        NOT NULL UNIQUE,                       -- the sender's id
    name        text        NOT NULL DEFAULT '',
    channel     text        NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'push', 'line')),
    status      text        NOT NULL DEFAULT 'active',
    settings    jsonb       NOT NULL DEFAULT '{}'::jsonb,          -- UTM, tracking mode, conversion window
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schedule_tasks (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- internal id, carried in tokens
    campaign         integer     NOT NULL REFERENCES campaigns (id),
    schedule_task_id text        NOT NULL,                              -- the sender's id
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign, schedule_task_id)
);

-- Delivery ids are minted in blocks: one nextval reserves 1000 ids for one process,
-- so minting costs no round trip per message and ids stay small (short tokens).
CREATE SEQUENCE delivery_id_blocks AS bigint START WITH 1000 INCREMENT BY 1000;

-- status: 0 prepared (rewritten, no outcome yet), 1 delivered, 2 bounced (hard),
--         3 soft_bounced, 4 failed, 5 suppressed (refused at send time, F14)
CREATE TABLE deliveries (
    delivery_id   bigint      PRIMARY KEY,
    campaign      integer     NOT NULL REFERENCES campaigns (id),
    schedule_task integer     NOT NULL REFERENCES schedule_tasks (id),
    sent_at       timestamptz,                     -- from the outcome; NULL until one arrives
    created_at    timestamptz NOT NULL DEFAULT now(),
    channel       smallint    NOT NULL,            -- 1 email, 2 push, 3 line
    status        smallint    NOT NULL DEFAULT 0,
    has_html      boolean,                         -- a pixel went out, so opens are measurable (F8)
    is_test       boolean     NOT NULL DEFAULT false,
    user_id       text        NOT NULL,
    error_code    text,
    error_message text
);
CREATE INDEX deliveries_campaign_sent ON deliveries (campaign, sent_at);
CREATE INDEX deliveries_sent ON deliveries (sent_at);
CREATE INDEX deliveries_user ON deliveries (user_id);

-- Every outcome ever posted for a delivery, newest superseding older ones in
-- deliveries.status; kept so the history of a delivery can be read back.
CREATE TABLE outcome_history (
    delivery_id   bigint      NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    status        smallint    NOT NULL,
    error_code    text,
    error_message text
);
CREATE INDEX outcome_history_delivery ON outcome_history (delivery_id, received_at);

-- kind: 1 message_open, 2 message_click, 3 message_unsubscribe, 4 message_subscribe,
--       5 message_conversion
-- flags: bit 0 HEAD request, bits 1-3 verdict (0 human, 1 machine open, 2 proxied open,
--        3 scanner click, 4 other bot), bit 4 anonymous (tracking mode anonymous)
CREATE TABLE events (
    ts            timestamptz NOT NULL,
    delivery_id   bigint      NOT NULL,
    url_id        bigint      NOT NULL DEFAULT 0,  -- urls.id, 0 when not a click
    ua_id         bigint      NOT NULL DEFAULT 0,  -- user_agents.id, 0 when none was sent
    campaign      integer     NOT NULL,
    schedule_task integer     NOT NULL,
    kind          smallint    NOT NULL,
    flags         smallint    NOT NULL DEFAULT 0,
    link_position smallint    NOT NULL DEFAULT 0
) PARTITION BY RANGE (ts);

-- One index serves both filters of F3 (schedule task, then time); BRIN on time is
-- nearly free and lets a plain time range skip blocks inside a partition.
CREATE INDEX events_task_ts ON events (schedule_task, ts);
CREATE INDEX events_campaign_ts ON events (campaign, ts);
CREATE INDEX events_ts_brin ON events USING brin (ts);

CREATE TABLE urls (
    id  bigint PRIMARY KEY,   -- first 8 bytes of BLAKE2b(url) as a signed integer
    url text   NOT NULL
);

CREATE TABLE user_agents (
    id         bigint PRIMARY KEY,  -- first 8 bytes of BLAKE2b(user agent) as a signed integer
    user_agent text   NOT NULL
);

-- How far each journal has been shipped; updated in the same transaction as the
-- rows it covers, which is what makes shipping exactly-once.
CREATE TABLE journal_positions (
    journal    text        PRIMARY KEY,
    segment    bigint      NOT NULL,
    "offset"   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Monthly partitions are made on demand by the shipper (and by migrations for the
-- current month); the advisory lock keeps two workers from racing on the DDL.
CREATE FUNCTION tracker_ensure_month_partition(month_start date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', month_start)::date;
    part text := format('events_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tracker_ensure_month_partition'));
    IF to_regclass(part) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            part, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END IF;
END $$;

SELECT tracker_ensure_month_partition((now() AT TIME ZONE 'UTC')::date);
SELECT tracker_ensure_month_partition(((now() AT TIME ZONE 'UTC') + interval '1 month')::date);

-- Suppression list (F14): one row per user and channel while suppressed.
-- reason: hard_bounce, unsubscribe, complaint, token_not_registered, import
CREATE TABLE suppressions (
    user_id text        NOT NULL,
    channel smallint    NOT NULL,
    reason  text        NOT NULL,
    since   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel)
);
