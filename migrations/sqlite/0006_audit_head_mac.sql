-- The audit head's own MAC (over its sequence number and last hash, keyed from the master key),
-- so a database writer cannot delete the tail and move the head back. NULL on an existing head:
-- the next start seals it as it stands (see src/store/sql.rs, seal_audit_head); an empty value
-- marks a head an append found forged, which stays unsealed.
ALTER TABLE audit_head ADD COLUMN head_mac BLOB;
