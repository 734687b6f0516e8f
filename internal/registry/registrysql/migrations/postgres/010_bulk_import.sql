ALTER TABLE devices ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX devices_external_id ON devices (owner_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX devices_owner_id ON devices (owner_id, id)
