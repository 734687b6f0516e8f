#!/usr/bin/env bash
# Installs the SDK toolchains and regenerates the TypeScript and Python SDK code
# from proto/iot/{core,ingest,query} (the internal bus envelope is left out).
#
#   scripts/sdk-generate.sh              install what is missing, regenerate in place
#   scripts/sdk-generate.sh --deps-only  only install (npm ci in sdk/ts, sdk/python/.venv and
#                                        its wheelhouse for the wheel test)
#   scripts/sdk-generate.sh --out DIR    regenerate into DIR/sdk/... (freshness check)
#
# Installing is skipped when sdk/ts/node_modules and sdk/python/.venv match the
# committed package-lock.json and requirements.txt. Output is deterministic:
# pinned generators, sorted inputs, no timestamps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

out=$ROOT
deps_only=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--deps-only) deps_only=1 ;;
	--out) out=$(cd "$2" && pwd); shift ;;
	*) echo "usage: $0 [--deps-only] [--out DIR]" >&2; exit 2 ;;
	esac
	shift
done

sha() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

ensure_ts() {
	local want have=""
	want=$(sha sdk/ts/package.json sdk/ts/package-lock.json)
	[[ -f sdk/ts/node_modules/.iot-deps ]] && have=$(cat sdk/ts/node_modules/.iot-deps)
	if [[ $want != "$have" ]]; then
		echo "sdk-generate: npm ci in sdk/ts"
		(cd sdk/ts && npm ci --no-audit --no-fund --loglevel=error)
		echo "$want" >sdk/ts/node_modules/.iot-deps
	fi
}

ensure_py() {
	local want have="" py=${PYTHON:-python3}
	want=$(sha sdk/python/requirements.txt sdk/python/requirements-wheel.txt)
	[[ -f sdk/python/.venv/.iot-deps ]] && have=$(cat sdk/python/.venv/.iot-deps)
	if [[ $want != "$have" ]]; then
		echo "sdk-generate: creating sdk/python/.venv"
		rm -rf sdk/python/.venv
		"$py" -m venv sdk/python/.venv
		sdk/python/.venv/bin/pip install --quiet --disable-pip-version-check -r sdk/python/requirements.txt
		# The wheel test installs the built wheel into a fresh virtualenv from here.
		sdk/python/.venv/bin/pip download --quiet --disable-pip-version-check \
			-d sdk/python/.venv/wheelhouse -r sdk/python/requirements-wheel.txt
		echo "$want" >sdk/python/.venv/.iot-deps
	fi
}

ensure_buf() {
	if [[ ! -x bin/tools/buf ]]; then
		echo "sdk-generate: bin/tools/buf missing, running make tools"
		make tools
	fi
}

# The public protos, relative to proto/, in a stable order.
protos() {
	(cd proto && find iot -name '*.proto' -not -path 'iot/bus/*' | LC_ALL=C sort)
}

gen_ts() {
	local args=(generate --template sdk/ts/buf.gen.yaml)
	[[ $out != "$ROOT" ]] && args+=(-o "$out")
	bin/tools/buf "${args[@]}"
}

gen_py() {
	local dest=$out/sdk/python/iotplatform/gen stage
	stage=$(mktemp -d)
	# shellcheck disable=SC2046
	sdk/python/.venv/bin/python -m grpc_tools.protoc -I proto -I third_party/googleapis \
		--plugin=protoc-gen-connect-python=sdk/python/.venv/bin/protoc-gen-connect-python \
		--python_out="$stage" --pyi_out="$stage" --grpc_python_out="$stage" \
		--connect-python_out="$stage" $(protos)
	# protoc writes absolute imports of the proto packages (from iot.core.v1 import ...,
	# import iot.core.v1.core_pb2);
	# make them imports of this package. google.api comes from googleapis-common-protos.
	find "$stage" -type f \( -name '*.py' -o -name '*.pyi' \) -print0 |
		xargs -0 sed -i -E 's/^(from|import) iot\./\1 iotplatform.gen.iot./'
	find "$stage" -type d -print0 | xargs -0 -I{} touch {}/__init__.py
	printf '"""Generated from proto/ by scripts/sdk-generate.sh; do not edit."""\n' >"$stage/__init__.py"
	rm -rf "$dest"
	mkdir -p "$(dirname "$dest")"
	cp -r "$stage" "$dest"
	rm -rf "$stage"
}

ensure_ts
ensure_py
[[ $deps_only == 1 ]] && exit 0
ensure_buf
gen_ts
gen_py
echo "sdk-generate: wrote $( [[ $out == "$ROOT" ]] && echo sdk/ts/src/gen and sdk/python/iotplatform/gen || echo "$out/sdk/...")"
