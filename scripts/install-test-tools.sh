#!/usr/bin/env bash
# Installs the Debian tools the ingestion tests and benchmarks drive:
# mosquitto-clients (mosquitto_pub, a real MQTT 3.1/3.1.1/5 client) and
# mosquitto (the reference broker of the MQTT benchmark), and, through
# install-examples.sh, what the sample producers need. No-op when present.
set -euo pipefail
# The sample producers' toolchains and libraries (examples/).
"$(dirname "$0")/install-examples.sh"
missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
