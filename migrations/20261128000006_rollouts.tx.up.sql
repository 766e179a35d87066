-- Rollouts: executions of a manifest with waves. Each wave's state lives
-- here so that a restarted server resumes exactly where it was. Thresholds
-- are "3" or "10%" ('' = none). ready_at is when the wave's delay ends
-- (NULL until the previous wave finished).
CREATE TABLE waves (
    exec_id      TEXT    NOT NULL,
    idx          INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    approval     BOOLEAN NOT NULL DEFAULT FALSE,
    delay_ms     BIGINT  NOT NULL DEFAULT 0,
    max_failures TEXT    NOT NULL DEFAULT '',
    min_success  TEXT    NOT NULL DEFAULT '',
    target_count INTEGER NOT NULL DEFAULT 0,
    ready_at     BIGINT,
    approved_by  TEXT    NOT NULL DEFAULT '',
    approved_at  BIGINT,
    started_at   BIGINT,
    finished_at  BIGINT,
    deadline_at  BIGINT,
    reason       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (exec_id, idx)
);
--bun:split
CREATE INDEX waves_state_idx ON waves (state);
--bun:split
-- The wave a target belongs to (NULL: not a rollout).
ALTER TABLE results ADD COLUMN wave INTEGER;
--bun:split
-- Rollout facts of an execution: four-eyes, why it halted, and how long
-- each wave's targets may stay offline (deadline_at is NULL for rollouts:
-- each wave has its own).
ALTER TABLE executions ADD COLUMN four_eyes BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
ALTER TABLE executions ADD COLUMN halt_reason TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE executions ADD COLUMN wave_deadline_ms BIGINT NOT NULL DEFAULT 0;
