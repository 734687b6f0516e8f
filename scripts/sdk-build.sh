#!/usr/bin/env bash
# Builds the SDK artefacts users install, into bin/sdk/ (`make sdk`):
#   Go          sdk/go and gen/ checked as modules of their own (go vet, tidy)
#   TypeScript  bin/sdk/iotplatform-sdk-<version>.tgz    (npm pack: dist/ ESM + .d.ts)
#   Python      bin/sdk/python/iotplatform-<version>-py3-none-any.whl and .tar.gz (python -m build)
# <version> is the platform version (VERSION); the script fails when
# sdk/ts/package.json, sdk/python/pyproject.toml or iotplatform.__version__
# say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bin/sdk

die() {
	echo "sdk-build: FAILED: $*" >&2
	exit 1
}

version=$(tr -d '[:space:]' <VERSION)
ts_version=$(node -p 'require("./sdk/ts/package.json").version')
py_version=$(sed -nE 's/^version = "(.*)"$/\1/p' sdk/python/pyproject.toml)
init_version=$(sed -nE 's/^__version__ = "(.*)"$/\1/p' sdk/python/iotplatform/__init__.py)
for v in "sdk/ts/package.json:$ts_version" "sdk/python/pyproject.toml:$py_version" "sdk/python/iotplatform/__init__.py:$init_version"; do
	[[ ${v#*:} == "$version" ]] || die "${v%%:*} has version ${v#*:}, VERSION says $version"
done

scripts/sdk-generate.sh --deps-only

echo "sdk-build: Go modules gen/ and sdk/go"
for m in gen sdk/go; do
	(cd "$m" && GOFLAGS=-mod=mod go mod tidy -diff >/dev/null) || die "$m/go.mod is not tidy: cd $m && go mod tidy"
	(cd "$m" && go vet ./...) || die "go vet in $m"
done

rm -rf "$OUT"
mkdir -p "$OUT/python"

echo "sdk-build: TypeScript package (npm pack)"
(cd sdk/ts && npm pack --silent --pack-destination "$OUT" >/dev/null) || die "npm pack"

echo "sdk-build: Python wheel and sdist (python -m build)"
(cd sdk/python && .venv/bin/python -m build --no-isolation --outdir "$OUT/python" . >"$OUT/python/build.log" 2>&1) ||
	{ tail -30 "$OUT/python/build.log"; die "python -m build"; }
rm -rf sdk/python/build "$OUT/python/build.log"

for f in "$OUT/iotplatform-sdk-$version.tgz" "$OUT/python/iotplatform-$version-py3-none-any.whl" "$OUT/python/iotplatform-$version.tar.gz"; do
	[[ -f $f ]] || die "$f was not built"
done
echo "sdk-build: version $version; artefacts in ${OUT#"$ROOT"/}:"
(cd "$OUT" && find . -type f | sort | sed 's/^\.\//  /')
