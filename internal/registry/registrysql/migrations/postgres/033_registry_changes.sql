-- The registry's change counter (registry.ChangeCounter, read by the
-- refresh-ahead caches of the data path). Every write that can change an
-- answer of the batch reads those caches make increases it in the write's own
-- transaction: DeviceAccess reads a device's existence, key_gen, ingest_rate
-- and ingest_burst, GetSensors every column of a sensor. Triggers, so that no
-- write path can forget it (bulk imports, key rotation, cascades from a
-- deleted user or device, TRUNCATE, an operator's hand-written SQL). An update
-- that changes none of those device columns (name, description, labels,
-- updated_at) leaves it alone, and so do the frequent writes of other tables
-- (device_state, device_connections, commands, leases, audit events). The
-- row lock on the counter orders the writes that bump it: each commits a
-- larger value than the last.
CREATE TABLE registry_changes (
  k INTEGER PRIMARY KEY,
  n BIGINT NOT NULL
);
INSERT INTO registry_changes (k, n) VALUES (1, 0);
CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
  RETURN NULL;
END
$$;
CREATE TRIGGER devices_changes AFTER INSERT OR DELETE ON devices
FOR EACH ROW EXECUTE FUNCTION registry_changed();
CREATE TRIGGER devices_update_changes AFTER UPDATE ON devices FOR EACH ROW
WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.key_gen IS DISTINCT FROM NEW.key_gen
  OR OLD.ingest_rate IS DISTINCT FROM NEW.ingest_rate OR OLD.ingest_burst IS DISTINCT FROM NEW.ingest_burst)
EXECUTE FUNCTION registry_changed();
CREATE TRIGGER devices_truncate_changes AFTER TRUNCATE ON devices
FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE TRIGGER sensors_changes AFTER INSERT OR DELETE OR UPDATE ON sensors
FOR EACH ROW EXECUTE FUNCTION registry_changed();
CREATE TRIGGER sensors_truncate_changes AFTER TRUNCATE ON sensors
FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
