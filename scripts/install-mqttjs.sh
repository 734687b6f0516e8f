#!/usr/bin/env bash
# Installs mqtt.js into e2e/mqttjs/node_modules for the e2e tests that drive
# it (producer.js). Idempotent: a no-op once the pinned version is present.
set -euo pipefail
cd "$(dirname "$0")/../e2e/mqttjs"
if [ -f node_modules/mqtt/package.json ] && grep -q '"version": "5.16.0"' node_modules/mqtt/package.json; then
  exit 0
fi
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
