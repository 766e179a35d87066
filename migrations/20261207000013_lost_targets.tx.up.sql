-- The exec_ids an agent's last heartbeat listed as running, comma-separated
-- and sorted (complete only when their number is running): a running target
-- its agent no longer lists, past its timeout and a grace, ends as lost.
ALTER TABLE agents ADD COLUMN running_execs TEXT NOT NULL DEFAULT '';
--bun:split
-- Lost targets are failures on the dashboard too.
DROP INDEX results_failures_idx;
--bun:split
CREATE INDEX results_failures_idx ON results (finished_at) WHERE state IN ('failed', 'timed_out', 'lost');
