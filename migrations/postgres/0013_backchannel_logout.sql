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
);
INSERT INTO session_clients (session_id, client_id)
    SELECT session_id, client_id FROM auth_codes ON CONFLICT DO NOTHING;
INSERT INTO session_clients (session_id, client_id)
    SELECT session_id, client_id FROM refresh_tokens WHERE session_id IS NOT NULL
    ON CONFLICT DO NOTHING;
CREATE FUNCTION tessera_auth_code_session_client() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_clients (session_id, client_id)
        VALUES (NEW.session_id, NEW.client_id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER auth_codes_session_client AFTER INSERT ON auth_codes
    FOR EACH ROW EXECUTE FUNCTION tessera_auth_code_session_client();
-- Purged with the session.
CREATE FUNCTION tessera_session_delete_clients() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM session_clients WHERE session_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER sessions_delete_session_clients AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION tessera_session_delete_clients();

-- Logout tokens still to send: one per (session, client). Deleted once delivered; kept with
-- failed_at when given up on (purged a week later). due_ms: the next attempt (Unix ms), also
-- moved ahead by a claim so that a sender that dies mid-send is retried after a lease.
CREATE TABLE backchannel_deliveries (
    id         BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_ms     BIGINT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    failed_at  BIGINT,
    UNIQUE (session_id, client_id)
);
CREATE INDEX backchannel_deliveries_due ON backchannel_deliveries(due_ms) WHERE failed_at IS NULL;
CREATE INDEX backchannel_deliveries_failed ON backchannel_deliveries(failed_at);
