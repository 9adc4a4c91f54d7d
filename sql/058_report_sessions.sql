-- Report page sessions, so that signing out ends one for every worker at once.
-- The cookie stays a signed, timestamped token (tracker/web/session.py); it now also
-- names a row here, which sign-in creates and sign-out deletes. Rows past their
-- expiry are deleted at the next sign-in.
CREATE TABLE IF NOT EXISTS report_sessions (
    id bytea PRIMARY KEY,            -- 16 random bytes, named by the cookie
    expires_at timestamptz NOT NULL
);
