-- When all of a user's sessions were last ended (sign out everywhere, a new password,
-- reset-mfa, disabling). A pending second step created before it (an earlier second) can no longer be
-- completed nor put back (docs/DESIGN.md, "Second factors"). NULL: never.
ALTER TABLE users ADD COLUMN sessions_ended_at BIGINT;
