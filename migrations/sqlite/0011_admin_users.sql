-- The admin console's user list (issue 15): sorted by creation or last sign-in, newest first,
-- paged by keyset (sort key, id), so the first page over many users reads a few index entries.
--
-- last_signin_at: when the user last signed in (0: never), kept by a trigger on every new
-- session (a session is only ever created by a completed sign-in), so no sign-in path can forget
-- it and it outlives the purge of old sessions. Filled from the sessions still stored.
ALTER TABLE users ADD COLUMN last_signin_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET last_signin_at = COALESCE(
    (SELECT MAX(s.created_at) FROM sessions s WHERE s.user_id = users.id), 0);
CREATE TRIGGER sessions_last_signin AFTER INSERT ON sessions
BEGIN
    UPDATE users SET last_signin_at = NEW.created_at
    WHERE id = NEW.user_id AND last_signin_at < NEW.created_at;
END;
CREATE INDEX users_created ON users(created_at, id);
CREATE INDEX users_last_signin ON users(last_signin_at, id);

-- A user's page shows the newest audit entries about them.
CREATE INDEX audit_events_subject ON audit_events(subject, seq);
-- Lock-outs recorded in the audit log: the candidates of the "locked" filter (the shared
-- counters say whether each lock still holds). Partial: only lock entries are indexed.
CREATE INDEX audit_events_locks ON audit_events(at) WHERE action IN ('signin.locked', 'mfa.locked');
