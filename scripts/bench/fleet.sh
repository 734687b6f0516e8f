#!/usr/bin/env bash
# Many devices per node (issue #18): starts bin/iotplatform on embedded
# defaults (write-ahead-log bus, SQLite store: every ack means fsynced) in a
# temp dir and runs bench/fleet against it — n devices on one edge, one
# reading per second each. The server gets descriptors for all of them
# (--fd-reserve / --api-max-conns); extra serve flags come from
# $IOT_BENCH_SERVE_FLAGS, extra server environment (GODEBUG=gctrace=1,
# IOT_GOGC, ...) from the caller.
# Usage: scripts/bench/fleet.sh -edge mqtt|ws|grpc -n 19000 [-duration 30s] [-warmup 10s] [-label after]
#   IOT_BENCH_BIN=path   measure this binary instead of building bin/iotplatform
#   IOT_BENCH_FLEET=path use this prebuilt bench/fleet (e.g. inside /work/quiet)
#   IOT_BENCH_PORT_OFFSET=n  add n to every port (18080, 18083, 18765, 11883)
set -euo pipefail
cd "$(dirname "$0")/../.."
edge=mqtt
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in -edge) edge=${args[$((i + 1))]} ;; -edge=*) edge=${args[$i]#-edge=} ;; esac
done
off=${IOT_BENCH_PORT_OFFSET:-0}
api=127.0.0.1:$((18080 + off)) httpa=127.0.0.1:$((18083 + off)) ws=127.0.0.1:$((18765 + off)) mqtt=127.0.0.1:$((11883 + off))
dir=$(mktemp -d)
bin=${IOT_BENCH_BIN:-}
[ -n "$bin" ] || { make -s build; bin=bin/iotplatform; }
fleet=${IOT_BENCH_FLEET:-}
[ -n "$fleet" ] || { go build -o "$dir/fleet" ./bench/fleet; fleet=$dir/fleet; }
case $edge in
  grpc) limits="--api-max-conns 19900 --fd-reserve 19900" ;;
  *) limits="--fd-reserve 400" ;;
esac
if curl -sf $api/readyz >/dev/null 2>&1; then
  echo "something already serves $api (a leftover server?); stop it first or set IOT_BENCH_PORT_OFFSET" >&2
  exit 1
fi
pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# shellcheck disable=SC2086
IOT_ADMIN_PASSWORD=$pw "$bin" serve --data-dir "$dir" --api-addr $api \
  --http-addr $httpa --ws-addr $ws --mqtt-addr $mqtt --log-level warn \
  $limits ${IOT_BENCH_SERVE_FLAGS:-} >"$dir/log" 2>&1 &
pid=$!
# stop runs as the EXIT trap: under set -e a kill of a server that already
# ended would end the trap there (exit status 1, the temp dir left behind).
stop() {
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
  kill -0 $pid 2>/dev/null || { echo "iotplatform did not start:"; cat "$dir/log"; exit 1; }
  curl -sf $api/readyz >/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), nofile $(ulimit -n), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); binary $bin"
status=0
"$fleet" -api http://$api -password "$pw" -pid $pid -mqtt $mqtt -ws $ws "$@" || status=$?
if [ $status -ne 0 ] || grep -q "gc " "$dir/log"; then
  grep -v "^gc " "$dir/log" | tail -20
fi
if grep -q "^gc " "$dir/log"; then # GODEBUG=gctrace=1: pauses and heap sizes
  echo "gc cycles: $(grep -c '^gc ' "$dir/log"); last: $(grep '^gc ' "$dir/log" | tail -1)"
  cp "$dir/log" "${IOT_BENCH_GCTRACE:-/tmp/fleet-gctrace.log}"
fi
exit $status
