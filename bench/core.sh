#!/usr/bin/env bash
# Core endpoint benchmark: starts bin/iotplatform on embedded defaults in a
# temp dir and runs bench/coreload against it (reference measured in the
# same run). Usage: bench/core.sh [-vus 100] [-duration 20s]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
dir=$(mktemp -d)
pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
IOT_ADMIN_PASSWORD=$pw bin/iotplatform serve --data-dir "$dir" --api-addr 127.0.0.1:18080 \
  --http-addr 127.0.0.1:18083 --ws-addr 127.0.0.1:18765 --mqtt-addr 127.0.0.1:11883 --log-level warn ${IOT_BENCH_SERVE_FLAGS:-} >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  kill -0 $pid 2>/dev/null || { echo "iotplatform did not start:"; cat "$dir/log"; exit 1; }
  curl -sf 127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), $(date -u +%F)"
go run ./bench/coreload -api http://127.0.0.1:18080 -password "$pw" "$@"
