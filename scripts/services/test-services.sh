#!/usr/bin/env bash
# Start/stop all integration-test services at once: PostgreSQL, Kafka, OpenSearch.
#   test-services.sh up       start all three (in parallel); fast no-op when running
#   test-services.sh down     stop all three (state kept, reusable on next up)
#   test-services.sh clean    stop all three and delete their state
#   test-services.sh status   one line per service
#   test-services.sh env      `export ...` lines: eval "$(scripts/services/test-services.sh env)"
#   test-services.sh check    smoke test: a query, 1000 acked Kafka records, an OpenSearch index+bulk+aggs
set -euo pipefail
_svc=test-services
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

SERVICES=(postgres kafka opensearch)

# run_all ACTION: run "<svc>.sh ACTION" for every service in parallel; on failure print
# that service's output (which includes its log tail) and exit 1.
run_all() {
  local action="$1" tmp svc rc=0
  tmp="$(mktemp -d)"
  declare -A pids=()
  for svc in "${SERVICES[@]}"; do
    "$HERE/$svc.sh" "$action" >"$tmp/$svc.out" 2>&1 &
    pids[$svc]=$!
  done
  for svc in "${SERVICES[@]}"; do
    if wait "${pids[$svc]}"; then
      cat "$tmp/$svc.out" >&2
    else
      rc=1
      cat "$tmp/$svc.out" >&2
      log "ERROR: $svc $action failed"
    fi
  done
  rm -rf "$tmp"
  return "$rc"
}

# Install missing Debian packages once, up front, rather than from three parallel scripts.
prereqs() {
  local pkgs=()
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || pkgs+=(postgresql)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  { command -v java && command -v javac; } >/dev/null 2>&1 || [[ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ]] \
    || pkgs+=(openjdk-17-jdk-headless)
  ((${#pkgs[@]} == 0)) || ensure_apt "${pkgs[@]}"
}

cmd_env() {
  local svc line
  for svc in "${SERVICES[@]}"; do
    while IFS= read -r line; do
      printf "export %s='%s'\n" "${line%%=*}" "${line#*=}"
    done < <("$HERE/$svc.sh" env)
  done
}

cmd_check() {
  eval "$(cmd_env)"
  local fail=0 out
  # PostgreSQL: a real query in iot_test.
  if out="$(psql -X -tA "$IOT_TEST_POSTGRES_DSN" -c 'SELECT current_database()' 2>&1)" && [[ "$out" == iot_test ]]; then
    echo "ok   postgres  $IOT_TEST_POSTGRES_DSN"
  else
    echo "FAIL postgres: $out"; fail=1
  fi
  # Kafka: produce 1000 acked records through the real client.
  if out="$("$HERE/kafka.sh" perf 1000 100 2>&1)" && grep -q '1000 records sent' <<<"$out"; then
    echo "ok   kafka     $IOT_TEST_KAFKA_BROKERS ($(grep '1000 records sent' <<<"$out" | cut -d, -f2 | xargs))"
  else
    echo "FAIL kafka: $(tail -n 5 <<<"$out")"; fail=1
  fi
  # OpenSearch: index with date_nanos, _bulk, terms + date_histogram aggregation.
  local u="$IOT_TEST_OPENSEARCH_URL" idx="iot-smoke-$$"
  local ndjson='{"index":{}}
{"ts":"2025-01-01T00:00:00.123456789Z","device":"d1","value":1.5}
{"index":{}}
{"ts":"2025-01-01T00:01:00.000000001Z","device":"d2","value":2.5}
{"index":{}}
{"ts":"2025-01-01T00:01:30.5Z","device":"d1","value":3}
'
  if curl -sf -XPUT "$u/$idx" -H 'content-type: application/json' \
       -d '{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":{"properties":{"ts":{"type":"date_nanos"},"device":{"type":"keyword"},"value":{"type":"double"}}}}' >/dev/null \
     && curl -sf -XPOST "$u/$idx/_bulk?refresh=true" -H 'content-type: application/x-ndjson' --data-binary "$ndjson" | grep -q '"errors":false' \
     && out="$(curl -sf "$u/$idx/_search" -H 'content-type: application/json' \
          -d '{"size":1,"sort":[{"ts":"asc"}],"aggs":{"dev":{"terms":{"field":"device"}},"h":{"date_histogram":{"field":"ts","fixed_interval":"1m"}}}}')" \
     && grep -q '"key":"d1","doc_count":2' <<<"$out" \
     && grep -q '"sort":\[1735689600123456789\]' <<<"$out" \
     && grep -q '"key":1735689660000,"doc_count":2' <<<"$out"; then
    echo "ok   opensearch $u (date_nanos, _bulk, terms, date_histogram)"
  else
    echo "FAIL opensearch: ${out:-request failed}"; fail=1
  fi
  curl -s -XDELETE "$u/$idx" >/dev/null || true
  return "$fail"
}

case "${1:-}" in
  up) prereqs; run_all start ;;
  down) run_all stop ;;
  clean) run_all clean ;;
  status) for s in "${SERVICES[@]}"; do "$HERE/$s.sh" status || true; done ;;
  env) cmd_env ;;
  check) cmd_check ;;
  *) echo "usage: $0 {up|down|clean|status|env|check}" >&2; exit 2 ;;
esac
