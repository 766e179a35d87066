DROP INDEX results_failures_idx;
--bun:split
CREATE INDEX results_state_finished_at_idx ON results (state, finished_at);
