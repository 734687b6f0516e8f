# Sourced by the bench scripts: builds and starts bin/iotplatform on embedded
# defaults in a temp dir (API 127.0.0.1:18080, HTTP :18083, WS :18765,
# MQTT :11883), waits until it is ready, and stops it on exit. Sets $pw
# (root's password); extra serve flags come from $IOT_BENCH_SERVE_FLAGS.
cd "$(dirname "$0")/../.."
make -s build
dir=$(mktemp -d)
pw="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
IOT_ADMIN_PASSWORD=$pw bin/iotplatform serve --data-dir "$dir" --api-addr 127.0.0.1:18080 \
  --http-addr 127.0.0.1:18083 --ws-addr 127.0.0.1:18765 --mqtt-addr 127.0.0.1:11883 --log-level warn ${IOT_BENCH_SERVE_FLAGS:-} >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  kill -0 $pid 2>/dev/null || { echo "iotplatform did not start:"; cat "$dir/log"; exit 1; }
  curl -sf 127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(go version | cut -d' ' -f3), $(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg)"
