-- The purge finds dead rows through indexes, so a batch costs the same however many rows are
-- stored (before, the OR of expiry and revocation scanned refresh_tokens and sessions whole).
CREATE INDEX refresh_tokens_revoked_at ON refresh_tokens(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_revoked_at ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX account_tokens_expires_at ON account_tokens(expires_at);
