CREATE TABLE rules (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  sensor_id INTEGER REFERENCES sensors(id) ON DELETE CASCADE,
  device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  spec TEXT NOT NULL,
  webhook_url TEXT NOT NULL DEFAULT '',
  webhook_secret TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE INDEX rules_owner ON rules (owner_id, id);
CREATE TABLE rules_meta (
  k INTEGER PRIMARY KEY,
  version INTEGER NOT NULL
);
INSERT INTO rules_meta (k, version) VALUES (1, 0);
CREATE TABLE rule_states (
  rule_id INTEGER NOT NULL,
  sensor_id INTEGER NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (rule_id, sensor_id)
);
CREATE INDEX rule_states_sensor ON rule_states (sensor_id);
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  rule_id INTEGER NOT NULL,
  owner_id INTEGER NOT NULL,
  rule_name TEXT NOT NULL,
  sensor_id INTEGER NOT NULL,
  device_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  value TEXT NOT NULL DEFAULT '',
  fire_ns INTEGER NOT NULL,
  resolve_ns INTEGER NOT NULL DEFAULT 0,
  resolve_value TEXT NOT NULL DEFAULT '',
  ack_by INTEGER NOT NULL DEFAULT 0,
  ack_ns INTEGER NOT NULL DEFAULT 0,
  created_ns INTEGER NOT NULL
);
CREATE INDEX alerts_owner ON alerts (owner_id, created_ns);
CREATE INDEX alerts_rule ON alerts (rule_id, created_ns);
CREATE TABLE alert_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL,
  event TEXT NOT NULL,
  owner_id INTEGER NOT NULL,
  time_ns INTEGER NOT NULL
);
CREATE TABLE alert_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL,
  event TEXT NOT NULL,
  url TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  due_ns INTEGER NOT NULL,
  lease_ns INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (done, due_ns);
CREATE TABLE delivery_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id INTEGER NOT NULL,
  alert_id TEXT NOT NULL,
  event TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  status_code INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  ok INTEGER NOT NULL,
  time_ns INTEGER NOT NULL
);
CREATE INDEX delivery_attempts_alert ON delivery_attempts (alert_id, id);
CREATE TABLE sensor_retention (
  sensor_id INTEGER PRIMARY KEY REFERENCES sensors(id) ON DELETE CASCADE,
  raw_ns INTEGER NOT NULL
);
