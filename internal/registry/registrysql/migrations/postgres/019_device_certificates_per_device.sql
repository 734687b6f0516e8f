-- A fingerprint is unique per device, not globally: fingerprints are
-- public, so global uniqueness let anyone register another owner's
-- certificate on their own device first and block the owner. The
-- certificate path looks a fingerprint up together with the device its
-- certificate names.
ALTER TABLE device_certificates DROP CONSTRAINT device_certificates_pkey;
ALTER TABLE device_certificates ADD PRIMARY KEY (device_id, fingerprint);
DROP INDEX IF EXISTS device_certificates_device;
