#!/usr/bin/env bash
# Real PostgreSQL for integration tests, on 127.0.0.1 only, no Docker.
#   postgres.sh start|stop|status|env|clean
# Installs Debian's postgresql package when initdb/pg_ctl are missing, runs a
# throwaway cluster (trust auth, fsync off) as the `postgres` system user under
# $IOT_TEST_STATE/postgres, and creates database iot_test.
set -euo pipefail
_svc=postgres
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${IOT_TEST_PG_PORT:-55432}"
PG_USER=postgres
PG_DB=iot_test
PG_DIR="$IOT_TEST_STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/pg_ctl" && -x "$d/initdb" && -x "$d/postgres" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

as_pg() { runuser -u postgres -- "$@"; }

is_running() {
  # Fast path: postmaster.pid names a live postmaster and the port answers.
  local pid
  [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
  pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && port_open "$PG_PORT"
}

psql_q() {
  "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$@"
}

ensure_db() {
  local have
  have="$(psql_q -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" \
    || die "cannot connect to PostgreSQL on 127.0.0.1:$PG_PORT" "$PG_LOG"
  if [[ "$have" != 1 ]]; then
    psql_q -d postgres -c "CREATE DATABASE $PG_DB" || die "CREATE DATABASE $PG_DB failed" "$PG_LOG"
  fi
}

# ensure_tls: give the cluster a self-signed certificate for 127.0.0.1/localhost (made once,
# copied to $PG_DIR/ca.pem for clients' sslrootcert) and ssl = on. TLS is optional for clients:
# sslmode=disable keeps working. On a running server the change is applied by a reload (no restart).
ensure_tls() {
  local changed=0
  if [[ ! -s "$PG_DATA/server.crt" || ! -s "$PG_DATA/server.key" ]]; then
    need_cmd openssl openssl
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 3650 \
      -subj "/CN=iotplatform test postgres" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$PG_DATA/server.key" -out "$PG_DATA/server.crt" >"$PG_DIR/openssl.log" 2>&1 \
      || die "openssl could not make the PostgreSQL test certificate" "$PG_DIR/openssl.log"
    chown postgres: "$PG_DATA/server.key" "$PG_DATA/server.crt"
    chmod 600 "$PG_DATA/server.key"
    changed=1
  fi
  cp "$PG_DATA/server.crt" "$PG_DIR/ca.pem.tmp" && chmod 644 "$PG_DIR/ca.pem.tmp" && mv "$PG_DIR/ca.pem.tmp" "$PG_DIR/ca.pem"
  if ! grep -q '^ssl = on' "$PG_DATA/postgresql.conf"; then
    printf "ssl = on\n" >>"$PG_DATA/postgresql.conf"
    changed=1
  fi
  if ((changed)) && is_running; then
    log "TLS turned on: reloading the configuration"
    as_pg "$BIN/pg_ctl" -D "$PG_DATA" -s reload || die "pg_ctl reload failed" "$PG_LOG"
  fi
}

cmd_start() {
  if is_running; then
    BIN="$(pg_bindir)" || die "pg_ctl not found"
    ensure_tls
    return 0
  fi
  BIN="$(pg_bindir)" || { ensure_apt postgresql; BIN="$(pg_bindir)" || die "postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl"; }
  id postgres >/dev/null 2>&1 || die "system user 'postgres' missing (is the postgresql package installed?)"
  if port_open "$PG_PORT"; then
    die "port 127.0.0.1:$PG_PORT is already in use by another process (set IOT_TEST_PG_PORT)"
  fi

  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR"
  as_pg test -w "$PG_DIR" || die "user postgres cannot write $PG_DIR (choose an IOT_TEST_STATE every user can traverse)"

  local ver
  ver="$(basename "$(dirname "$BIN")")"
  if [[ -f "$PG_DATA/PG_VERSION" && "$(cat "$PG_DATA/PG_VERSION")" != "$ver" ]]; then
    log "cluster was made by PostgreSQL $(cat "$PG_DATA/PG_VERSION"), server is $ver: recreating"
    rm -rf "$PG_DATA"
  fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    rm -rf "$PG_DATA"
    log "initdb $PG_DATA (PostgreSQL $ver)"
    as_pg "$BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth=trust -E UTF8 --locale=C --no-sync \
      >"$PG_DIR/initdb.log" 2>&1 || die "initdb failed" "$PG_DIR/initdb.log"
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# ---- iotplatform test cluster (scripts/services/postgres.sh) ----
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF
  fi
  ensure_tls
  # The port lives in postgresql.conf; keep it in step with IOT_TEST_PG_PORT.
  sed -i "s/^port = .*/port = $PG_PORT/" "$PG_DATA/postgresql.conf"

  # A postmaster.pid naming a dead (or zombie, or reused) pid is stale: remove it, since
  # PostgreSQL refuses to start while that pid still answers kill -0.
  if [[ -f "$PG_DATA/postmaster.pid" ]]; then
    local opid
    opid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
    if ! tr '\0' ' ' <"/proc/$opid/cmdline" 2>/dev/null | grep -q postgres; then
      log "removing stale postmaster.pid (pid $opid is not running)"
      rm -f "$PG_DATA/postmaster.pid"
    fi
  fi
  : >"$PG_LOG"
  chown postgres: "$PG_LOG"
  as_pg "$BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start \
    || die "pg_ctl start failed" "$PG_LOG"
  is_running || die "PostgreSQL started but 127.0.0.1:$PG_PORT does not answer" "$PG_LOG"
  ensure_db
  log "running on 127.0.0.1:$PG_PORT (database $PG_DB)"
}

cmd_stop() {
  if [[ -f "$PG_DATA/postmaster.pid" ]]; then
    BIN="$(pg_bindir)" || die "pg_ctl not found"
    as_pg "$BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop 2>/dev/null || true
  fi
  is_running && die "PostgreSQL still running after stop" "$PG_LOG"
  return 0
}

cmd_status() {
  if is_running; then
    echo "postgres: running (pid $(head -n1 "$PG_DATA/postmaster.pid")) on 127.0.0.1:$PG_PORT, data $PG_DATA"
  else
    echo "postgres: stopped"
    return 3
  fi
}

cmd_env() {
  echo "IOT_TEST_POSTGRES_DSN=postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"
  echo "IOT_TEST_POSTGRES_CA_FILE=$PG_DIR/ca.pem"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clean) cmd_stop; rm -rf "$PG_DIR" ;;
  *) echo "usage: $0 {start|stop|status|env|clean}" >&2; exit 2 ;;
esac
