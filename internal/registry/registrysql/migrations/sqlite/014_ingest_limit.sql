-- Per-device ingest limit overrides (0: the platform default).
ALTER TABLE devices ADD COLUMN ingest_rate DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN ingest_burst BIGINT NOT NULL DEFAULT 0;
