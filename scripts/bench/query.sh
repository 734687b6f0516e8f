#!/usr/bin/env bash
# Storage and query benchmarks: embedded queries over 1M readings and
# pipeline → OpenSearch vs a raw _bulk (bench/query), then the embedded
# end-to-end path against the real binary (bench/queryload).
# Usage: scripts/bench/query.sh   (IOT_TEST_OPENSEARCH_URL from scripts/services/test-services.sh env)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
go run ./bench/query ${IOT_TEST_OPENSEARCH_URL:+-opensearch-url "$IOT_TEST_OPENSEARCH_URL"}
go run ./bench/queryload -api http://127.0.0.1:18080 -http http://127.0.0.1:18083 -password "$pw" -d 20s
