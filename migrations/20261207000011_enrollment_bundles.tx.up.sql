-- Every enrollment token has a broker user of its own (the public key of
-- the nkey in its bundle), revoked at the broker with the token; and the
-- groups an enrolling PC may ask for with it ("*": any).
ALTER TABLE enrollment_tokens ADD COLUMN nats_user TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE enrollment_tokens ADD COLUMN allow_groups TEXT NOT NULL DEFAULT '';
