DROP INDEX results_failures_idx;
--bun:split
CREATE INDEX results_failures_idx ON results (finished_at) WHERE state IN ('failed', 'timed_out');
--bun:split
ALTER TABLE agents DROP COLUMN running_execs;
