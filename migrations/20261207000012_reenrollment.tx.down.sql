DROP INDEX IF EXISTS agent_keys_reenroll_key_idx;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_requested_at;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_token_id;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_arch;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_os;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_hostname;
--bun:split
ALTER TABLE agent_keys DROP COLUMN reenroll_key;
