-- OpenID Connect Back-Channel Logout 1.0 (issue 16): where a client wants to hear that a
-- session ended, which clients took part in each session, and the deliveries still to make.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;

-- The clients that were issued a code through a session. Filled by a trigger on auth_codes, in
-- the statement that stores the code: no extra round trip on the authorization path. Every
-- token a session leads to starts with a code, so this is every client of the session.
CREATE TABLE session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO session_clients (session_id, client_id)
    SELECT session_id, client_id FROM auth_codes;
INSERT OR IGNORE INTO session_clients (session_id, client_id)
    SELECT session_id, client_id FROM refresh_tokens WHERE session_id IS NOT NULL;
CREATE TRIGGER auth_codes_session_client AFTER INSERT ON auth_codes
BEGIN
    INSERT OR IGNORE INTO session_clients (session_id, client_id)
        VALUES (NEW.session_id, NEW.client_id);
END;
-- Purged with the session.
CREATE TRIGGER sessions_delete_session_clients AFTER DELETE ON sessions
BEGIN
    DELETE FROM session_clients WHERE session_id = OLD.id;
END;

-- Logout tokens still to send: one per (session, client). Deleted once delivered; kept with
-- failed_at when given up on (purged a week later). due_ms: the next attempt (Unix ms), also
-- moved ahead by a claim so that a sender that dies mid-send is retried after a lease.
CREATE TABLE backchannel_deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    due_ms     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    failed_at  INTEGER,
    UNIQUE (session_id, client_id)
);
CREATE INDEX backchannel_deliveries_due ON backchannel_deliveries(due_ms) WHERE failed_at IS NULL;
CREATE INDEX backchannel_deliveries_failed ON backchannel_deliveries(failed_at);
