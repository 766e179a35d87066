-- Agents as last reported by their heartbeats. Times are unix milliseconds.
CREATE TABLE agents (
    pc_id         TEXT    NOT NULL PRIMARY KEY,
    hostname      TEXT    NOT NULL DEFAULT '',
    os            TEXT    NOT NULL DEFAULT '',
    os_version    TEXT    NOT NULL DEFAULT '',
    arch          TEXT    NOT NULL DEFAULT '',
    agent_version TEXT    NOT NULL DEFAULT '',
    protocol      INTEGER NOT NULL DEFAULT 0,
    interval_ms   BIGINT  NOT NULL DEFAULT 0,
    running       INTEGER NOT NULL DEFAULT 0,
    first_seen    BIGINT  NOT NULL,
    last_seen     BIGINT  NOT NULL,
    offline_after BIGINT  NOT NULL
);
--bun:split
CREATE INDEX agents_offline_after_idx ON agents (offline_after);
--bun:split
-- The groups each agent reported, one row per (agent, group).
CREATE TABLE agent_groups (
    pc_id      TEXT NOT NULL REFERENCES agents (pc_id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (pc_id, group_name)
);
--bun:split
CREATE INDEX agent_groups_group_name_idx ON agent_groups (group_name);
--bun:split
-- One run of one job against a target. target is JSON text; durations are
-- milliseconds; NULL times are unset.
CREATE TABLE executions (
    exec_id           TEXT   NOT NULL PRIMARY KEY,
    job_id            TEXT   NOT NULL,
    version           TEXT   NOT NULL DEFAULT '',
    shell             TEXT   NOT NULL DEFAULT '',
    script            TEXT   NOT NULL DEFAULT '',
    timeout_ms        BIGINT NOT NULL DEFAULT 0,
    jitter_ms         BIGINT NOT NULL DEFAULT 0,
    target            TEXT   NOT NULL DEFAULT '{}',
    initiated_by      TEXT   NOT NULL DEFAULT '',
    status            TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    deadline_at       BIGINT,
    finished_at       BIGINT,
    kill_requested_at BIGINT,
    kill_requested_by TEXT   NOT NULL DEFAULT ''
);
--bun:split
CREATE INDEX executions_created_at_idx ON executions (created_at);
--bun:split
CREATE INDEX executions_job_id_idx ON executions (job_id);
--bun:split
CREATE INDEX executions_status_idx ON executions (status);
--bun:split
-- The state of one target (PC) of an execution. by_server marks states the
-- server wrote (expired, killed before it started), which a later agent
-- report may replace. No foreign key to executions: results are projected
-- from a stream and may arrive for an execution this database never saw.
CREATE TABLE results (
    exec_id     TEXT    NOT NULL,
    pc_id       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    exit_code   INTEGER,
    stdout      TEXT    NOT NULL DEFAULT '',
    stderr      TEXT    NOT NULL DEFAULT '',
    truncated   BOOLEAN NOT NULL DEFAULT FALSE,
    started_at  BIGINT,
    finished_at BIGINT,
    updated_at  BIGINT  NOT NULL,
    by_server   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (exec_id, pc_id)
);
--bun:split
CREATE INDEX results_pc_id_idx ON results (pc_id);
--bun:split
CREATE INDEX results_exec_id_state_idx ON results (exec_id, state);
