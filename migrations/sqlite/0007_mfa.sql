-- Second factors (issue 14). What is stored how, and why: docs/DESIGN.md, "Second factors".
-- A row of mfa_factors is always usable: an authenticator app counts only once confirmed by a
-- code, so its enrolment waits in mfa_pending until then.
CREATE TABLE mfa_factors (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    -- TOTP: the secret encrypted under the master key, and the last time step accepted.
    secret_enc    BLOB,
    last_step     INTEGER,
    -- WebAuthn: the credential id, the serialised credential (JSON), and whether it signs in
    -- alone (a passkey) or only as a second step (a security key).
    credential_id BLOB UNIQUE,
    credential    TEXT,
    passwordless  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_factors_user_id ON mfa_factors(user_id);

CREATE TABLE mfa_pending (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_enc BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX mfa_pending_user_id ON mfa_pending(user_id);
CREATE INDEX mfa_pending_expires_at ON mfa_pending(expires_at);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Browser-bound state of a multi-step ceremony (WebAuthn), found by the keyed hash of a random
-- handle the browser holds, taken once.
CREATE TABLE mfa_ceremonies (
    id_hash    BLOB PRIMARY KEY,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX mfa_ceremonies_user_id ON mfa_ceremonies(user_id);
CREATE INDEX mfa_ceremonies_expires_at ON mfa_ceremonies(expires_at);
