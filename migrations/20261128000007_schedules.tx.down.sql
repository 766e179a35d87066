DROP TABLE schedule_fires;
--bun:split
DROP TABLE schedules;
