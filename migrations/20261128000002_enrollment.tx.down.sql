DROP TABLE IF EXISTS revoked_keys;
--bun:split
DROP TABLE IF EXISTS agent_keys;
--bun:split
DROP TABLE IF EXISTS enrollment_tokens;
