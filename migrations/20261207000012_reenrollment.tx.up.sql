-- A known PC that asks to enroll with a new key (reinstalled, or its data
-- directory lost) waits here for an admin, beside the key it is bound to:
-- that key keeps working until the request is approved, when it is revoked.
ALTER TABLE agent_keys ADD COLUMN reenroll_key TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE agent_keys ADD COLUMN reenroll_hostname TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE agent_keys ADD COLUMN reenroll_os TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE agent_keys ADD COLUMN reenroll_arch TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE agent_keys ADD COLUMN reenroll_token_id TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE agent_keys ADD COLUMN reenroll_requested_at BIGINT;
--bun:split
CREATE UNIQUE INDEX agent_keys_reenroll_key_idx ON agent_keys (reenroll_key) WHERE reenroll_key <> '';
