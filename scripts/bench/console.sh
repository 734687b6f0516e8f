#!/usr/bin/env bash
# The web console's budgets in real headless Chromium (web/bench/bench.mjs):
# bundle size, first load, a 100,000-point history chart, the live chart at
# 1,000 readings/s. Needs bin/iotplatform (make build) and
# scripts/install-console-test-tools.sh. RUNS=N sets the repetitions (10).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-console-test-tools.sh
go build -o bin/iotplatform ./cmd/iotplatform   # embeds the current web/dist
IOT_BIN=$PWD/bin/iotplatform node web/bench/bench.mjs
