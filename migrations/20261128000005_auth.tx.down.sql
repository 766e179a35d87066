DROP TABLE sessions;
--bun:split
DROP TABLE api_tokens;
