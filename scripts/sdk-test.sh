#!/usr/bin/env bash
# Tests the SDKs the way users install them, against the real binary:
#   1. builds bin/iotplatform and installs the SDK toolchains if missing,
#   2. fails if the committed generated SDK code differs from a fresh generation,
#   3. Go: the sdk/go module's tests and Example functions (own module; a fresh
#      module outside the repo requiring it gets no server dependencies),
#   then builds the artefacts with scripts/sdk-build.sh (make sdk), and tests
#   4. TypeScript: node --test on the sources (Connect, gRPC, gRPC-Web,
#      Swagger UI at /docs in headless Chromium),
#   5. Python: pytest on the sources (gRPC, Connect),
#   6. the artefacts of scripts/sdk-build.sh (make sdk): the npm tarball installed
#      into a fresh project (type-checked, then the ergonomic test run from it), the
#      wheel installed into a fresh virtualenv (the ergonomic tests run from it),
#   7. the OpenAPI 3.1 document passes openapi-spec-validator, and the embedded
#      Swagger UI files are those of the pinned swagger-ui-dist.
# Each platform a test needs runs on free loopback ports.
# Ends with "sdk-test: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() {
	echo "sdk-test: FAILED: $*"
	echo "sdk-test: 0 passed, 1 failed"
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

passed=0 failed=0 status=0 summary=() step_start=$SECONDS

# record NAME EXIT PASS FAIL: adds a step's counts; a failing exit or no
# passing test counts as a failure.
record() {
	local name=$1 rc=$2 pass=${3:-0} fail=${4:-0}
	if [[ $rc != 0 || $pass == 0 ]]; then
		status=1
		[[ $fail == 0 ]] && fail=1
	fi
	passed=$((passed + pass)) failed=$((failed + fail))
	summary+=("$name: $pass passed, $fail failed (exit $rc, $((SECONDS - step_start))s)")
	step_start=$SECONDS
}

# node_counts LOG: the spec reporter ends with "ℹ pass N" / "ℹ fail N".
node_counts() {
	echo "$(sed -nE 's/^. pass ([0-9]+)$/\1/p' "$1" | tail -1) $(sed -nE 's/^. fail ([0-9]+)$/\1/p' "$1" | tail -1)"
}

# py_counts LOG: pytest's last line.
py_counts() {
	echo "$(grep -oE '[0-9]+ passed' "$1" | tail -1 | cut -d' ' -f1) $(grep -oE '[0-9]+ (failed|error|errors)' "$1" | awk '{s += $1} END {print s + 0}')"
}

echo "sdk-test: Go (sdk/go module: tests and examples)"
step_start=$SECONDS
(cd sdk/go && go test -count=1 -v ./...) >"$tmp/go.log" 2>&1
go_rc=$?
grep -E '^(--- |ok|FAIL|panic)' "$tmp/go.log"
[[ $go_rc == 0 ]] || tail -40 "$tmp/go.log"
record "Go SDK" $go_rc "$(grep -c -- '^--- PASS' "$tmp/go.log")" "$(grep -c -- '^--- FAIL' "$tmp/go.log")"

# The artefacts first: npm pack builds sdk/ts/dist (sources and tests) on its way.
echo "sdk-test: building the artefacts (scripts/sdk-build.sh)"
step_start=$SECONDS
scripts/sdk-build.sh || die "scripts/sdk-build.sh"
summary+=("build the artefacts (make sdk): $((SECONDS - step_start))s")
step_start=$SECONDS
version=$(tr -d '[:space:]' <VERSION)

echo "sdk-test: TypeScript (node --test)"
step_start=$SECONDS
# platform.test.js runs from the installed tarball below, not twice.
(cd sdk/ts && node --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec $(ls dist/test/*.test.js | grep -v platform.test.js)) >"$tmp/ts.log" 2>&1
ts_rc=$?
cat "$tmp/ts.log"
# shellcheck disable=SC2046
record "TypeScript" $ts_rc $(node_counts "$tmp/ts.log")

echo "sdk-test: Python (pytest)"
step_start=$SECONDS
# test_platform.py runs from the installed wheel below, not twice.
(cd sdk/python && .venv/bin/python -m pytest -q -rs --ignore tests/test_platform.py) >"$tmp/py.log" 2>&1
py_rc=$?
cat "$tmp/py.log"
# shellcheck disable=SC2046
record "Python" $py_rc $(py_counts "$tmp/py.log")

echo "sdk-test: npm tarball in a fresh project"
app=$tmp/ts-app
mkdir -p "$app/test"
printf '{ "name": "iot-sdk-user", "private": true, "type": "module" }\n' >"$app/package.json"
(cd "$app" && npm install --silent --no-audit --no-fund --prefer-offline "$ROOT/bin/sdk/iotplatform-sdk-$version.tgz") ||
	die "npm install of the tarball"
installed=$app/node_modules/@iotplatform/sdk
[[ -d $installed && ! -L $installed ]] || die "the tarball installed a link, not a package"
[[ $(node -p "require('$installed/package.json').version") == "$version" ]] || die "installed version is not $version"
# The declarations type-check a user's TypeScript (no Node types needed).
cat >"$app/user.ts" <<'TS'
import { IotPlatform, createClient, core, type Reading } from "@iotplatform/sdk";
const iot = new IotPlatform("http://localhost:8080");
export async function demo(): Promise<Reading[]> {
  await iot.signIn("root", "secret");
  const dev = await iot.devices.create({ name: "car" });
  const s = await iot.sensors.create(dev.id, { name: "speed", type: "double" });
  await (await iot.asDevice(dev.id)).ingest(s.id, 1.5, new Date());
  for await (const r of iot.subscribe(s.id)) return [r];
  const raw = createClient("http://localhost:8080");
  await raw.core.createSensor({ deviceId: dev.id, name: "x", valueType: core.ValueType.LONG });
  return iot.query(s.id, { limit: 10 });
}
TS
cat >"$app/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "target": "ES2022", "module": "Node16", "moduleResolution": "Node16",
    "lib": ["ES2022", "DOM"], "types": [], "skipLibCheck": false
  },
  "files": ["user.ts"]
}
JSON
sdk/ts/node_modules/.bin/tsc -p "$app/tsconfig.json" >"$tmp/tsc.log" 2>&1
tsc_rc=$?
cat "$tmp/tsc.log"
record "TypeScript tarball type-check" $tsc_rc $((tsc_rc == 0)) $((tsc_rc != 0))
cp sdk/ts/dist/test/platform.test.js sdk/ts/dist/test/server.js "$app/test/"
(cd "$app" && node --test --test-timeout=120000 --test-reporter=spec test/platform.test.js) >"$tmp/ts-pkg.log" 2>&1
tsp_rc=$?
cat "$tmp/ts-pkg.log"
# shellcheck disable=SC2046
record "TypeScript tarball" $tsp_rc $(node_counts "$tmp/ts-pkg.log")

echo "sdk-test: wheel in a fresh virtualenv"
step_start=$SECONDS
venv=$tmp/py-venv
python3 -m venv --without-pip "$venv" || die "python3 -m venv"
sdk/python/.venv/bin/pip --python "$venv/bin/python" install --quiet --no-compile --disable-pip-version-check \
	--no-index --find-links sdk/python/.venv/wheelhouse \
	"$ROOT/bin/sdk/python/iotplatform-$version-py3-none-any.whl[pandas]" pytest ||
	die "pip install of the wheel"
mkdir -p "$tmp/py-app/tests"
cp sdk/python/tests/conftest.py sdk/python/tests/test_platform.py "$tmp/py-app/tests/"
(cd "$tmp/py-app" && IOT_SDK_FROM_WHEEL=1 "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider tests) >"$tmp/py-wheel.log" 2>&1
pyw_rc=$?
cat "$tmp/py-wheel.log"
# shellcheck disable=SC2046
record "Python wheel" $pyw_rc $(py_counts "$tmp/py-wheel.log")

echo "sdk-test: OpenAPI 3.1 (openapi-spec-validator) and Swagger UI files"
step_start=$SECONDS
sdk/python/.venv/bin/openapi-spec-validator openapi/openapi.json >"$tmp/oas.log" 2>&1
oas_rc=$?
sdk/python/.venv/bin/python - "$version" >>"$tmp/oas.log" 2>&1 <<'PY' || oas_rc=1
import json, sys
d = json.load(open("openapi/openapi.json"))
assert d["openapi"].startswith("3.1"), d["openapi"]
assert d["info"]["title"] == "iotplatform API", d["info"]
assert d["info"]["version"] == sys.argv[1], d["info"]
assert d["components"]["securitySchemes"]["bearerAuth"] == {**d["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
assert d["security"] == [{"bearerAuth": []}]
assert "/api/consumers/consume/{sensor_id}/_search" in d["paths"]
assert d["paths"]["/api/users/signin"]["post"]["security"] == []
print(f"openapi.json: {len(d['paths'])} paths, version {d['info']['version']}")
PY
cat "$tmp/oas.log"
record "OpenAPI lint" $oas_rc $((oas_rc == 0)) $((oas_rc != 0))
scripts/swagger-ui.sh --check
sui_rc=$?
record "Swagger UI files" $sui_rc $((sui_rc == 0)) $((sui_rc != 0))

echo
for s in "${summary[@]}"; do echo "sdk-test: $s"; done
echo "sdk-test: generated code fresh; $((SECONDS - start))s"
echo "sdk-test: ${passed} passed, ${failed} failed"
exit $status
