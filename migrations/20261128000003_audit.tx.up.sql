-- The audit log: one row per state-changing action, projected from the
-- AUDIT stream (seq is the stream sequence, so a replay is idempotent).
-- detail is JSON text.
CREATE TABLE audit_log (
    seq    BIGINT NOT NULL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL DEFAULT '',
    detail TEXT   NOT NULL DEFAULT '{}'
);
--bun:split
CREATE INDEX audit_log_at_idx ON audit_log (at);
--bun:split
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);
--bun:split
CREATE INDEX audit_log_action_idx ON audit_log (action, at);
