#!/usr/bin/env bash
# Real OpenSearch (single node, REST over Netty4) for integration tests, no Docker.
#   opensearch.sh start|stop|status|env|clean
# Jars come from Maven Central via deploy/opensearch/pom.xml into
# $IOT_CACHE/opensearch-<ver>/libs; deploy/opensearch/src/EmbeddedNode.java is compiled
# next to them and started as the server. Data and log live in $IOT_TEST_STATE/opensearch.
set -euo pipefail
_svc=opensearch
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OS_PORT="${IOT_TEST_OS_PORT:-59200}"
OS_TRANSPORT_PORT="${IOT_TEST_OS_TRANSPORT_PORT:-59300}"
OS_HEAP="${IOT_TEST_OS_HEAP:-1g}"
OS_POM_DIR="$DEPLOY_DIR/opensearch"
OS_SRC="$OS_POM_DIR/src/EmbeddedNode.java"
OS_VER="$(sed -n 's:.*<opensearch.version>\(.*\)</opensearch.version>.*:\1:p' "$OS_POM_DIR/pom.xml")"
OS_CACHE="$IOT_CACHE/opensearch-$OS_VER"
OS_LIBS="$OS_CACHE/libs"
OS_CLASSES="$OS_CACHE/classes"
O_DIR="$IOT_TEST_STATE/opensearch"
O_HOME="$O_DIR/home"
O_LOG="$O_DIR/opensearch.log"
O_PID="$O_DIR/opensearch.pid"
PID_MARKER="EmbeddedNode $O_HOME"

is_running() { pid_alive "$O_PID" && port_open "$OS_PORT"; }

health() { curl -s -m 3 "http://127.0.0.1:$OS_PORT/_cluster/health" 2>/dev/null || true; }

compile_node() {
  local stamp
  stamp="$( (cat "$OS_SRC" "$OS_LIBS/.complete"; "$JAVA" -version 2>&1) | sha256sum | cut -d' ' -f1)"
  if [[ -f "$OS_CLASSES/.stamp" && "$(cat "$OS_CLASSES/.stamp")" == "$stamp" ]]; then
    return 0
  fi
  command -v javac >/dev/null 2>&1 || die "javac not found (need a JDK 17, not only a JRE)"
  log "compiling $OS_SRC"
  rm -rf "$OS_CLASSES.tmp"
  mkdir -p "$OS_CLASSES.tmp"
  javac -nowarn -d "$OS_CLASSES.tmp" -cp "$OS_LIBS/*" "$OS_SRC" >"$OS_CACHE/javac.log" 2>&1 \
    || die "javac EmbeddedNode.java failed" "$OS_CACHE/javac.log"
  echo "$stamp" >"$OS_CLASSES.tmp/.stamp"
  rm -rf "$OS_CLASSES"
  mv "$OS_CLASSES.tmp" "$OS_CLASSES"
}

write_config() {
  mkdir -p "$O_HOME/config" "$O_HOME/data" "$O_HOME/logs" "$O_HOME/plugins" "$O_HOME/modules"
  cat >"$O_DIR/log4j2.properties" <<'EOF'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.deprecation.name = org.opensearch.deprecation
logger.deprecation.level = error
EOF
}

cmd_start() {
  if is_running; then
    return 0
  fi
  need_cmd curl curl
  need_java
  mvn_copy_deps "$OS_POM_DIR" "$OS_LIBS"
  compile_node
  stop_pid "$O_PID" 30 # a live node whose port does not answer is restarted
  local p
  for p in "$OS_PORT" "$OS_TRANSPORT_PORT"; do
    port_open "$p" && die "port 127.0.0.1:$p is already in use by another process (set IOT_TEST_OS_PORT / IOT_TEST_OS_TRANSPORT_PORT)"
  done
  write_config

  : >"$O_LOG"
  log "starting OpenSearch $OS_VER on 127.0.0.1:$OS_PORT"
  # setsid: own session, survives the caller; the inner bash writes its pid, then execs java.
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$O_PID" \
    "$JAVA" "-Xms$OS_HEAP" "-Xmx$OS_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dfile.encoding=UTF-8 -Djna.nosys=true -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
    -Dlog4j.configurationFile="$O_DIR/log4j2.properties" -Djava.io.tmpdir="$O_DIR" \
    -cp "$OS_LIBS/*:$OS_CLASSES" EmbeddedNode "$O_HOME" "$OS_PORT" "$OS_TRANSPORT_PORT" \
    </dev/null >>"$O_LOG" 2>&1 &

  local deadline=$((SECONDS + ${IOT_TEST_OS_TIMEOUT:-120})) h
  while :; do
    if ((SECONDS > deadline)); then
      stop_pid "$O_PID" 10
      die "OpenSearch did not report green/yellow within ${IOT_TEST_OS_TIMEOUT:-120}s" "$O_LOG"
    fi
    sleep 0.5
    [[ -f "$O_PID" ]] || continue
    pid_alive "$O_PID" || die "OpenSearch exited during startup" "$O_LOG"
    port_open "$OS_PORT" || continue
    h="$(health)"
    [[ "$h" =~ \"status\":\"(green|yellow)\" ]] && break
  done
  log "ready on 127.0.0.1:$OS_PORT (pid $(cat "$O_PID"), cluster ${BASH_REMATCH[1]})"
}

cmd_stop() {
  stop_pid "$O_PID" 60
}

cmd_status() {
  if is_running; then
    echo "opensearch: running (pid $(cat "$O_PID")) on 127.0.0.1:$OS_PORT, transport 127.0.0.1:$OS_TRANSPORT_PORT, $(health)"
  else
    echo "opensearch: stopped"
    return 3
  fi
}

cmd_env() {
  echo "IOT_TEST_OPENSEARCH_URL=http://127.0.0.1:$OS_PORT"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clean) cmd_stop; rm -rf "$O_DIR" ;;
  *) echo "usage: $0 {start|stop|status|env|clean}" >&2; exit 2 ;;
esac
