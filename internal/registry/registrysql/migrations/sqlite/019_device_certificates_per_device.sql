-- A fingerprint is unique per device, not globally: fingerprints are
-- public, so global uniqueness let anyone register another owner's
-- certificate on their own device first and block the owner. The
-- certificate path looks a fingerprint up together with the device its
-- certificate names. SQLite cannot change a primary key: rebuild.
CREATE TABLE device_certificates_new (
  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  fingerprint TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (device_id, fingerprint)
);
INSERT INTO device_certificates_new (device_id, fingerprint, created_at)
  SELECT device_id, fingerprint, created_at FROM device_certificates;
DROP TABLE device_certificates;
ALTER TABLE device_certificates_new RENAME TO device_certificates;
