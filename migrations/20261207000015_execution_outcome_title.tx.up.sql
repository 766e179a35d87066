-- What a person calls an execution: a ticket number, "printer queue on
-- PC-042". Optional; shown in lists and searched.
ALTER TABLE executions ADD COLUMN title TEXT NOT NULL DEFAULT '';
--bun:split
-- The execution's outcome (store.Outcome: succeeded, failed, …), kept by
-- the store from its status and targets so that lists filter by it; ''
-- until the store has computed it.
ALTER TABLE executions ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
--bun:split
CREATE INDEX executions_outcome_idx ON executions (outcome, created_at);
