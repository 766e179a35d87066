-- The dashboard's recent failures only ever read failed and timed-out
-- targets: a partial index leaves the other (most) result writes alone.
DROP INDEX results_state_finished_at_idx;
--bun:split
CREATE INDEX results_failures_idx ON results (finished_at) WHERE state IN ('failed', 'timed_out');
