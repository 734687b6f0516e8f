#!/usr/bin/env bash
# Tracing overhead: two iotplatform processes on embedded defaults (WAL bus +
# SQLite store, every ack durable), identical but for tracing — A off, B on
# with --trace-sample-ratio (default 0.01) exporting OTLP/gRPC to a local
# sink — driven alternately (A, B, A, B, ...) by single-reading HTTP
# requests; prints every run and the median B/A throughput ratio.
# Usage: scripts/bench/tracing.sh [-d 6s] [-runs 5] [-c 64]   (IOT_BENCH_TRACE_RATIO=0.01)
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build
go build -o bin/otlpsink ./bench/otlpsink
go build -o bin/ingestload ./bench/ingestload
dir=$(mktemp -d)
pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ratio=${IOT_BENCH_TRACE_RATIO:-0.01}
bin/otlpsink -grpc 127.0.0.1:14317 -http 127.0.0.1:14318 >"$dir/sink.log" 2>&1 &
sink=$!
start() { # name api http ws mqtt extra-flags...
  local name=$1 api=$2 http=$3 ws=$4 mqtt=$5; shift 5
  mkdir -p "$dir/$name"
  IOT_ADMIN_PASSWORD=$pw bin/iotplatform serve --data-dir "$dir/$name" --api-addr "127.0.0.1:$api" \
    --http-addr "127.0.0.1:$http" --ws-addr "127.0.0.1:$ws" --mqtt-addr "127.0.0.1:$mqtt" --log-level warn "$@" >"$dir/$name.log" 2>&1 &
  echo $!
}
a=$(start a 18080 18083 18765 11883)
b=$(start b 28080 28083 28765 21883 --otlp-endpoint http://127.0.0.1:14317 --otlp-protocol grpc --trace-sample-ratio "$ratio")
trap 'kill $a $b 2>/dev/null; wait $a $b 2>/dev/null; kill $sink 2>/dev/null; wait $sink 2>/dev/null; cat "$dir/sink.log"; rm -rf "$dir"' EXIT
for port in 18080 28080; do
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$port/readyz" >/dev/null || { echo "iotplatform on $port did not start"; cat "$dir"/*.log; exit 1; }
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), $(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg); B samples $ratio of traces"
bin/ingestload -mode=tracing-ab -api http://127.0.0.1:18080 -http-gw 127.0.0.1:18083 -api-b http://127.0.0.1:28080 -http-gw-b 127.0.0.1:28083 -password "$pw" "$@"
