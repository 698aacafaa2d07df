-- Clients managed from the admin console (issue 15): a disabled client gets no token and its
-- tokens stop; a rotated secret keeps its previous one valid until an overlap ends, so services
-- roll to the new one without downtime.
ALTER TABLE clients ADD COLUMN disabled_at INTEGER;
ALTER TABLE clients ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
-- A client's refresh tokens are revoked together when it is disabled.
CREATE INDEX refresh_tokens_client_id ON refresh_tokens(client_id);
-- The audit page filters by subject (a user's or client's entries), newest first.
CREATE INDEX audit_events_subject_seq ON audit_events(subject, seq);
