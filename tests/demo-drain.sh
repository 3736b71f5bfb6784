#!/bin/sh
# End-to-end, outside the defaults: examples/demo-service with only
# HEALTH_DRAIN_MS=20000 HEALTH_SHUTDOWN_DEADLINE_MS=30000 set (no drain
# minimum, the application reports its requests in flight), under a
# comma-decimal locale (de_DE.UTF-8, built here with localedef; the demo
# calls setlocale(LC_ALL, "")).  /ready bodies parse as JSON; after SIGTERM
# /ready is 503 and the application port still answers for 20 s (a drain
# once cut to 15 s whenever nothing was in flight); then the work is
# flushed and the exit code is 0.  Takes about 22 s.  Needs curl, python3
# and localedef (Debian: locales).  Under the sanitizers
# (HEALTH_TEST_TIME_SCALE above 1) the drain is 10 s and the deadline 20 s,
# with the same assertions: the plain build proves the 20 s of the issue.
set -u

command -v curl >/dev/null 2>&1 || { echo "demo-drain.sh: curl not found, skipping" >&2; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "demo-drain.sh: python3 not found, skipping" >&2; exit 77; }
command -v localedef >/dev/null 2>&1 || { echo "demo-drain.sh: FAIL: localedef not found (install locales)" >&2; exit 1; }

: "${top_builddir:=.}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo-drain.sh: $DEMO not built" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-drain-XXXXXX") || exit 1
PID=
WD=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$WD" ] && kill "$WD" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
  echo "demo-drain.sh: FAIL: $*" >&2
  [ -f "$TMP/service.log" ] && { echo "--- service log (last 30 lines) ---" >&2; tail -n 30 "$TMP/service.log" >&2; }
  exit 1
}
now_ms() { s=$(date +%s%N); echo $(( s / 1000000 )); }
rand_port() { n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' '); echo $(( 20000 + n % 12768 )); }
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:${2:-$HPORT}$1" 2>/dev/null; }
is_json() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }

localedef -i de_DE -f UTF-8 "$TMP/de_DE.UTF-8" >"$TMP/localedef.out" 2>&1 ||
  fail "localedef could not build de_DE.UTF-8: $(tail -n 3 "$TMP/localedef.out")"
# The premise: this locale writes decimal commas.
[ "$(LOCPATH="$TMP" LC_ALL=de_DE.UTF-8 python3 -c 'import locale; locale.setlocale(locale.LC_ALL, ""); print(locale.localeconv()["decimal_point"])')" = "," ] ||
  fail "the generated locale does not use a decimal comma"

# The drain and deadline this run uses (ms), and the probe window's bounds.
if [ "${HEALTH_TEST_TIME_SCALE:-1}" -gt 1 ] 2>/dev/null; then DRAIN=10000; else DRAIN=20000; fi
DEADLINE=$((DRAIN + 10000))
S=$((DRAIN / 1000))
FLUSH_FILE="$TMP/flush.log"
started=0
attempt=0
while [ $attempt -lt 8 ] && [ $started -eq 0 ]; do
  attempt=$((attempt + 1))
  PORT=$(rand_port)
  HPORT=$(rand_port)
  [ "$PORT" = "$HPORT" ] && continue
  : >"$TMP/service.log"
  env -u HEALTH_DRAIN_MIN_MS LOCPATH="$TMP" LC_ALL=de_DE.UTF-8 FLUSH_FILE="$FLUSH_FILE" \
    PORT=$PORT HEALTH_PORT=$HPORT HEALTH_ADDRESS=127.0.0.1 \
    HEALTH_DRAIN_MS=$DRAIN HEALTH_SHUTDOWN_DEADLINE_MS=$DEADLINE \
    "$DEMO" >"$TMP/service.log" 2>&1 &
  PID=$!
  i=0
  while [ $i -lt 200 ]; do
    grep -q '"level":"error"' "$TMP/service.log" && break
    [ "$(code /ready)" = 200 ] && { started=1; break; }
    i=$((i + 1))
    sleep 0.05
  done
  if [ $started -eq 0 ]; then
    kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
  fi
done
[ $started -eq 1 ] || fail "the demo service never became ready"

# Some work to flush, then bodies that hold a fractional-capable number.
for n in 1 2 3; do
  curl -s -m 2 --data-binary "job-$n" "http://127.0.0.1:$PORT/work" | grep -q recorded || fail "POST /work $n"
done
curl -s -m 2 "http://127.0.0.1:$HPORT/ready" >"$TMP/ready.json"
is_json "$TMP/ready.json" || fail "/ready is not JSON under de_DE.UTF-8: $(cat "$TMP/ready.json")"
grep -q '"observedValue":' "$TMP/ready.json" || fail "/ready has no observedValue: $(cat "$TMP/ready.json")"
# The plan logged at start says what will happen.
grep '"event":"shutdown_plan"' "$TMP/service.log" | head -n 1 >"$TMP/plan.json"
is_json "$TMP/plan.json" || fail "no shutdown_plan line (or not JSON)"
grep -q "\"drain_ms\":$DRAIN,\"drain_min_ms\":$DRAIN,\"drain_early_end\":\"never\",\"deadline_ms\":$DEADLINE" "$TMP/plan.json" ||
  fail "the plan is not a $S s drain that never ends early: $(cat "$TMP/plan.json")"

t_term=$(now_ms)
kill -TERM "$PID" || fail "cannot signal the service"
# For the drain ($S s): /ready 503, the application port and /health answering.
curl -s -m 2 "http://127.0.0.1:$HPORT/ready" >"$TMP/draining.json"
is_json "$TMP/draining.json" || fail "the draining /ready is not JSON: $(cat "$TMP/draining.json")"
grep -q draining "$TMP/draining.json" || fail "/ready does not say draining: $(cat "$TMP/draining.json")"
checks=0
last_ok=0
while :; do
  el=$(( $(now_ms) - t_term ))
  [ $el -ge $((DRAIN - 500)) ] && break
  r=$(code /ready); a=$(code / "$PORT"); l=$(code /health)
  [ "$r" = 503 ] || fail "/ready answered $r ${el} ms after SIGTERM"
  [ "$a" = 200 ] || fail "the application port answered '$a' ${el} ms after SIGTERM (the drain is $S s)"
  [ "$l" = 200 ] || fail "/health answered $l ${el} ms after SIGTERM"
  checks=$((checks + 1))
  last_ok=$el
  sleep 0.5
done
# The last probe must come late in the window: a slow
# machine that could not probe near its end proves nothing.
[ $last_ok -ge $((DRAIN - 3000)) ] || fail "the last probe ran ${last_ok} ms after SIGTERM: too early to prove a $S s drain"
# The watchdog is forked with none of this script's traps: a TERM that
# reached it before it set its own would otherwise run the EXIT trap (which
# removes $TMP) in the subshell, while this script still needs $TMP.
trap - EXIT INT TERM HUP
(trap 'kill $! 2>/dev/null; exit 0' TERM; sleep $((DEADLINE / 1000 + 2)) & wait $!; kill -9 "$PID" 2>/dev/null) &
WD=$!
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
wait "$PID"
rc=$?
PID=
kill "$WD" 2>/dev/null
WD=
t_exit=$(( $(now_ms) - t_term ))
[ $rc -ne 137 ] || fail "the service did not exit within $((DEADLINE / 1000 + 2)) s of SIGTERM"
[ $rc -eq 0 ] || fail "exit code $rc, expected 0"
[ $t_exit -ge $DRAIN ] || fail "exited ${t_exit} ms after SIGTERM: the $S s drain was cut"
grep -q '"event":"drain_ended","reason":"window elapsed"' "$TMP/service.log" || fail "the drain did not run its window"
drained=$(sed -n 's/.*"event":"drain_ended".*"elapsed_ms":\([0-9]*\).*/\1/p' "$TMP/service.log")
[ "${drained:-0}" -ge $DRAIN ] || fail "the drain ended after ${drained:-?} ms, not $DRAIN"
grep -q '"event":"hook_done","hook":"flush-work","result":"ok"' "$TMP/service.log" || fail "the flush hook did not report ok"
for n in 1 2 3; do grep -qx "job-$n" "$FLUSH_FILE" || fail "job-$n was not flushed"; done
# Every line the library logged is JSON, in this locale too.
grep '"lib":"libhealth"' "$TMP/service.log" >"$TMP/lib.log"
python3 -c 'import json,sys
for n, l in enumerate(open(sys.argv[1]), 1): json.loads(l)' "$TMP/lib.log" || fail "a log line is not JSON"
echo "demo-drain.sh: ok: /ready 503 and the application answering through the $S s drain ($checks probes, the last ${last_ok} ms after SIGTERM; the log: drain ended after $S s) under de_DE.UTF-8; exit 0 after ${t_exit} ms, all flushed"
exit 0
