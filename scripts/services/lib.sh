# shellcheck shell=bash
# Shared helpers for the scripts/services/*.sh service scripts. Sourced, not run.

IOT_TEST_STATE="${IOT_TEST_STATE:-/tmp/iotplatform-test}"
IOT_CACHE="${IOT_CACHE:-${HOME:-/root}/.cache/iotplatform}"
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../deploy" && pwd)"

_svc="${_svc:-service}"

log() { printf '[%s] %s\n' "$_svc" "$*" >&2; }

# die MESSAGE [LOGFILE]: print a clear error plus the tail of the service log, exit 1.
die() {
  local msg="$1" logf="${2:-}"
  printf '[%s] ERROR: %s\n' "$_svc" "$msg" >&2
  if [[ -n "$logf" && -f "$logf" ]]; then
    printf '[%s] ---- last 40 lines of %s ----\n' "$_svc" "$logf" >&2
    tail -n 40 "$logf" >&2 || true
    printf '[%s] ---- end of log ----\n' "$_svc" >&2
  fi
  exit 1
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PIDFILE [MARKER]: true when the pid file names a live process whose command
# line contains MARKER (default: $PID_MARKER, else anything). A stale file -- dead pid, or
# a pid reused by an unrelated process -- is removed.
pid_alive() {
  local f="$1" marker="${2:-${PID_MARKER:-}}" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    if [[ -z "$marker" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"; then
      return 0
    fi
  fi
  rm -f "$f"
  return 1
}

# stop_pid PIDFILE [TIMEOUT_S]: SIGTERM, wait, then SIGKILL; removes the pid file.
stop_pid() {
  local f="$1" t="${2:-30}" pid i
  if ! pid_alive "$f"; then return 0; fi
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in ${t}s, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$f"
}

# ensure_apt PACKAGE...: apt-get install the packages (apt-get update once first).
# Serialised with flock so scripts started in parallel do not fight over the dpkg lock.
ensure_apt() {
  log "installing Debian packages: $*"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  (
    flock 9
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "$(find /tmp/.iotplatform-apt-updated -mmin -720 2>/dev/null)" ]]; then
      apt-get update -qq || exit 1
      touch /tmp/.iotplatform-apt-updated
    fi
    apt-get install -y -qq --no-install-recommends "$@"
  ) 9>/tmp/.iotplatform-apt.lock >/tmp/iotplatform-apt.log 2>&1 \
    || die "apt-get install $* failed" /tmp/iotplatform-apt.log
}

# need_cmd CMD PACKAGE: install PACKAGE when CMD is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || ensure_apt "$2"
}

# java_bin: the java executable (JAVA_HOME wins, else PATH; a JDK is installed if none).
java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    echo "$JAVA_HOME/bin/java"
    return 0
  fi
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    ensure_apt openjdk-17-jdk-headless
  fi
  command -v java || die "java not found (need a JDK 17)"
}

# mvn_copy_deps POMDIR OUTDIR: resolve the pom's dependencies from Maven Central into OUTDIR.
# Writes OUTDIR/.complete with the pom's checksum so a changed pom triggers a re-resolve.
mvn_copy_deps() {
  local pomdir="$1" out="$2" sum
  sum="$(sha256sum "$pomdir/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$out/.complete" && "$(cat "$out/.complete")" == "$sum" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || ensure_apt maven
  log "resolving jars with Maven into $out (first run only)"
  mkdir -p "$(dirname "$out")"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  # flock: Maven 3.8 does not support two processes writing one local repository at once.
  if ! (cd "$pomdir" && flock /tmp/.iotplatform-mvn.lock mvn -q -B dependency:copy-dependencies \
        -DoutputDirectory="$out.tmp" -DincludeScope=runtime >"$out.tmp.log" 2>&1); then
    die "mvn dependency:copy-dependencies failed for $pomdir/pom.xml" "$out.tmp.log"
  fi
  rm -rf "$out"
  mv "$out.tmp" "$out"
  rm -f "$out.tmp.log"
  echo "$sum" >"$out/.complete"
}

# need_java: set $JAVA once (exits with a message when no JDK can be had).
JAVA="${JAVA:-}"
need_java() {
  [[ -n "$JAVA" ]] || JAVA="$(java_bin)"
}
