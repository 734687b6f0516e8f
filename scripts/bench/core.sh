#!/usr/bin/env bash
# Core endpoint benchmark: starts bin/iotplatform on embedded defaults in a
# temp dir and runs bench/coreload against it (reference measured in the
# same run). Usage: scripts/bench/core.sh [-vus 100] [-duration 20s]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
go run ./bench/coreload -api http://127.0.0.1:18080 -password "$pw" "$@"
