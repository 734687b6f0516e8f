-- Commands to devices (durable queue with status history) and device state
-- (connection, last seen, reported and desired attributes). Times are
-- microseconds since the epoch, like every other table.
CREATE TABLE commands (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  payload BLOB NOT NULL,
  is_binary INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL,
  created_by INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  result BLOB,
  edge TEXT NOT NULL DEFAULT ''
);
CREATE INDEX commands_device ON commands (device_id, id);
CREATE INDEX commands_open_expiry ON commands (expires_at) WHERE status IN ('queued', 'sent', 'delivered');
CREATE TABLE command_events (
  command_id INTEGER NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  status TEXT NOT NULL,
  at INTEGER NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (command_id, seq)
);
CREATE TABLE device_state (
  device_id INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  connections INTEGER NOT NULL DEFAULT 0,
  edge TEXT NOT NULL DEFAULT '',
  online_since INTEGER NOT NULL DEFAULT 0,
  last_seen INTEGER NOT NULL DEFAULT 0,
  reported TEXT,
  reported_at INTEGER NOT NULL DEFAULT 0,
  desired TEXT,
  desired_version INTEGER NOT NULL DEFAULT 0,
  desired_at INTEGER NOT NULL DEFAULT 0
);
