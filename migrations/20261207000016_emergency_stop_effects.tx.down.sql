DROP TABLE emergency_stop_acks;
--bun:split
DROP TABLE emergency_stops;
