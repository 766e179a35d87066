DROP INDEX executions_outcome_idx;
--bun:split
ALTER TABLE executions DROP COLUMN outcome;
--bun:split
ALTER TABLE executions DROP COLUMN title;
