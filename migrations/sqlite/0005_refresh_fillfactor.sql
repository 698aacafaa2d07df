-- PostgreSQL only (page fill factor for in-place updates); SQLite has no such setting.
SELECT 1;
