-- Schedules created in the GUI or the API (those in the jobs directory
-- live in their files). target is JSON text ('' = the job's own target).
CREATE TABLE schedules (
    id          TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL DEFAULT '',
    cron        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL DEFAULT '',
    job_id      TEXT    NOT NULL,
    target      TEXT    NOT NULL DEFAULT '',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
--bun:split
-- One row per fire of a schedule (its cron instant). Inserting the row is
-- the claim: whoever inserts it fires, so an instant fires once across
-- server processes and restarts. status: firing, fired, suppressed, failed.
CREATE TABLE schedule_fires (
    schedule_id TEXT   NOT NULL,
    fire_at     BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    exec_id     TEXT   NOT NULL DEFAULT '',
    reason      TEXT   NOT NULL DEFAULT '',
    claimed_at  BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, fire_at)
);
