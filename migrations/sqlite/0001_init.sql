-- Tessera schema, SQLite. Timestamps are Unix seconds; secrets are keyed hashes or ciphertext.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    roles         TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    secret_hash               BLOB,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    first_party               INTEGER NOT NULL,
    created_at                INTEGER NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    auth_time    INTEGER NOT NULL,
    amr          TEXT NOT NULL,
    user_agent   TEXT,
    ip           TEXT,
    revoked_at   INTEGER
);
CREATE INDEX sessions_user_id ON sessions(user_id);
CREATE INDEX sessions_expires_at ON sessions(expires_at);

CREATE TABLE auth_codes (
    code_hash         BLOB PRIMARY KEY,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    redirect_uri      TEXT NOT NULL,
    scope             TEXT NOT NULL,
    nonce             TEXT,
    code_challenge    TEXT NOT NULL,
    resource          TEXT,
    auth_time         INTEGER NOT NULL,
    amr               TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    used_at           INTEGER,
    family_id         TEXT,
    access_jti        TEXT,
    access_expires_at INTEGER
);
CREATE INDEX auth_codes_expires_at ON auth_codes(expires_at);

CREATE TABLE refresh_tokens (
    token_hash      BLOB PRIMARY KEY,
    family_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT,
    session_id      TEXT,
    scope           TEXT NOT NULL,
    audience        TEXT NOT NULL,
    auth_time       INTEGER,
    amr             TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    successor_hash  BLOB,
    successor_enc   BLOB,
    revoked_at      INTEGER
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens(expires_at);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    activate_at INTEGER NOT NULL,
    expire_at   INTEGER,
    revoked_at  INTEGER
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Append-only, hash-chained audit log. audit_head serialises appends and remembers the last hash,
-- so a deleted tail is detected as well as an edited row.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT,
    subject    TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    last_hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, last_hash) VALUES (1, 0, X'');

-- Revocations that live JWT access tokens must observe, kept until those tokens have expired.
-- Every replica replays this log into memory (and hears new entries over Redis pub/sub).
CREATE TABLE revocation_events (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revocation_events_expires_at ON revocation_events(expires_at);
