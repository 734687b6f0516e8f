#!/usr/bin/env bash
# Installs mqtt.js and ws into e2e/mqttjs/node_modules for the e2e tests
# that drive them (producer.js, wsproducer.js). Idempotent: a no-op once the
# pinned versions are present.
set -euo pipefail
cd "$(dirname "$0")/../e2e/mqttjs"
if grep -qs '"version": "5.16.0"' node_modules/mqtt/package.json && grep -qs '"version": "8.23.0"' node_modules/ws/package.json; then
  exit 0
fi
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
