-- The revocation feed for offline verifiers (`/ssf/events`): a `user` kind ("every token of this
-- user issued at or before `at`") and the user a session event concerns. (BIGSERIAL never
-- reuses a number; values may become visible out of order, which the feed's cursor handles.)
ALTER TABLE revocation_events ADD COLUMN user_id TEXT;
