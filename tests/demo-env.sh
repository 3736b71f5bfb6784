#!/bin/sh
# The demo service configured through HEALTH_CHECK_<NAME> variables only:
# every built-in checker shows up in /ready, passwords in target URLs never
# appear in the body or the log, and a malformed variable stops the start
# with a message naming it.  Needs curl (skips without it).
set -u

command -v curl >/dev/null 2>&1 || { echo "demo-env.sh: curl not found, skipping" >&2; exit 77; }

: "${top_builddir:=.}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo-env.sh: $DEMO not built" >&2; exit 1; }
SECRET='Demo-env-Secret-93q'

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-demo-env-XXXXXX") || exit 1
# The demo writes its flush file here, not into the build directory.
FLUSH_FILE="$TMP/flush.log"
export FLUSH_FILE
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
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
echo "demo-env.sh: every checker configured from the environment"
exit 0
