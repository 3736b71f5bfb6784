#!/bin/sh
# The demo service configured through HEALTH_CHECK_<NAME> variables only:
# every built-in checker shows up in /ready, passwords in target URLs never
# appear in the body or the log, and a malformed variable stops the start
# with a message naming it.  The demo reads every HEALTH_* variable through
# health_config_from_env(): a bad one of each family (options, fleet,
# paths, controls, checks, HEALTH_NOFILE_MAX) stops the start naming it,
# and HEALTH_KEEP_CONNECTIONS=0 takes effect (a real Redis sees a new
# connection per run).  Needs curl (skips without it).
set -u

command -v curl >/dev/null 2>&1 || { echo "demo-env.sh: curl not found, skipping" >&2; exit 77; }

: "${top_builddir:=.}"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo-env.sh: $DEMO not built" >&2; exit 1; }
SECRET='Demo-env-Secret-93q'

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-demo-env-XXXXXX") || exit 1
# The demo writes its flush file here, not into the build directory.
FLUSH_FILE="$TMP/flush.log"
export FLUSH_FILE
PID=
REDIS=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$REDIS" ] && sh "$top_srcdir/tests/redis-server.sh" stop "$TMP/redis" >/dev/null 2>&1
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
  echo "demo-env.sh: FAIL: $*" >&2
  [ -f "$TMP/service.log" ] && tail -n 30 "$TMP/service.log" >&2
  exit 1
}

rand_port() { # 20000-32767: below the ephemeral range of outgoing connections
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $(( 20000 + n % 12768 ))
}

code() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$HPORT$1" 2>/dev/null
}

have() { grep -q "^#define $1 1" "$top_builddir/config.h" 2>/dev/null; }

# Every checker, pointed at this demo's own application port, this
# directory, this process; PostgreSQL and Redis at a closed port, not
# critical: they fail with "connection refused" while the service is ready.
set_checks() {
  export HEALTH_CHECK_APP_HTTP="http://monitor:$SECRET@127.0.0.1:$PORT/"
  export HEALTH_CHECK_APP_HTTP_STATUS=2xx
  export HEALTH_CHECK_APP_TCP="tcp://127.0.0.1:$PORT"
  export HEALTH_CHECK_APP_TCP_TIMEOUT_MS=1000
  export HEALTH_CHECK_SCRATCH="disk:$TMP"
  export HEALTH_CHECK_SCRATCH_WARN=1% HEALTH_CHECK_SCRATCH_FAIL=1M HEALTH_CHECK_SCRATCH_WRITE_PROBE=1
  export HEALTH_CHECK_MEM=memory: HEALTH_CHECK_MEM_LIVENESS=1
  export HEALTH_CHECK_OPEN_FILES=fds: HEALTH_CHECK_OPEN_FILES_WARN=85
  if have HAVE_LIBPQ; then
    export HEALTH_CHECK_DB="postgresql://app:$SECRET@127.0.0.1:1/app" HEALTH_CHECK_DB_CRITICAL=0
  fi
  if have HAVE_REDIS; then
    export HEALTH_CHECK_CACHE="redis://:$SECRET@127.0.0.1:1" HEALTH_CHECK_CACHE_CRITICAL=0
  fi
}

started=0
attempt=0
while [ $attempt -lt 8 ] && [ $started -eq 0 ]; do
  attempt=$((attempt + 1))
  PORT=$(rand_port)
  HPORT=$(rand_port)
  [ "$PORT" = "$HPORT" ] && continue
  set_checks
  : >"$TMP/service.log"
  PORT=$PORT HEALTH_PORT=$HPORT HEALTH_ADDRESS=127.0.0.1 HEALTH_CHECK_INTERVAL_MS=200 \
    HEALTH_LOG_LEVEL=debug "$DEMO" >"$TMP/service.log" 2>&1 &
  PID=$!
  i=0
  while [ $i -lt 200 ]; do # up to ~10 s
    grep -q '"level":"error"' "$TMP/service.log" && break
    [ "$(code /ready)" = 200 ] && { started=1; break; }
    i=$((i + 1))
    sleep 0.05
  done
  if [ $started -eq 0 ]; then
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
  fi
done
[ $started -eq 1 ] || fail "the demo service never became ready"

want="app_http:responseTime app_tcp:responseTime scratch:utilization mem:utilization open_files:utilization"
have HAVE_LIBPQ && want="$want db:responseTime"
have HAVE_REDIS && want="$want cache:responseTime"
# the failing, non-critical checks need a run or two to show their output
i=0
while [ $i -lt 100 ]; do
  curl -s -m 2 "http://127.0.0.1:$HPORT/ready" >"$TMP/ready.json"
  missing=
  for k in $want; do grep -q "\"$k\"" "$TMP/ready.json" || missing="$missing $k"; done
  if [ -z "$missing" ] && { ! have HAVE_LIBPQ || grep -q 'connection refused' "$TMP/ready.json"; }; then break; fi
  i=$((i + 1))
  sleep 0.05
done
[ -z "$missing" ] || fail "/ready lacks$missing: $(cat "$TMP/ready.json")"
for k in app_http app_tcp scratch mem open_files; do
  grep -q "\"$k:[a-zA-Z]*\":\[{[^]]*\"status\":\"pass\"" "$TMP/ready.json" ||
    fail "$k does not pass: $(cat "$TMP/ready.json")"
done
if have HAVE_LIBPQ; then
  grep -q '"status":"warn"' "$TMP/ready.json" || fail "/ready is not warn: $(cat "$TMP/ready.json")"
fi
curl -s -m 2 "http://127.0.0.1:$HPORT/health" | grep -q '"mem:utilization"' ||
  fail "the memory check (_LIVENESS=1) is not in /health"
grep -q "$SECRET" "$TMP/ready.json" && fail "a password is in the /ready body"
grep -q "$SECRET" "$TMP/service.log" && fail "a password is in the log"
grep -q '"check_from_env"' "$TMP/service.log" || fail "no check_from_env log line"
kill -TERM "$PID"
wait "$PID" 2>/dev/null
PID=

# ---- a malformed variable: the service refuses to start, naming it ----
HEALTH_CHECK_BROKEN="http://monitor:$SECRET@127.0.0.1:0/" PORT=$PORT HEALTH_PORT=$HPORT \
  HEALTH_ADDRESS=127.0.0.1 "$DEMO" >"$TMP/service.log" 2>&1
rc=$?
[ $rc = 2 ] || fail "a malformed HEALTH_CHECK_BROKEN gave exit code $rc, not 2"
grep -q 'HEALTH_CHECK_BROKEN: check .broken.: invalid HTTP URL: port out of range' "$TMP/service.log" ||
  fail "the error does not name the variable"
grep -q "$SECRET" "$TMP/service.log" && fail "the error echoes the password"

# ---- one bad variable of each family: refused by name, nothing applied ----
for bad in HEALTH_JITTER=51 HEALTH_DRAIN_MS=5s HEALTH_READY_PATH=ready HEALTH_AGENT_WEIGHT=300 \
  HEALTH_CHECK_BROKEN=ftp://x HEALTH_NOFILE_MAX=+5; do
  name=${bad%%=*}
  # (bounded: a demo that ignored the variable would serve until killed)
  timeout 10 env "$bad" PORT=$PORT HEALTH_PORT=$HPORT HEALTH_ADDRESS=127.0.0.1 "$DEMO" >"$TMP/service.log" 2>&1
  rc=$?
  [ $rc = 2 ] || fail "$bad gave exit code $rc, not 2"
  grep -q "\"bad_config\".*$name" "$TMP/service.log" || fail "$bad: the error does not name $name"
  grep -q '"check_from_env"' "$TMP/service.log" && fail "$bad: checks were registered anyway"
  grep -q '"started"' "$TMP/service.log" && fail "$bad: the service started anyway"
done

# ---- HEALTH_KEEP_CONNECTIONS=0 takes effect: a connection per run ----
for v in $(env | sed -n 's/^\(HEALTH_CHECK_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
if have HAVE_REDIS; then
  ports=$(sh "$top_srcdir/tests/redis-server.sh" start "$TMP/redis" 2>"$TMP/redis.err")
  rrc=$?
  if [ $rrc = 0 ]; then
    REDIS=1
    RPORT=${ports#* }
    conns() {
      sh "$top_srcdir/tests/redis-server.sh" cli "$TMP/redis" INFO stats 2>/dev/null |
        sed -n 's/^total_connections_received:\([0-9]*\).*/\1/p'
    }
    before=$(conns)
    [ -n "$before" ] || fail "cannot read Redis's connection count"
    HEALTH_CHECK_CACHE="redis://:dflt-Xq7-secret-pw@127.0.0.1:$RPORT" HEALTH_KEEP_CONNECTIONS=0 \
      HEALTH_CHECK_INTERVAL_MS=100 HEALTH_JITTER=off PORT=$PORT HEALTH_PORT=$HPORT \
      HEALTH_ADDRESS=127.0.0.1 "$DEMO" >"$TMP/service.log" 2>&1 &
    PID=$!
    # With connections kept, the check's runs share one connection; with
    # HEALTH_KEEP_CONNECTIONS=0 each run opens its own: wait for 6 more.
    # Each INFO counts its own redis-cli connection: i of them are taken off.
    i=0
    seen=0
    while [ $i -lt 200 ] && [ $seen -lt 6 ]; do # up to ~10 s
      sleep 0.05
      now=$(conns)
      i=$((i + 1))
      [ -n "$now" ] && seen=$((now - before - i))
    done
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null
    PID=
    [ $seen -ge 6 ] || fail "HEALTH_KEEP_CONNECTIONS=0 had no effect: $seen connections in ~10 s"
  elif [ $rrc != 77 ]; then
    fail "redis-server.sh start failed: $(cat "$TMP/redis.err")"
  fi
fi
echo "demo-env.sh: every checker configured from the environment"
exit 0
