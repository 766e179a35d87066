ALTER TABLE agents DROP COLUMN cpu_percent;
--bun:split
ALTER TABLE agents DROP COLUMN rss_bytes;
