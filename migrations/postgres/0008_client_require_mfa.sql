-- A client may require a second factor of everyone who signs in to it (`tessera client add
-- --require-mfa`): its codes are issued only to sessions at acr "2". Existing clients do not.
ALTER TABLE clients ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
