#!/bin/sh
# examples/demo-service with HEALTH_PORT=off: no health port at all, and the
# library's answers served on the application's own port through
# health_answer_render(): /ready (and ?check=NAME), /health, /metrics (linted by
# promtool when installed), --healthcheck probing that port; on SIGTERM
# /ready turns 503 there while /health stays 200.
set -u
top_builddir=${top_builddir:-.}
command -v curl >/dev/null 2>&1 || { echo "demo-own-port.sh: curl not found, skipping" >&2; exit 77; }
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo-own-port.sh: $DEMO not built" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-ownport-XXXXXX") || exit 1
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "demo-own-port.sh: FAIL: $*" >&2; tail -5 "$TMP/service.log" >&2; exit 1; }
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT$1" 2>/dev/null; }
rand_port() { n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' '); echo $(( 20000 + n % 12768 )); }

started=0
for attempt in 1 2 3 4 5 6; do
  PORT=$(rand_port)
  : >"$TMP/service.log"
  PORT=$PORT HEALTH_PORT=off HEALTH_DRAIN_MS=3000 HEALTH_SHUTDOWN_DEADLINE_MS=8000 \
    HEALTH_CHECK_INTERVAL_MS=200 FLUSH_FILE="$TMP/flush.log" "$DEMO" >"$TMP/service.log" 2>&1 &
  PID=$!
  i=0
  while [ $i -lt 200 ]; do
    grep -q '"level":"error"' "$TMP/service.log" && break
    [ "$(code /ready)" = 200 ] && { started=1; break; }
    i=$((i + 1)); sleep 0.05
  done
  [ $started -eq 1 ] && break
  kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
  echo "demo-own-port.sh: attempt $attempt on port $PORT failed, retrying" >&2
done
[ $started -eq 1 ] || fail "the demo never answered /ready on its own port"
grep -q '"http_listening"' "$TMP/service.log" && fail "HEALTH_PORT=off still started the health port"

curl -s -m 2 -D "$TMP/h" "http://127.0.0.1:$PORT/ready" >"$TMP/ready.json"
grep -qi '^content-type: application/health+json' "$TMP/h" || fail "/ready content type: $(cat "$TMP/h")"
grep -q '"flush-file:records"' "$TMP/ready.json" || fail "/ready body: $(cat "$TMP/ready.json")"
[ "$(code '/ready?check=flush-file')" = 200 ] || fail "/ready?check=flush-file"
[ "$(code '/ready?check=nope')" = 404 ] || fail "/ready?check=nope is not 404"
[ "$(code /health)" = 200 ] || fail "/health"
curl -s -m 2 "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics"
grep -q '^libhealth_check_status{check="flush-file",status="pass"} 1$' "$TMP/metrics" || fail "/metrics: $(head -3 "$TMP/metrics")"
if command -v promtool >/dev/null 2>&1; then
  promtool check metrics <"$TMP/metrics" >"$TMP/lint" 2>&1 || fail "promtool: $(cat "$TMP/lint")"
fi
curl -s -m 2 -H 'Accept: application/openmetrics-text; version=1.0.0' "http://127.0.0.1:$PORT/metrics" | tail -1 |
  grep -qx '# EOF' || fail "no OpenMetrics on request"
PORT=$PORT HEALTH_PORT=off "$DEMO" --healthcheck || fail "--healthcheck with HEALTH_PORT=off"

kill -TERM "$PID"
i=0
while [ "$(code /ready)" != 503 ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.01; done
[ "$(code /ready)" = 503 ] || fail "/ready on the application port did not turn 503 after SIGTERM"
[ "$(code /health)" = 200 ] || fail "/health is not 200 while draining"
grep -q '"readiness pass -> fail (draining)"' "$TMP/service.log" || fail "the listener did not log the draining transition"
wait "$PID"
rc=$?
PID=
[ $rc -eq 0 ] || fail "exit code $rc"
echo "demo-own-port.sh: ok"
