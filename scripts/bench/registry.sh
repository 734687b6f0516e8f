#!/usr/bin/env bash
# Registry at fleet scale: builds and starts bin/iotplatform on embedded
# defaults in a temp dir (API 127.0.0.1:28080; ports 28xxx so it runs beside
# the other bench scripts), or with the registry on PostgreSQL when
# IOT_BENCH_POSTGRES_DSN is set (an empty, throwaway database), and runs
# bench/registryload. In growth mode a second platform (API :28090, its
# registry in IOT_BENCH_POSTGRES_REF_DSN on PostgreSQL) keeps the small
# reference registry, measured alternately with the grown one. Usage:
#   scripts/bench/registry.sh -mode create -vus 16 -duration 20s [-with-sensor]
#   scripts/bench/registry.sh -mode import -devices 1000000
#   scripts/bench/registry.sh -mode growth -devices 1000000 -vus 2 -duration 5s
# IOT_BENCH_BINARY runs another build (e.g. an older commit's) instead, and
# then nothing is built here (build it beforehand, outside a quiet run).
# pprof of the (grown) platform: http://127.0.0.1:28089/debug/pprof/
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${IOT_BENCH_BINARY:-}" ] || make -s build
pids=() dirs=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "${dirs[@]}"' EXIT
start() { # start PORTBASE DSN -> sets $pw
  local base=$1 dsn=$2 dir
  dir=$(mktemp -d); dirs+=("$dir")
  pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  IOT_ADMIN_PASSWORD=$pw IOT_POSTGRES_DSN=$dsn ${IOT_BENCH_BINARY:-bin/iotplatform} serve --data-dir "$dir" \
    --api-addr 127.0.0.1:${base}0 --http-addr 127.0.0.1:${base}3 --ws-addr 127.0.0.1:${base}5 --mqtt-addr 127.0.0.1:${base}8 \
    --debug-addr 127.0.0.1:${base}9 --log-level warn >"$dir/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    kill -0 $! 2>/dev/null || { echo "iotplatform did not start:"; cat "$dir/log"; exit 1; }
    curl -sf 127.0.0.1:${base}0/readyz >/dev/null && return; sleep 0.1
  done
}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), $(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "registry: $([ -n "${IOT_BENCH_POSTGRES_DSN:-}" ] && echo postgresql || echo 'sqlite (embedded)')"
start 2808 "${IOT_BENCH_POSTGRES_DSN:-}"
subpw=$pw
ref=()
if [[ " $* " == *" growth "* ]]; then
  start 2809 "${IOT_BENCH_POSTGRES_REF_DSN:-}"
  ref=(-ref-api http://127.0.0.1:28090 -ref-password "$pw")
fi
go run ./bench/registryload -api http://127.0.0.1:28080 -password "$subpw" "${ref[@]}" "$@"
du -sh "${dirs[0]}"/registry.db* 2>/dev/null || true
