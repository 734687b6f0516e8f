-- Which process counts which device connections: every process that counts
-- connections holds a lease it renews, and the connections of a process whose
-- lease expired (it died without closing them) read as offline and are
-- swept (registry.ConnectionLeaseTTL, docs/COMMANDS.md).
CREATE TABLE connection_leases (
  owner TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE TABLE device_connections (
  device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  owner TEXT NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (device_id, owner)
);
CREATE INDEX device_connections_owner ON device_connections (owner);
