-- Tessera schema, PostgreSQL. Timestamps are Unix seconds; secrets are keyed hashes or ciphertext.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    roles         TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    secret_hash               BYTEA,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    first_party               BIGINT NOT NULL,
    created_at                BIGINT NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,
    user_agent   TEXT,
    ip           TEXT,
    revoked_at   BIGINT
);
CREATE INDEX sessions_user_id ON sessions(user_id);
CREATE INDEX sessions_expires_at ON sessions(expires_at);

CREATE TABLE auth_codes (
    code_hash         BYTEA PRIMARY KEY,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    redirect_uri      TEXT NOT NULL,
    scope             TEXT NOT NULL,
    nonce             TEXT,
    code_challenge    TEXT NOT NULL,
    resource          TEXT,
    auth_time         BIGINT NOT NULL,
    amr               TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    used_at           BIGINT,
    family_id         TEXT,
    access_jti        TEXT,
    access_expires_at BIGINT
);
CREATE INDEX auth_codes_expires_at ON auth_codes(expires_at);

CREATE TABLE refresh_tokens (
    token_hash      BYTEA PRIMARY KEY,
    family_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT,
    session_id      TEXT,
    scope           TEXT NOT NULL,
    audience        TEXT NOT NULL,
    auth_time       BIGINT,
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    rotated_at      BIGINT,
    successor_hash  BYTEA,
    successor_enc   BYTEA,
    revoked_at      BIGINT
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens(session_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens(expires_at);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BYTEA NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    activate_at BIGINT NOT NULL,
    expire_at   BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Append-only, hash-chained audit log. audit_head serialises appends and remembers the last hash,
-- so a deleted tail is detected as well as an edited row.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT,
    subject    TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE TABLE audit_head (
    id        BIGINT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    last_hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, last_hash) VALUES (1, 0, ''::bytea);

-- Revocations that live JWT access tokens must observe, kept until those tokens have expired.
-- Every replica replays this log into memory (and hears new entries over Redis pub/sub).
CREATE TABLE revocation_events (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocation_events_expires_at ON revocation_events(expires_at);
