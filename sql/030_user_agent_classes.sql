-- Client, OS and device of each user agent, for the per-client breakdown (F22, issue 9).
-- Filled from tracker.classify.describe() when the shipper first lands a user agent;
-- NULL for rows landed before this migration until they are described. One row per
-- distinct user-agent string, so the breakdown joins events.ua_id to these columns and
-- no event row grows.
ALTER TABLE user_agents
    ADD COLUMN client_family text,
    ADD COLUMN os_family     text,
    ADD COLUMN device_family text,
    -- desktop, mobile, tablet, proxy (an image proxy hides the device), bot, other
    ADD COLUMN device_class  text
        CHECK (device_class IN ('desktop', 'mobile', 'tablet', 'proxy', 'bot', 'other')),
    -- true when hits with this agent never count as people (Apple's prefetch proxy,
    -- scanners, crawlers); image proxies fetch for a real reader and are false
    ADD COLUMN is_bot        boolean;
