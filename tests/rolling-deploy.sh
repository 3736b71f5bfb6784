#!/bin/sh
# Zero-downtime proof behind a real load balancer.
#
# HAProxy on loopback stands in for an ALB: it health-checks GET /ready on
# each demo-service's health port (fast settings, so the test is short) and
# routes the application port.  A bounded client load (tests/loadclient.c:
# GET /, GET /slow?ms=200, POST /work with distinct bodies) runs through it
# the whole time while instance A is replaced by instance B.
#
# Scenarios (ROLLING_SCENARIOS, default all four; the first two only when
# HEALTH_TEST_TIME_SCALE is above 1, as in the sanitizer builds):
#   default          B starts and is seen UP by HAProxy, then A gets SIGTERM.
#                    Drain 1500 ms >= fall x inter (2 x 200 ms) + margin.
#                    Must lose nothing: zero failed or reset requests, and
#                    zero requests that HAProxy had to retry or redispatch.
#   harsh            Fargate Spot order: SIGTERM to A first, B starts right
#                    after (A is the only instance until then).
#   short-drain      as default, with HEALTH_DRAIN_MS=0: A stops accepting
#                    before HAProxy has noticed; HAProxy's retries hide it.
#   short-drain-noretry
#                    as short-drain behind an LB that does not retry (ALB):
#                    what a too-short drain really costs.
#   rolling          (not in the default list: a minute or more) a
#                    fleet of ROLLING_INSTANCES [10] replaced ROLLING_BATCH
#                    [2] at a time under load, with the default scenario's
#                    assertions; bench/rolling-fleet.sh runs it.
# In every scenario each acknowledged POST /work body must be in the union of
# the flushed files (the flush hook guarantees it), and A and B must exit 0.
# A table of what each scenario cost is printed at the end.
#
# Environment: top_srcdir, top_builddir (set by `make check`);
# HEALTH_TEST_REQUIRE_SERVERS=1 turns a missing haproxy/python3/cc into a
# failure instead of a skip (exit 77).  ROLLING_DRAIN_MS overrides the
# 1500 ms drain of the default and harsh scenarios (a value below the
# detection time must make the default scenario fail); ROLLING_KEEP=1 keeps
# the logs.
set -u

srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-.}
require=${HEALTH_TEST_REQUIRE_SERVERS:-0}
# Under the sanitizers (HEALTH_TEST_TIME_SCALE above 1) the two scenarios
# that drive the library's own drain run, with all their assertions; the two
# short-drain ones vary HAProxy's side (retries or not) over a drain of 0 and
# run in the plain build.  ROLLING_SCENARIOS picks any set in any build.
if [ "${HEALTH_TEST_TIME_SCALE:-1}" -gt 1 ] 2>/dev/null; then
  scenarios=${ROLLING_SCENARIOS:-default harsh}
else
  scenarios=${ROLLING_SCENARIOS:-default harsh short-drain short-drain-noretry}
fi

say() { echo "rolling-deploy: $*"; }
skip() {
  if [ "$require" = 1 ]; then say "FAIL: $* (HEALTH_TEST_REQUIRE_SERVERS=1)"; exit 1; fi
  say "SKIP: $*"
  exit 77
}
have() { command -v "$1" >/dev/null 2>&1; }

HAPROXY=${HAPROXY:-}
if [ -z "$HAPROXY" ]; then
  for h in haproxy /usr/sbin/haproxy /usr/local/sbin/haproxy; do
    if have "$h"; then HAPROXY=$(command -v "$h"); break; fi
  done
fi
[ -n "$HAPROXY" ] && have "$HAPROXY" || skip "haproxy not found (Debian package haproxy)"
have python3 || skip "python3 not found (used to talk to HAProxy's stats socket)"
CC=${CC:-cc}

demo=$builddir/examples/demo-service
probe=$builddir/health-probe
[ -x "$demo" ] || { say "FAIL: $demo not built (make check builds it)"; exit 1; }
[ -x "$probe" ] || { say "FAIL: $probe not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-rolling.XXXXXX") || exit 1
pids=""
keep=${ROLLING_KEEP:-0} # 1: keep the logs (kept anyway on failure)
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  if [ "${keep:-0}" = 1 ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The load client: built by `make check` when Makefile.am lists it, else here.
if [ -x "$builddir/tests/loadclient" ]; then
  loadclient=$builddir/tests/loadclient
else
  loadclient=$tmp/loadclient
  have "$CC" || skip "no C compiler ($CC) to build the load client"
  "$CC" -O2 -pthread -o "$loadclient" "$srcdir/tests/loadclient.c" ||
    { say "FAIL: cannot build the load client"; exit 1; }
fi

# One command on HAProxy's admin socket; prints the answer.
cat >"$tmp/hactl.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
EOF

now_ms() { date +%s%3N; }
# A process is alive (a zombie awaiting `wait` is not).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  case $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) in Z) return 1 ;; esac
  return 0
}
# Only one socket listens on the port (ours): two listeners sharing a port
# through SO_REUSEPORT would split the traffic silently.
sole_listener() {
  have ss || return 0
  [ "$(ss -Hltn "sport = :$1" 2>/dev/null | wc -l)" -eq 1 ]
}

hactl() { python3 "$tmp/hactl.py" "$sock" "$1"; }
# "show stat" field FIELD of row be/SERVER (BACKEND for the backend row).
stat_field() {
  hactl "show stat" | awk -F, -v sv="$1" -v f="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) h[$i] = i; next }
    $1 == "be" && $2 == sv { print $(h[f]); exit }'
}
status_of() { stat_field "$1" status; }

# wait_for SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds.
wait_for() {
  limit=$(( $(now_ms) + $1 * 1000 ))
  shift
  while ! "$@"; do
    [ "$(now_ms)" -lt "$limit" ] || return 1
    sleep 0.05
  done
}
is_up() { [ "$(status_of "$1")" = UP ]; }
is_not_up() { [ "$(status_of "$1")" != UP ]; }
is_dead() { ! alive "$1"; }
lines_at_least() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }
server_stot_at_least() { [ "$(stat_field "$1" stot)" -ge "$2" ]; }

# start_instance NAME APPPORT HEALTHPORT DRAIN_MS: sets $inst_pid
start_instance() {
  env PORT="$2" HEALTH_PORT="$3" HEALTH_ADDRESS=127.0.0.1 \
    FLUSH_FILE="$sdir/flush-$1.log" HEALTH_DRAIN_MS="$4" \
    HEALTH_SHUTDOWN_DEADLINE_MS=8000 HEALTH_LOG_LEVEL=info \
    HEALTH_SERVICE_ID="demo-$1" \
    "$demo" 2>"$sdir/demo-$1.log" &
  inst_pid=$!
  pids="$pids $inst_pid"
}
# A freshly registered target is "initial" on an ALB: no traffic before it
# has passed the healthy threshold.  HAProxy's "enable server" would mark it
# UP at once, so its health is set down in the same CLI call.
register() { hactl "enable server be/$1; set server be/$1 health down" >/dev/null; }

# wait_exit PID SECONDS: reaps PID; its exit status goes to $rc (124: it
# hung and was killed).  Not in $(...): only this shell can reap its child.
wait_exit() {
  if wait_for "$2" is_dead "$1"; then
    wait "$1"
    rc=$?
  else
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    rc=124
  fi
}

failures=0
fail() { say "FAIL [$scenario]: $*"; failures=$((failures + 1)); keep=1; }

fmt='%-20s %5s %6s %7s %5s %6s %5s %6s %5s %6s %8s %7s %7s %6s\n'
printf "$fmt" scenario reqs failed http5xx reset closed other acked lost lb_rtr lb_redis \
  down_ms exit_ms outage \
  >"$tmp/summary"

run_scenario() {
  scenario=$1
  sdir=$tmp/$scenario
  mkdir -p "$sdir"
  drain=${ROLLING_DRAIN_MS:-1500}
  retry="retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout"
  case $scenario in
    default | harsh) ;;
    short-drain) drain=0 ;;
    short-drain-noretry)
      drain=0
      retry="retries 0
  retry-on none" ;;
    *) say "unknown scenario $scenario"; failures=$((failures + 1)); return ;;
  esac
  set -- $(python3 "$srcdir/tests/free-ports.py" 5)
  lb=$1 a_port=$2 a_health=$3 b_port=$4 b_health=$5
  sock=$sdir/haproxy.sock

  # The load balancer.  Both targets start deregistered (maintenance).
  # retry-on: a request HAProxy sent to a target that closed its listener or
  # its connection without answering is sent again, to the other target
  # (redispatch).  This replays a POST, which is safe here because /work
  # bodies are distinct and a replayed body is only recorded twice; a real
  # service needs idempotency keys before it turns this on.
  cat >"$sdir/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 512
  stats socket $sock mode 600 level admin
  log stdout format raw local0

defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 30s
  timeout server 10s
  timeout http-keep-alive 30s
  timeout check 1s
  $retry

frontend fe
  bind 127.0.0.1:$lb
  default_backend be

backend be
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 200 fastinter 200 downinter 200 fall 2 rise 2
  server A 127.0.0.1:$a_port check port $a_health disabled
  server B 127.0.0.1:$b_port check port $b_health disabled
EOF
  "$HAPROXY" -c -q -f "$sdir/haproxy.cfg" || { fail "haproxy rejects its configuration"; return; }
  "$HAPROXY" -db -f "$sdir/haproxy.cfg" >"$sdir/haproxy.log" 2>&1 &
  hp=$!
  pids="$pids $hp"
  if ! wait_for 10 test -S "$sock" || ! wait_for 5 hactl "show info" >/dev/null 2>&1; then
    fail "haproxy did not start"; kill "$hp" 2>/dev/null; return
  fi

  # A comes up and is registered.
  start_instance A "$a_port" "$a_health" "$drain"
  a=$inst_pid
  wait_for 20 "$probe" --timeout 500 "http://127.0.0.1:$a_health/ready" 2>/dev/null ||
    { fail "A never became ready: $(tail -n 3 "$sdir/demo-A.log" | tr '\n' ' ')"; cleanup_scenario; return; }
  sole_listener "$a_port" || { fail "another process shares A's port $a_port"; cleanup_scenario; return; }
  register A
  wait_for 10 is_up A || { fail "HAProxy never saw A up"; cleanup_scenario; return; }

  # The load: bounded in count and time; stopped by SIGTERM below.
  "$loadclient" -p "$lb" -c 6 -n 20000 -t 40 -P 5 -s 200 -x "$scenario" \
    -a "$sdir/acked.txt" -l "$sdir/requests.log" >"$sdir/client.out" 2>&1 &
  client=$!
  pids="$pids $client"
  wait_for 10 lines_at_least "$sdir/requests.log" 30 ||
    { fail "the load never got going"; cleanup_scenario; return; }

  b=
  if [ "$scenario" != harsh ]; then
    start_instance B "$b_port" "$b_health" 1500
    b=$inst_pid
    wait_for 20 "$probe" --timeout 500 "http://127.0.0.1:$b_health/health" 2>/dev/null ||
      { fail "B never started"; cleanup_scenario; return; }
    sole_listener "$b_port" || { fail "another process shares B's port $b_port"; cleanup_scenario; return; }
    register B
    wait_for 10 is_up B || { fail "HAProxy never saw B up"; cleanup_scenario; return; }
    wait_for 10 server_stot_at_least B 10 || { fail "B got no traffic"; cleanup_scenario; return; }
  fi

  # Replace A.
  a_before=$(stat_field A stot)
  t0=$(now_ms)
  kill -TERM "$a"
  if [ "$scenario" = harsh ]; then
    start_instance B "$b_port" "$b_health" 1500
    b=$inst_pid
    wait_for 20 "$probe" --timeout 500 "http://127.0.0.1:$b_health/health" 2>/dev/null ||
      { fail "B never started"; cleanup_scenario; return; }
    register B
  fi
  # When HAProxy takes A out, and when A exits (whichever comes first).
  down_ms= exit_ms= a_at_down=
  limit=$((t0 + 15000))
  while [ -z "$down_ms" ] || [ -z "$exit_ms" ]; do
    if [ -z "$exit_ms" ] && ! alive "$a"; then exit_ms=$(( $(now_ms) - t0 )); fi
    if [ -z "$down_ms" ] && is_not_up A; then
      down_ms=$(( $(now_ms) - t0 ))
      a_at_down=$(stat_field A stot)
    fi
    [ "$(now_ms)" -lt "$limit" ] || break
    sleep 0.02
  done
  [ -n "$down_ms" ] || { fail "HAProxy never took A out"; down_ms=-1; a_at_down=$a_before; }
  [ -n "$exit_ms" ] || exit_ms=-1
  wait_exit "$a" 1
  a_rc=$rc
  # The shutdown's own figure is exact (the poll above is not).
  logged=$(sed -n 's/.*"event":"shutdown_complete".*"elapsed_ms":\([0-9]*\).*/\1/p' "$sdir/demo-A.log")
  [ -n "$logged" ] && exit_ms=$logged
  wait_for 10 is_up B || fail "HAProxy never saw B up"
  # Some traffic on B alone, then stop the load.
  b_now=$(stat_field B stot)
  wait_for 10 server_stot_at_least B $((b_now + 20)) || fail "B served nothing after A left"
  kill -TERM "$client"
  wait_exit "$client" 15
  client_rc=$rc
  summary=$(tail -n 1 "$sdir/client.out")

  lb_retries=$(stat_field BACKEND wretr)
  lb_redisp=$(stat_field BACKEND wredis)
  lb_5xx=$(hactl "show stat" | awk -F, 'NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) h[$i] = i; next }
    $1 == "fe" && $2 == "FRONTEND" { print $(h["hrsp_5xx"]); exit }')

  # B: first SIGTERM (readiness flips), second one skips the rest of its
  # drain; the flush hook still runs.
  kill -TERM "$b"
  wait_for 5 sh -c "! '$probe' --timeout 500 'http://127.0.0.1:$b_health/ready' 2>/dev/null" ||
    fail "B's /ready did not fail after SIGTERM"
  kill -TERM "$b" 2>/dev/null
  wait_exit "$b" 15
  b_rc=$rc
  kill -TERM "$hp" 2>/dev/null
  wait_exit "$hp" 10

  # Every acknowledged body must have been flushed by A or B.
  cat "$sdir"/flush-*.log 2>/dev/null | LC_ALL=C sort -u >"$sdir/flushed.sorted"
  LC_ALL=C sort -u "$sdir/acked.txt" >"$sdir/acked.sorted"
  LC_ALL=C comm -23 "$sdir/acked.sorted" "$sdir/flushed.sorted" >"$sdir/lost.txt"
  lost=$(wc -l <"$sdir/lost.txt")

  val() { echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  total=$(val total) ok=$(val ok) acked=$(val acked)
  failed=$(( ${total:-0} - ${ok:-0} ))
  http5xx=$(awk '$5 == "http_error" && $6 >= 500' "$sdir/requests.log" | wc -l)
  outage=$(awk '$5 != "ok" { if (first == "") first = $1; last = $1 }
    END { print (first == "") ? 0 : last - first }' "$sdir/requests.log")
  printf "$fmt" "$scenario" "$total" "$failed" "$http5xx" "$(val reset)" "$(val closed)" \
    "$(( $(val other) + $(val timeout) + $(val connect) ))" "$acked" "$lost" \
    "$lb_retries" "$lb_redisp" "$down_ms" "$exit_ms" "$outage" >>"$tmp/summary"
  say "$scenario: $summary; A exit $a_rc, B exit $b_rc, A served $((a_at_down - a_before)) requests between SIGTERM and HAProxy taking it out; LB retries $lb_retries, redispatches $lb_redisp, 5xx sent $lb_5xx"

  # Assertions for every scenario.
  [ -n "$total" ] && [ "$total" -ge 100 ] || fail "too little load ($summary)"
  [ "${acked:-0}" -ge 20 ] || fail "too few acknowledged POSTs ($acked)"
  [ "$lost" -eq 0 ] || { fail "$lost acknowledged bodies are in no flush file:"; head -5 "$sdir/lost.txt"; }
  [ "$a_rc" = 0 ] || fail "A exited with $a_rc (expected 0)"
  [ "$b_rc" = 0 ] || fail "B exited with $b_rc (expected 0)"
  [ "$client_rc" = 0 ] || [ "$client_rc" = 1 ] || fail "load client exited with $client_rc"
  grep -q '"event":"flushed"' "$sdir/demo-A.log" || fail "A never ran its flush hook"
  if [ "$scenario" = default ]; then
    [ "$failed" -eq 0 ] || fail "$failed failed requests in the default configuration"
    [ "$client_rc" = 0 ] || fail "load client reports failures"
    # HAProxy's retries would hide a service that stops too early: the drain
    # alone must make the deploy clean, as behind an ALB, which never retries.
    [ "$lb_retries" = 0 ] && [ "$lb_redisp" = 0 ] ||
      fail "HAProxy had to retry ($lb_retries) or redispatch ($lb_redisp) requests: A stopped serving too early"
    [ "$((a_at_down - a_before))" -gt 0 ] ||
      fail "A served nothing while draining (the drain was not exercised)"
    [ "$exit_ms" -ge "$drain" ] || fail "A exited after $exit_ms ms, before its $drain ms drain"
  fi
  if [ "$failed" -gt 0 ]; then
    say "$scenario: first failed requests (ms worker method path outcome status latency):"
    grep -v ' ok 200 ' "$sdir/requests.log" | head -8 | sed 's/^/    /'
  fi
}

# ---- rolling: a fleet replaced in batches --------------------------------
# ROLLING_INSTANCES (default 10) instances of the old version behind HAProxy
# are replaced ROLLING_BATCH (default 2) at a time, as an ECS service or a
# Kubernetes Deployment does (maxSurge = maxUnavailable = batch): start the
# batch's new instances, wait until HAProxy sees them up, SIGTERM as many old
# ones, wait for them to exit, next batch.  Under the same load, with the
# default scenario's assertions: no failed request, no request HAProxy had
# to retry or redispatch, no lost acknowledged body, every instance exits 0.
stot_of_new() {
  hactl "show stat" | awk -F, '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) h[$i] = i; next }
    $1 == "be" && $2 ~ /^n[0-9]/ { s += $(h["stot"]) } END { print s + 0 }'
}
new_served_at_least() { [ "$(stot_of_new)" -ge "$1" ]; }
# bring_up NAME: start it, wait until ready, register it with HAProxy
bring_up() {
  eval "bu_port=\$port_$1 bu_health=\$health_$1"
  start_instance "$1" "$bu_port" "$bu_health" "$drain"
  eval "pid_$1=$inst_pid"
  wait_for 20 "$probe" --timeout 500 "http://127.0.0.1:$bu_health/ready" 2>/dev/null ||
    { fail "$1 never became ready: $(tail -n 3 "$sdir/demo-$1.log" | tr '\n' ' ')"; return 1; }
  sole_listener "$bu_port" || { fail "another process shares $1's port $bu_port"; return 1; }
  register "$1"
}
run_rolling() {
  scenario=rolling
  sdir=$tmp/$scenario
  mkdir -p "$sdir"
  n=${ROLLING_INSTANCES:-10} batch=${ROLLING_BATCH:-2}
  drain=${ROLLING_DRAIN_MS:-1500}
  case "$n$batch" in *[!0-9]*) fail "ROLLING_INSTANCES and ROLLING_BATCH must be numbers"; return ;; esac
  if [ "$n" -lt 2 ] || [ "$n" -gt 40 ] || [ "$batch" -lt 1 ] || [ "$batch" -gt "$n" ]; then
    fail "need 2 <= ROLLING_INSTANCES <= 40 and 1 <= ROLLING_BATCH <= ROLLING_INSTANCES"
    return
  fi
  set -- $(python3 "$srcdir/tests/free-ports.py" $((4 * n + 1)))
  lb=$1
  shift
  sock=$sdir/haproxy.sock
  servers=
  # old instances o0.., new ones n0..: an app port and a health port each
  for kind in o n; do
    i=0
    while [ $i -lt "$n" ]; do
      eval "port_$kind$i=$1 health_$kind$i=$2"
      servers="$servers
  server $kind$i 127.0.0.1:$1 check port $2 disabled"
      shift 2
      i=$((i + 1))
    done
  done
  cat >"$sdir/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 1024
  stats socket $sock mode 600 level admin
  log stdout format raw local0

defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 30s
  timeout server 10s
  timeout http-keep-alive 30s
  timeout check 1s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout

frontend fe
  bind 127.0.0.1:$lb
  default_backend be

backend be
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 200 fastinter 200 downinter 200 fall 2 rise 2$servers
EOF
  "$HAPROXY" -c -q -f "$sdir/haproxy.cfg" || { fail "haproxy rejects its configuration"; return; }
  "$HAPROXY" -db -f "$sdir/haproxy.cfg" >"$sdir/haproxy.log" 2>&1 &
  hp=$!
  pids="$pids $hp"
  if ! wait_for 10 test -S "$sock" || ! wait_for 5 hactl "show info" >/dev/null 2>&1; then
    fail "haproxy did not start"; return
  fi
  i=0
  while [ $i -lt "$n" ]; do bring_up "o$i" || return; i=$((i + 1)); done
  i=0
  while [ $i -lt "$n" ]; do
    wait_for 10 is_up "o$i" || { fail "HAProxy never saw o$i up"; return; }
    i=$((i + 1))
  done

  t_load=$(now_ms)
  "$loadclient" -p "$lb" -c 6 -n 200000 -t 180 -P 5 -s 200 -x "$scenario" \
    -a "$sdir/acked.txt" -l "$sdir/requests.log" >"$sdir/client.out" 2>&1 &
  client=$!
  pids="$pids $client"
  wait_for 10 lines_at_least "$sdir/requests.log" 30 || { fail "the load never got going"; return; }

  k=0 drained=0
  while [ $k -lt "$n" ]; do
    end=$((k + batch))
    [ $end -gt "$n" ] && end=$n
    j=$k
    while [ $j -lt $end ]; do bring_up "n$j" || return; j=$((j + 1)); done
    j=$k
    while [ $j -lt $end ]; do
      wait_for 10 is_up "n$j" || { fail "HAProxy never saw n$j up"; return; }
      j=$((j + 1))
    done
    j=$k
    while [ $j -lt $end ]; do
      eval "before_o$j=$(stat_field "o$j" stot)"
      eval "kill -TERM \$pid_o$j"
      j=$((j + 1))
    done
    j=$k
    while [ $j -lt $end ]; do
      eval "old_pid=\$pid_o$j old_before=\$before_o$j"
      wait_for 10 is_not_up "o$j" || fail "HAProxy never took o$j out"
      drained=$((drained + $(stat_field "o$j" stot) - old_before))
      wait_exit "$old_pid" 15
      [ "$rc" = 0 ] || fail "o$j exited with $rc (expected 0)"
      grep -q '"event":"flushed"' "$sdir/demo-o$j.log" || fail "o$j never ran its flush hook"
      j=$((j + 1))
    done
    say "rolling: batch $((k / batch + 1)): $end of $n replaced, $(( $(now_ms) - t_load )) ms into the load"
    k=$end
  done
  new_now=$(stot_of_new)
  wait_for 10 new_served_at_least $((new_now + 20)) || fail "the new instances served nothing at the end"
  kill -TERM "$client"
  wait_exit "$client" 15
  client_rc=$rc
  summary=$(tail -n 1 "$sdir/client.out")
  lb_retries=$(stat_field BACKEND wretr)
  lb_redisp=$(stat_field BACKEND wredis)
  i=0
  while [ $i -lt "$n" ]; do
    eval "new_pid=\$pid_n$i"
    kill -TERM "$new_pid"
    sleep 0.05
    kill -TERM "$new_pid" 2>/dev/null
    wait_exit "$new_pid" 15
    [ "$rc" = 0 ] || fail "n$i exited with $rc (expected 0)"
    i=$((i + 1))
  done
  kill -TERM "$hp" 2>/dev/null
  wait_exit "$hp" 10

  cat "$sdir"/flush-*.log 2>/dev/null | LC_ALL=C sort -u >"$sdir/flushed.sorted"
  LC_ALL=C sort -u "$sdir/acked.txt" >"$sdir/acked.sorted"
  LC_ALL=C comm -23 "$sdir/acked.sorted" "$sdir/flushed.sorted" >"$sdir/lost.txt"
  lost=$(wc -l <"$sdir/lost.txt")
  val() { echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  total=$(val total) ok=$(val ok) acked=$(val acked)
  failed=$(( ${total:-0} - ${ok:-0} ))
  http5xx=$(awk '$5 == "http_error" && $6 >= 500' "$sdir/requests.log" | wc -l)
  printf "$fmt" "rolling-$n-by-$batch" "$total" "$failed" "$http5xx" "$(val reset)" "$(val closed)" \
    "$(( $(val other) + $(val timeout) + $(val connect) ))" "$acked" "$lost" \
    "$lb_retries" "$lb_redisp" - - - >>"$tmp/summary"
  say "rolling: $n instances in batches of $batch: $summary; old instances served $drained requests while draining; LB retries $lb_retries, redispatches $lb_redisp"
  [ -n "$total" ] && [ "$total" -ge 100 ] || fail "too little load ($summary)"
  [ "${acked:-0}" -ge 20 ] || fail "too few acknowledged POSTs ($acked)"
  [ "$lost" -eq 0 ] || { fail "$lost acknowledged bodies are in no flush file:"; head -5 "$sdir/lost.txt"; }
  [ "$failed" -eq 0 ] || fail "$failed failed requests"
  [ "$client_rc" = 0 ] || fail "load client exited with $client_rc"
  [ "$lb_retries" = 0 ] && [ "$lb_redisp" = 0 ] ||
    fail "HAProxy had to retry ($lb_retries) or redispatch ($lb_redisp) requests"
  [ "$drained" -gt 0 ] || fail "no old instance served anything while draining"
  if [ "$failed" -gt 0 ]; then
    grep -v ' ok 200 ' "$sdir/requests.log" | head -8 | sed 's/^/    /'
  fi
}

cleanup_scenario() {
  for p in ${a:-} ${b:-} ${client:-} ${hp:-}; do kill -KILL "$p" 2>/dev/null; done
  keep=1
}

for s in $scenarios; do
  a= b= client= hp=
  if [ "$s" = rolling ]; then run_rolling; else run_scenario "$s"; fi
done

echo
say "what each scenario cost (failed = requests the client saw fail; lost = acknowledged"
say "POST bodies in no flush file; lb_retry/redisp = requests HAProxy had to resend;"
say "down_ms = SIGTERM to HAProxy taking A out (polled, +-100 ms); exit_ms = SIGTERM to the"
say "end of A's shutdown (its log);"
say "outage = ms from the first to the last failed request)"
cat "$tmp/summary"
if [ "$failures" -gt 0 ]; then
  say "$failures assertion(s) failed"
  exit 1
fi
say "ok"
exit 0
