#!/usr/bin/env bash
# Installs what the web console's browser tests and benchmark drive:
# Debian's chromium (headless, at /usr/bin/chromium) and the console's pinned
# npm packages in web/node_modules (playwright-core, esbuild, uPlot, ... from
# web/package-lock.json). Idempotent: a no-op when both are present.
set -euo pipefail
# --npm-only installs only the npm packages (what `make web` needs to build).
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--npm-only" ] && ! [ -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi
# npm ci only when the lock file changed since the last install.
stamp=web/node_modules/.install-stamp
if ! [ -f "$stamp" ] || ! cmp -s web/package-lock.json "$stamp"; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  cp web/package-lock.json "$stamp"
fi
# The console's sources are type-checked against sdk/ts/src (web/bundle_test.go),
# whose imports resolve from sdk/ts/node_modules: install those too (a no-op
# when they match sdk/ts/package-lock.json).
scripts/sdk-generate.sh --deps-only
