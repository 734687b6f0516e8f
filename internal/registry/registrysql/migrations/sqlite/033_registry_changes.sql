-- The registry's change counter (registry.ChangeCounter, read by the
-- refresh-ahead caches of the data path). Every write that can change an
-- answer of the batch reads those caches make increases it in the write's own
-- transaction: DeviceAccess reads a device's existence, key_gen, ingest_rate
-- and ingest_burst, GetSensors every column of a sensor. Triggers, so that no
-- write path can forget it (bulk imports, key rotation, cascades from a
-- deleted user or device, an operator's hand-written SQL). An update that
-- changes none of those device columns (name, description, labels,
-- updated_at) leaves it alone, and so do the frequent writes of other tables
-- (device_state, device_connections, commands, leases, audit events).
CREATE TABLE registry_changes (
  k INTEGER PRIMARY KEY,
  n INTEGER NOT NULL
);
INSERT INTO registry_changes (k, n) VALUES (1, 0);
CREATE TRIGGER devices_insert_changes AFTER INSERT ON devices BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
CREATE TRIGGER devices_delete_changes AFTER DELETE ON devices BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
CREATE TRIGGER devices_update_changes AFTER UPDATE ON devices
WHEN OLD.id IS NOT NEW.id OR OLD.key_gen IS NOT NEW.key_gen
  OR OLD.ingest_rate IS NOT NEW.ingest_rate OR OLD.ingest_burst IS NOT NEW.ingest_burst
BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
CREATE TRIGGER sensors_insert_changes AFTER INSERT ON sensors BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
CREATE TRIGGER sensors_delete_changes AFTER DELETE ON sensors BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
CREATE TRIGGER sensors_update_changes AFTER UPDATE ON sensors BEGIN
  UPDATE registry_changes SET n = n + 1 WHERE k = 1;
END;
