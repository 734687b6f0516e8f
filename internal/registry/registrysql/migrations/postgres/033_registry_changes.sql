-- The registry's change counter (registry.ChangeCounter, read by the
-- refresh-ahead caches of the data path). Every write that can change an
-- answer of the batch reads those caches make increases it in the write's own
-- transaction: DeviceAccess reads a device's existence, key_gen, ingest_rate
-- and ingest_burst, GetSensors every column of a sensor. Triggers, so that no
-- write path can forget it (bulk imports, key rotation, cascades from a
-- deleted user or device, TRUNCATE, an operator's hand-written SQL). An update
-- that changes none of those device columns (name, description, labels,
-- updated_at) leaves it alone, and so do the frequent writes of other tables
-- (device_state, device_connections, commands, leases, audit events).
--
-- The counter is one row: the writes that bump it take its lock and commit
-- one after the other, each a larger value. The triggers are deferred to the
-- commit, so that lock is the last a transaction takes and it waits for no
-- other lock while holding it (taken at the statement, a bulk import holding
-- it would wait for a concurrent insert of one of its names, which waits for
-- the counter: a deadlock). xid makes one increase per transaction, however
-- many rows it wrote.
CREATE TABLE registry_changes (
  k INTEGER PRIMARY KEY,
  n BIGINT NOT NULL,
  xid BIGINT NOT NULL DEFAULT 0
);
INSERT INTO registry_changes (k, n) VALUES (1, 0);
CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE registry_changes SET n = n + 1, xid = txid_current() WHERE k = 1 AND xid <> txid_current();
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER devices_changes AFTER INSERT OR DELETE ON devices
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION registry_changed();
CREATE CONSTRAINT TRIGGER devices_update_changes AFTER UPDATE ON devices
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.key_gen IS DISTINCT FROM NEW.key_gen
  OR OLD.ingest_rate IS DISTINCT FROM NEW.ingest_rate OR OLD.ingest_burst IS DISTINCT FROM NEW.ingest_burst)
EXECUTE FUNCTION registry_changed();
CREATE TRIGGER devices_truncate_changes AFTER TRUNCATE ON devices
FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE CONSTRAINT TRIGGER sensors_changes AFTER INSERT OR DELETE OR UPDATE ON sensors
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION registry_changed();
CREATE TRIGGER sensors_truncate_changes AFTER TRUNCATE ON sensors
FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
