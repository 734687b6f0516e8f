-- Client certificate fingerprints (SHA-256, lowercase hex) that let a
-- device authenticate by mutual TLS. A fingerprint belongs to one device.
CREATE TABLE device_certificates (
  fingerprint TEXT PRIMARY KEY,
  device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL
);
CREATE INDEX device_certificates_device ON device_certificates (device_id);
