-- The revocation feed for offline verifiers (`/ssf/events`): a `user` kind ("every token of this
-- user issued at or before `at`") and the user a session event concerns. The table is rebuilt
-- with AUTOINCREMENT: without it SQLite hands out MAX(seq) + 1, so once the purge has emptied
-- the log (or removed its newest rows) a sequence number would be used twice, and a reader whose
-- cursor is past it (a verifier, a replica) would never see the new entry.
CREATE TABLE revocation_events_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_id    TEXT
);
INSERT INTO revocation_events_new (seq, kind, subject, at, expires_at)
    SELECT seq, kind, subject, at, expires_at FROM revocation_events;
DROP TABLE revocation_events;
ALTER TABLE revocation_events_new RENAME TO revocation_events;
CREATE INDEX revocation_events_expires_at ON revocation_events(expires_at);
