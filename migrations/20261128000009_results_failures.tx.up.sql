-- The dashboard lists targets that failed recently.
CREATE INDEX results_state_finished_at_idx ON results (state, finished_at);
