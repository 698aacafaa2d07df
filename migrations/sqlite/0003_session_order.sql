-- Sessions created within the same second are ordered by milliseconds (session limits evict the
-- truly oldest).
ALTER TABLE sessions ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
