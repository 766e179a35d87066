ALTER TABLE enrollment_tokens DROP COLUMN allow_groups;
--bun:split
ALTER TABLE enrollment_tokens DROP COLUMN nats_user;
