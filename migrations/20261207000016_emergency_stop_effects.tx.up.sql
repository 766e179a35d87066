-- What each emergency stop did, for the emergency-stop page: the
-- executions it killed and the rollouts it halted (exec_ids,
-- comma-separated). since_at is the stop's "since".
CREATE TABLE emergency_stops (
    since_at   BIGINT NOT NULL PRIMARY KEY,
    stopped_by TEXT   NOT NULL DEFAULT '',
    reason     TEXT   NOT NULL DEFAULT '',
    killed     TEXT   NOT NULL DEFAULT '',
    halted     TEXT   NOT NULL DEFAULT ''
);
--bun:split
-- Each agent's acknowledgement of the emergency stop: the since of the
-- stop its heartbeats say it applies, and when that was first heard.
CREATE TABLE emergency_stop_acks (
    pc_id    TEXT   NOT NULL PRIMARY KEY,
    since_at BIGINT NOT NULL,
    acked_at BIGINT NOT NULL
);
--bun:split
CREATE INDEX emergency_stop_acks_since_idx ON emergency_stop_acks (since_at);
