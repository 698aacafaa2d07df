-- Counts how many times all of a user's sessions were ended (sign out everywhere, a new
-- password, reset-mfa, disabling): raised with `sessions_ended_at`. A pending second step kept
-- in the browser carries the count it began under and completes only while it is unchanged
-- (docs/DESIGN.md, "Second factors"), exact whatever the clocks say.
ALTER TABLE users ADD COLUMN sessions_epoch BIGINT NOT NULL DEFAULT 0;
