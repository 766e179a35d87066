-- API tokens for scripts (Authorization: Bearer). Only a SHA-256 (hex) of
-- the token is stored. audit_pending / revoke_audit_pending mark tokens
-- created / revoked on the server host with `kanade token`, whose audit
-- events the server publishes when it next runs.
CREATE TABLE api_tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    secret_hash   TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT '',
    expires_at    BIGINT,
    revoked_at    BIGINT,
    revoked_by    TEXT    NOT NULL DEFAULT '',
    last_used_at  BIGINT,
    audit_pending BOOLEAN NOT NULL DEFAULT FALSE,
    revoke_audit_pending BOOLEAN NOT NULL DEFAULT FALSE
);
--bun:split
-- Signed-in browser sessions. The cookie carries a random id; only its
-- SHA-256 is stored, so a database dump cannot be replayed as a cookie.
-- Deleting the row ends the session on its next request.
CREATE TABLE sessions (
    id_hash      TEXT   NOT NULL PRIMARY KEY,
    subject      TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    display      TEXT   NOT NULL DEFAULT '',
    email        TEXT   NOT NULL DEFAULT '',
    role         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
--bun:split
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
