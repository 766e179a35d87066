-- The stable identity of who started an execution (the OIDC subject or
-- the API token's id): four eyes compares it, not the display name.
ALTER TABLE executions ADD COLUMN initiator_subject TEXT NOT NULL DEFAULT '';
