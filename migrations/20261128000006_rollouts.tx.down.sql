ALTER TABLE executions DROP COLUMN wave_deadline_ms;
--bun:split
ALTER TABLE executions DROP COLUMN halt_reason;
--bun:split
ALTER TABLE executions DROP COLUMN four_eyes;
--bun:split
ALTER TABLE results DROP COLUMN wave;
--bun:split
DROP TABLE waves;
