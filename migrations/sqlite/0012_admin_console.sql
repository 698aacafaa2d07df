-- Clients managed from the admin console (issue 15): a disabled client gets no token and its
-- tokens stop; a rotated secret keeps its previous one valid until an overlap ends, so services
-- roll to the new one without downtime.
ALTER TABLE clients ADD COLUMN disabled_at INTEGER;
ALTER TABLE clients ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
-- A client's refresh tokens are revoked together when it is disabled.
CREATE INDEX refresh_tokens_client_id ON refresh_tokens(client_id);
-- The overview counts the audit log by time (the last 24 hours and 30 days); the audit page's
-- subject filter uses audit_events_subject (0011).
CREATE INDEX audit_events_at ON audit_events(at);
