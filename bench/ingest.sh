#!/usr/bin/env bash
# Ingestion benchmark against the real binary on embedded defaults (embedded
# bus + SQLite store: every ack means committed to disk): HTTP single
# readings vs a bare net/http handler, HTTP batches of 1000, MQTT QoS 1 vs
# Debian's mosquitto. Then the in-process gateway runs of bench/ingestload.
# Usage: bench/ingest.sh [-d 6s] [-runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
scripts/install-test-tools.sh
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
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), $(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg)"
go run ./bench/ingestload -mode=binary -api http://127.0.0.1:18080 -password "$pw" -http-gw 127.0.0.1:18083 -mqtt-gw 127.0.0.1:11883 "$@"
for m in http-batch grpc; do go run ./bench/ingestload -mode=$m "$@" | tail -n +2; done
