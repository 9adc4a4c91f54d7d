-- 010_ingest: what the ingest API (outcomes, SES, conversions) needs beyond 001.

-- A reliable order for a delivery's outcome history: received_at is the same for
-- every row of one batch (one transaction), seq is not.
ALTER TABLE outcome_history ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX outcome_history_delivery_seq ON outcome_history (delivery_id, seq);

-- Raw conversions as posted (F11, F16), with their attribution or none.
-- Unattributed ones stay here only; attributed ones are also message_conversion
-- events (kind 5) carrying the click's delivery, campaign and schedule task.
-- The same (user_id, name, ts) posted again is the same conversion: kept once.
CREATE TABLE conversions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    ts            timestamptz NOT NULL,
    user_id       text        NOT NULL,
    name          text        NOT NULL,
    value         numeric,
    delivery_id   bigint,      -- the attributed click's delivery, NULL when unattributed
    campaign      integer,     -- campaigns.id of that delivery
    schedule_task integer,
    click_ts      timestamptz, -- when the attributed click happened
    UNIQUE (user_id, name, ts)
);
CREATE INDEX conversions_campaign_ts ON conversions (campaign, ts) WHERE campaign IS NOT NULL;

-- Attribution looks for a user's last click before a conversion: clicks by delivery.
CREATE INDEX events_click_delivery_ts ON events (delivery_id, ts) WHERE kind = 2;

-- SNS subscription confirmations for /v1/ses: recorded (and logged) so an operator
-- can confirm by hand; this service never fetches the URL itself.
CREATE TABLE ses_subscriptions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    type          text        NOT NULL,  -- SubscriptionConfirmation or UnsubscribeConfirmation
    topic_arn     text,
    subscribe_url text,
    message_id    text,
    body          jsonb       NOT NULL
);

-- Every SES notification received, with what became of it (an outcome applied,
-- a suppression, or why it was ignored), for audit and replay.
CREATE TABLE ses_notifications (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    type        text        NOT NULL,  -- Bounce, Complaint, Delivery, ...
    message_id  text,                  -- SES mail.messageId
    delivery_id bigint,
    result      text        NOT NULL,  -- applied, ignored: <why>
    body        jsonb       NOT NULL
);
CREATE INDEX ses_notifications_delivery ON ses_notifications (delivery_id);
