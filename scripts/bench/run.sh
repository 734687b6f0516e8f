#!/usr/bin/env bash
# make bench: every benchmark, each beside its reference in the same run.
# Results are copied into docs/BENCHMARKS.md by hand, with the machine.
set -euo pipefail
cd "$(dirname "$0")"
./core.sh
./ingest.sh
./query.sh
