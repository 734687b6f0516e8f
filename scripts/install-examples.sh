#!/usr/bin/env bash
# Installs what the sample producers in examples/ need, for `make test` (and
# for a user trying them). Idempotent and fast when everything is present:
#   - Debian: nanopb (generator), libnanopb-dev (C runtime), libprotobuf-dev
#     (the well-known .proto files) for examples/c; maven if missing;
#   - Python: examples/python/.venv from requirements.txt (paho-mqtt,
#     websocket-client);
#   - npm: examples/node/node_modules from package-lock.json (mqtt, ws,
#     typescript), then its tsc build;
#   - Maven: examples/java's dependencies and plugins into ~/.m2 (one online
#     build; later builds work with `mvn -o`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

missing=()
command -v nanopb_generator.py >/dev/null 2>&1 || missing+=(nanopb)
[ -f /usr/include/pb_encode.h ] || missing+=(libnanopb-dev)
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: a venv per example, rebuilt when requirements.txt changes.
py=examples/python
if ! cmp -s "$py/requirements.txt" "$py/.venv/.requirements.txt" 2>/dev/null; then
  rm -rf "$py/.venv"
  python3 -m venv "$py/.venv"
  "$py/.venv/bin/pip" install -q --disable-pip-version-check -r "$py/requirements.txt"
  cp "$py/requirements.txt" "$py/.venv/.requirements.txt"
fi

# Node: npm ci when the lock file changed.
node=examples/node
if ! cmp -s "$node/package-lock.json" "$node/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$node" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
  cp "$node/package-lock.json" "$node/node_modules/.package-lock.json.installed"
fi

# Maven: build once online (plugins and Paho into ~/.m2, target/producer.jar);
# later builds work offline (mvn -o), and the e2e test rebuilds only when the
# jar is older than its sources.
java=examples/java
stamp="$HOME/.m2/iotplatform-examples-java.pom"
if ! cmp -s "$java/pom.xml" "$stamp" 2>/dev/null; then
  (cd "$java" && mvn -B -q -Dstyle.color=never package)
  mkdir -p "$HOME/.m2"
  cp "$java/pom.xml" "$stamp"
fi
echo "install-examples: ready ($ROOT/examples)"
