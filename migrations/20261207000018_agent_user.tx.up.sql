-- Who is logged on at each PC, as its latest heartbeat said ('' when
-- nobody is or the agent does not tell).
ALTER TABLE agents ADD COLUMN logged_on_user TEXT NOT NULL DEFAULT '';
