-- One row the health check rewrites every few seconds: proof that the
-- database still takes writes (a full disk makes the write fail).
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
