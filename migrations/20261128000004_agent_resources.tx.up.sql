-- What agents report about their own process in heartbeats: resident
-- memory and CPU use since the previous heartbeat (100 = one core). NULL
-- until an agent reports them.
ALTER TABLE agents ADD COLUMN rss_bytes BIGINT;
--bun:split
ALTER TABLE agents ADD COLUMN cpu_percent DOUBLE PRECISION;
