#!/usr/bin/env bash
# Ingest against a grown registry vs a fresh one, alternating (issue #10,
# "cost against growth"): each round starts bin/iotplatform on a fresh data
# dir, then on the grown one, and runs bench/ingestload -mode=binary (HTTP
# single readings vs a bare handler, HTTP batches ack -> stored) against a
# new device of each. Only the registry differs: the grown dir's readings
# store and log are removed before each of its rounds, and the previous
# round's bench device is renamed.
# Usage: scripts/bench/ingest-growth.sh GROWN_DATA_DIR ROOT_PASSWORD [rounds]
# Growing a data dir to 1 M devices / 10 M sensors: see docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
big=$1 bigpw=$2 rounds=${3:-3}
make -s build
go build -o /tmp/ingestload-growth ./bench/ingestload
uptime
for r in $(seq "$rounds"); do
  for which in fresh grown; do
    if [ $which = fresh ]; then dir=$(mktemp -d); pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    else dir=$big; pw=$bigpw
      sqlite3 "$dir/registry.db" "UPDATE devices SET name = name || '-old-' || id WHERE name = 'bench'"
      rm -rf "$dir"/readings.db* "$dir/wal"
    fi
    IOT_ADMIN_PASSWORD=$pw bin/iotplatform serve --data-dir "$dir" --api-addr 127.0.0.1:28080 --http-addr 127.0.0.1:28083 \
      --ws-addr 127.0.0.1:28765 --mqtt-addr 127.0.0.1:21883 --log-level warn >/tmp/ingest-growth-serve.log 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf 127.0.0.1:28080/readyz >/dev/null && break; sleep 0.1; done
    echo "== round $r $which"
    /tmp/ingestload-growth -mode=binary -api http://127.0.0.1:28080 -password "$pw" -http-gw 127.0.0.1:28083 \
      -mqtt-gw 127.0.0.1:21883 -parts http,batch -d 6s -runs 1 | grep -v '^$'
    kill $pid; wait $pid || true
    if [ $which = fresh ]; then rm -rf "$dir"; fi
  done
done
