#!/usr/bin/env bash
# Ingestion benchmark against the real binary on embedded defaults (embedded
# bus + SQLite store: every ack means committed to disk): HTTP single
# readings vs a bare net/http handler, HTTP batches of 1000, MQTT QoS 1 vs
# Debian's mosquitto. Then the in-process gateway runs of bench/ingestload.
# Usage: scripts/bench/ingest.sh [-d 6s] [-runs 3]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
scripts/install-test-tools.sh
go run ./bench/ingestload -mode=binary -api http://127.0.0.1:18080 -password "$pw" -http-gw 127.0.0.1:18083 -mqtt-gw 127.0.0.1:11883 "$@"
for m in http-batch grpc; do go run ./bench/ingestload -mode=$m "$@" | tail -n +2; done
