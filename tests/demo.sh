#!/bin/sh
# End-to-end: examples/demo-service under load is sent SIGTERM.  /ready turns
# 503 while the service keeps serving, a request in flight completes, every
# POST /work that was acknowledged ends up in FLUSH_FILE, and the exit code
# is 0.  Needs curl (skips without it).
set -u

command -v curl >/dev/null 2>&1 || { echo "demo.sh: curl not found, skipping" >&2; exit 77; }

: "${top_builddir:=.}"
: "${top_srcdir:=.}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo.sh: $DEMO not built" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-demo-XXXXXX") || exit 1
PID=
LOOPS=
SLOW=
WD=
cleanup() {
  for p in $LOOPS $SLOW $PID; do kill -9 "$p" 2>/dev/null; done
  [ -n "$WD" ] && kill "$WD" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
  echo "demo.sh: FAIL: $*" >&2
  if [ -f "$TMP/service.log" ]; then
    echo "--- service log (last 40 lines) ---" >&2
    tail -n 40 "$TMP/service.log" >&2
  fi
  exit 1
}

now_ms() { # monotonic enough for intervals of seconds
  s=$(date +%s%N 2>/dev/null)
  case $s in *N) echo $(( $(date +%s) * 1000 ));; *) echo $(( s / 1000000 ));; esac
}

rand_port() { # 20000-32767: below the ephemeral range of outgoing connections
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $(( 20000 + n % 12768 ))
}

# code PATH [PORT]: the HTTP status of GET PATH (000 when nothing answered).
code() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:${2:-$HPORT}$1" 2>/dev/null
}

FLUSH_FILE="$TMP/flush.log"
DRAIN_MS=4000
export FLUSH_FILE

# ---- start on free ports, retrying when a port is taken ----
started=0
attempt=0
while [ $attempt -lt 8 ] && [ $started -eq 0 ]; do
  attempt=$((attempt + 1))
  PORT=$(rand_port)
  HPORT=$(rand_port)
  [ "$PORT" = "$HPORT" ] && continue
  : >"$TMP/service.log" # exists before the background redirection opens it
  # The drain is long enough for the checks "during the drain" below to
  # run inside it on a loaded machine (each is a curl process).
  PORT=$PORT HEALTH_PORT=$HPORT HEALTH_ADDRESS=127.0.0.1 HEALTH_DRAIN_MS=$DRAIN_MS \
    HEALTH_SHUTDOWN_DEADLINE_MS=12500 HEALTH_CHECK_INTERVAL_MS=200 \
    "$DEMO" >"$TMP/service.log" 2>&1 &
  PID=$!
  i=0
  while [ $i -lt 200 ]; do # up to ~10 s
    grep -q '"level":"error"' "$TMP/service.log" && break # e.g. a port in use
    [ "$(code /ready)" = 200 ] && { started=1; break; }
    i=$((i + 1))
    sleep 0.05
  done
  if [ $started -eq 0 ]; then
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
    echo "demo.sh: attempt $attempt on ports $PORT/$HPORT failed, retrying" >&2
  fi
done
[ $started -eq 1 ] || fail "the demo service never became ready"

[ "$(code /health)" = 200 ] || fail "/health is not 200"
curl -s -m 2 "http://127.0.0.1:$HPORT/ready" >"$TMP/ready.json"
grep -q '"flush-file:records"' "$TMP/ready.json" || fail "/ready does not show the flush-file check: $(cat "$TMP/ready.json")"
grep -q '"status":"pass"' "$TMP/ready.json" || fail "/ready is not pass: $(cat "$TMP/ready.json")"
[ "$(code / "$PORT")" = 200 ] || fail "the application port does not answer"

# ---- load: a few loops of POST /work, bounded in count and time ----
# Each loop records every body acknowledged with 200 "recorded", and stops
# when the service no longer answers.
load_loop() {
  n=0
  miss=0
  end=$(( $(now_ms) + 30000 ))
  while [ $n -lt 100 ] && [ "$(now_ms)" -lt $end ]; do
    n=$((n + 1))
    body="job-$1-$n-$$"
    out=$(curl -s -m 5 -w ' %{http_code}' --data-binary "$body" "http://127.0.0.1:$PORT/work" 2>/dev/null)
    case $out in
      "recorded"*" 200") echo "$body" >>"$TMP/ack.$1"; miss=0 ;;
      *" 000"|"") miss=$((miss + 1)); [ $miss -ge 3 ] && break ;;
      *) echo "$body $out" >>"$TMP/refused.$1" ;;
    esac
  done
  echo "$n" >"$TMP/done.$1"
}
for l in 1 2 3; do
  : >"$TMP/ack.$l"
  load_loop $l &
  LOOPS="$LOOPS $!"
done

acks() { cat "$TMP"/ack.* 2>/dev/null | wc -l | tr -d ' '; }
i=0
while [ "$(acks)" -lt 30 ] && [ $i -lt 400 ]; do i=$((i + 1)); sleep 0.02; done
[ "$(acks)" -ge 30 ] || fail "the load never got going"

# ---- a slow request in flight, then SIGTERM ----
curl -s -v -m 10 -o "$TMP/slow.body" -w '%{http_code}' "http://127.0.0.1:$PORT/slow?ms=800" \
  >"$TMP/slow.code" 2>"$TMP/slow.trace" &
SLOW=$!
i=0 # wait until the request has been sent
while ! grep -q '^> GET /slow' "$TMP/slow.trace" 2>/dev/null && [ $i -lt 200 ]; do
  i=$((i + 1)); sleep 0.01
done
grep -q '^> GET /slow' "$TMP/slow.trace" || fail "the slow request was not sent"
acks_at_term=$(acks)
t_term=$(now_ms)
kill -TERM "$PID" || fail "cannot signal the service"

# /ready fails at once while the application (and liveness) keep serving.
i=0
while [ "$(code /ready)" != 503 ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.01; done
[ "$(code /ready)" = 503 ] || fail "/ready did not turn 503 after SIGTERM"
t_503=$(now_ms)
[ "$(code / "$PORT")" = 200 ] || fail "/ was not served during the drain"
[ "$(code /health)" = 200 ] || fail "/health was not 200 during the drain"
curl -s -m 2 "http://127.0.0.1:$HPORT/ready" | grep -q draining || fail "/ready does not say draining"

# The slow request completes.
wait "$SLOW"
slow_rc=$?
SLOW=
[ $slow_rc -eq 0 ] || fail "the in-flight /slow request failed (curl exit $slow_rc)"
[ "$(cat "$TMP/slow.code")" = 200 ] || fail "/slow answered $(cat "$TMP/slow.code")"
grep -q "slow done" "$TMP/slow.body" || fail "/slow body: $(cat "$TMP/slow.body")"

# ---- the service exits by itself ----
# (kill -0 would see the zombie: wait, with a watchdog bounding it)
# The watchdog is forked with none of this script's traps: a TERM that
# reached it before it set its own would otherwise run the EXIT trap (which
# removes $TMP) in the subshell, while this script still needs $TMP.
trap - EXIT INT TERM HUP
(trap 'kill $! 2>/dev/null; exit 0' TERM; sleep 18 & wait $!; kill -9 "$PID" 2>/dev/null) &
WD=$!
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
wait "$PID"
rc=$?
PID=
kill "$WD" 2>/dev/null
WD=
[ $rc -ne 137 ] || fail "the service did not exit within 18 s of SIGTERM"
t_exit=$(now_ms)
[ $rc -eq 0 ] || fail "exit code $rc, expected 0"
for p in $LOOPS; do wait "$p"; done
LOOPS=

# ---- every acknowledged body was flushed ----
[ -f "$FLUSH_FILE" ] || fail "no flush file"
cat "$TMP"/ack.* | sort >"$TMP/acked"
sort "$FLUSH_FILE" >"$TMP/flushed"
total=$(wc -l <"$TMP/acked" | tr -d ' ')
missing=$(comm -23 "$TMP/acked" "$TMP/flushed" | wc -l | tr -d ' ')
[ "$missing" -eq 0 ] || fail "$missing acknowledged bodies missing from the flush file: $(comm -23 "$TMP/acked" "$TMP/flushed" | head -5)"
dups=$(uniq -d "$TMP/flushed" | wc -l | tr -d ' ')
[ "$dups" -eq 0 ] || fail "$dups bodies flushed twice"
[ "$total" -gt "$acks_at_term" ] || echo "demo.sh: note: no POST was acknowledged after SIGTERM" >&2
grep -q '"event":"hook_done","hook":"flush-work","result":"ok"' "$TMP/service.log" || fail "the flush hook did not report ok"

echo "demo.sh: ok: $total acknowledged ($acks_at_term before SIGTERM), all flushed;" \
  "/ready 503 after $((t_503 - t_term)) ms, exit after $((t_exit - t_term)) ms"
exit 0
