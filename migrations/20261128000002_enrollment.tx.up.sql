-- Enrollment tokens: the secret an agent presents with its first request.
-- Only a SHA-256 of the secret is stored. default_groups is comma-separated.
CREATE TABLE enrollment_tokens (
    id             TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    secret_hash    TEXT    NOT NULL UNIQUE,
    default_groups TEXT    NOT NULL DEFAULT '',
    auto_approve   BOOLEAN NOT NULL DEFAULT FALSE,
    max_uses       INTEGER NOT NULL DEFAULT 0,
    uses           INTEGER NOT NULL DEFAULT 0,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    created_at     BIGINT  NOT NULL,
    created_by     TEXT    NOT NULL DEFAULT ''
);
--bun:split
-- The key each pc_id is bound to, and where its enrollment stands:
-- pending, approved, rejected or revoked. groups (comma-separated) are the
-- groups in its credential.
CREATE TABLE agent_keys (
    pc_id          TEXT   NOT NULL PRIMARY KEY,
    public_key     TEXT   NOT NULL UNIQUE,
    status         TEXT   NOT NULL,
    hostname       TEXT   NOT NULL DEFAULT '',
    os             TEXT   NOT NULL DEFAULT '',
    arch           TEXT   NOT NULL DEFAULT '',
    groups         TEXT   NOT NULL DEFAULT '',
    token_id       TEXT   NOT NULL DEFAULT '',
    requested_at   BIGINT NOT NULL,
    decided_at     BIGINT,
    decided_by     TEXT   NOT NULL DEFAULT '',
    reason         TEXT   NOT NULL DEFAULT '',
    jwt_expires_at BIGINT
);
--bun:split
CREATE INDEX agent_keys_status_idx ON agent_keys (status);
--bun:split
-- Keys that may never connect or enroll again.
CREATE TABLE revoked_keys (
    public_key TEXT   NOT NULL PRIMARY KEY,
    pc_id      TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL,
    revoked_by TEXT   NOT NULL DEFAULT ''
);
--bun:split
CREATE INDEX revoked_keys_revoked_at_idx ON revoked_keys (revoked_at);
