#!/usr/bin/env bash
# Tests the TypeScript and Python SDKs against the real binary:
#   1. builds bin/iotplatform,
#   2. installs the SDK toolchains if missing (scripts/sdk-generate.sh --deps-only),
#   3. fails if the committed generated code differs from a fresh generation,
#   4. runs the TypeScript tests (node --test; Connect, gRPC, gRPC-Web) and
#      pytest (gRPC), each starting its own platform on free loopback ports.
# Ends with "sdk-test: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() {
	echo "sdk-test: FAILED: $*"
	exit 1
}

echo "sdk-test: building bin/iotplatform"
go build -o bin/iotplatform ./cmd/iotplatform || die "go build"
export IOT_BIN=$ROOT/bin/iotplatform

scripts/sdk-generate.sh --deps-only || die "installing the SDK toolchains"

echo "sdk-test: checking the generated SDK code is fresh"
scripts/sdk-generate.sh --out "$tmp" >/dev/null || die "generating the SDK code"
stale=0
for d in sdk/ts/src/gen sdk/python/iotplatform/gen; do
	if ! diff -r -x __pycache__ "$d" "$tmp/$d" >"$tmp/diff.txt"; then
		head -40 "$tmp/diff.txt"
		echo "sdk-test: $d is stale"
		stale=1
	fi
done
[[ $stale == 0 ]] || die "generated SDK code is stale: run make generate"

passed=0 failed=0 status=0

echo "sdk-test: TypeScript (node --test)"
(cd sdk/ts && npx tsc -p tsconfig.json) || die "tsc"
(cd sdk/ts && node --test --test-concurrency=1 --test-reporter=spec dist/test/*.test.js) 2>&1 | tee "$tmp/ts.log"
ts_rc=${PIPESTATUS[0]}
# The spec reporter ends with "ℹ pass N" / "ℹ fail N".
ts_pass=$(sed -nE 's/^. pass ([0-9]+)$/\1/p' "$tmp/ts.log" | tail -1)
ts_fail=$(sed -nE 's/^. fail ([0-9]+)$/\1/p' "$tmp/ts.log" | tail -1)
ts_pass=${ts_pass:-0} ts_fail=${ts_fail:-0}
if [[ $ts_rc != 0 || $ts_pass == 0 ]]; then
	status=1
	[[ $ts_fail == 0 ]] && ts_fail=1
fi
passed=$((passed + ts_pass)) failed=$((failed + ts_fail))

echo "sdk-test: Python (pytest)"
(cd sdk/python && .venv/bin/python -m pytest -q -rs) 2>&1 | tee "$tmp/py.log"
py_rc=${PIPESTATUS[0]}
py_pass=$(grep -oE '[0-9]+ passed' "$tmp/py.log" | tail -1 | cut -d' ' -f1)
py_fail=$(grep -oE '[0-9]+ (failed|error|errors)' "$tmp/py.log" | awk '{s += $1} END {print s + 0}')
py_pass=${py_pass:-0}
# Exit code 5 means pytest collected no test: that is a failure here.
if [[ $py_rc != 0 || $py_pass == 0 ]]; then
	status=1
	[[ $py_fail == 0 ]] && py_fail=1
fi
passed=$((passed + py_pass)) failed=$((failed + py_fail))

echo
echo "sdk-test: TypeScript ${ts_pass} passed, ${ts_fail} failed (exit ${ts_rc}); Python ${py_pass} passed, ${py_fail} failed (exit ${py_rc}); generated code fresh; $((SECONDS - start))s"
echo "sdk-test: ${passed} passed, ${failed} failed"
exit $status
