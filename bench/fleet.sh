#!/usr/bin/env bash
# Fleet simulation: N libhealth replicas against ONE real PostgreSQL and ONE
# real Redis, measured from the servers' own logs.  Prints a table with
# jitter off (every replica in step: the behaviour before jitter existed)
# and on (the defaults), plus the cost of the mode without kept connections.
#
#   bench/fleet.sh [BUILD_DIR]        (about 3 minutes with the defaults)
#
# Environment (defaults in brackets):
#   N [200]             replicas (handles in one process, each with its own
#                       health port, one PostgreSQL and one Redis check)
#   INTERVAL_MS [1000]  check interval of the steady-state runs
#   RESTART_INTERVAL_MS [5000]  check interval of the restart runs (the
#                       library's default; see below why not 1000)
#   TIMEOUT_MS [10000]  check timeout: long enough for N connections to
#                       queue at the server instead of being abandoned
#   STEADY_S [10]       steady-state window, WARM_S [3] after every replica
#                       passed (at most START_WAIT_S [60] after the start)
#   MODES ["off on"]    HEALTH_JITTER values to compare
#   NOKEEP [1]          cost of HEALTH_KEEP_CONNECTIONS=0 against =1, with
#                       NOKEEP_N [50] replicas at RESTART_INTERVAL_MS
#   BENCH_WORK          directory for logs [a fresh mktemp -d]
#
# What is measured (see bench/README.md, "Fleet"):
#   PostgreSQL runs with log_connections, log_disconnections, log_statement=all
#   and log_line_prefix='%m [%p] %a ' (UTC, milliseconds); Redis is watched
#   with MONITOR (microsecond timestamps of every PING).
#   - steady: the largest number of checks (SELECT 1 / PING) in any sliding
#     100 ms window over the mean per 100 ms of that window (target <= 2);
#   - restart: pg-server.sh restart (fast shutdown, start); from the
#     "ready to accept connections" line, the first connection of every
#     replica; the largest count in any 100 ms window over the fleet's
#     steady rate N x 100 / INTERVAL_MS (target <= 3), and when the last
#     replica was back (target: all N within 2 x INTERVAL_MS);
#   - connections: the most fleet sessions open at once according to the
#     log (target <= N), pg_stat_activity after the restart (= N) and after
#     the fleet stopped (= 0, nothing leaked);
#   - cost: server CPU (postmaster and its children, /proc) per check and
#     fleet sessions held, with and without kept connections.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
: "${N:=200}" "${INTERVAL_MS:=1000}" "${RESTART_INTERVAL_MS:=5000}" "${TIMEOUT_MS:=10000}"
: "${STEADY_S:=10}" "${WARM_S:=3}" "${START_WAIT_S:=60}" "${MODES:=off on}" "${NOKEEP:=1}" "${NOKEEP_N:=50}"
for tool in cc pkg-config python3 redis-cli; do
  command -v "$tool" >/dev/null || { echo "fleet.sh: $tool is required" >&2; exit 1; }
done

BUILD_DIR=${1:-${BUILD_DIR:-}}
if [ -z "$BUILD_DIR" ]; then
  BUILD_DIR=$repo/build/bench
  if [ ! -f "$BUILD_DIR/libhealth/.libs/libhealth-core.a" ]; then
    echo "== building libhealth into $BUILD_DIR" >&2
    [ -x "$repo/configure" ] || (cd "$repo" && ./bootstrap)
    mkdir -p "$BUILD_DIR"
    (cd "$BUILD_DIR" && { [ -f Makefile ] || "$repo/configure" -q CFLAGS="-O2 -g"; } && make -j2 >/dev/null)
  fi
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
core=$BUILD_DIR/libhealth/.libs/libhealth-core.a
[ -f "$core" ] || { echo "fleet.sh: $BUILD_DIR is not a built libhealth tree" >&2; exit 1; }

WORK=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$WORK/bin"
chmod 755 "$WORK"
echo "== logs in $WORK" >&2
# shellcheck disable=SC2046
cc -O2 -g -Wall -Wextra -pthread -I"$repo/include" "$here/fleet.c" -o "$WORK/bin/fleet" \
  "$core" $(pkg-config --libs libmicrohttpd libpq hiredis openssl)

PG=$repo/tests/pg-server.sh
RS=$repo/tests/redis-server.sh
PGD=$WORK/pg RD=$WORK/redis
FLEET_PID= MON_PID=
cleanup() {
  [ -n "$FLEET_PID" ] && kill -KILL "$FLEET_PID" 2>/dev/null
  [ -n "$MON_PID" ] && kill "$MON_PID" 2>/dev/null
  sh "$RS" stop "$RD" >/dev/null 2>&1
  sh "$PG" stop "$PGD" >/dev/null 2>&1
  true
}
trap cleanup EXIT

# ---- servers ---------------------------------------------------------------
pgport=$(sh "$PG" start "$PGD")
pgset() { sh "$PG" set "$PGD" "$1" "$2" >/dev/null; }
pgset max_connections $((N + 40))
pgset log_line_prefix '%m [%p] %a '
pgset log_timezone UTC
pgset log_statement all
sh "$PG" restart "$PGD" >/dev/null
pgsql() { sh "$PG" sql "$PGD" "$1"; }
[ "$(pgsql 'SHOW max_connections')" = $((N + 40)) ] || { echo "fleet.sh: max_connections not applied" >&2; exit 1; }
read -r _ rport < <(sh "$RS" start "$RD")
PGPW=hc-Tq4-secret-pw RPW=dflt-Xq7-secret-pw
conninfo="host=127.0.0.1 port=$pgport user=healthcheck password=$PGPW dbname=postgres sslmode=disable gssencmode=disable"
rurl="redis://default:$RPW@127.0.0.1:$rport/0"
sh "$RS" cli "$RD" MONITOR >"$WORK/monitor.log" 2>/dev/null &
MON_PID=$!

now() { date +%s.%N; }
fleet_sessions() { pgsql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fleet-%'"; }
pm_pid() { head -1 "$PGD/data/postmaster.pid"; }
# CPU seconds of the postmaster and every child it has had (reaped ones in
# cutime/cstime of the postmaster, live ones by their own counters).
pg_cpu() {
  python3 - "$(pm_pid)" <<'PY'
import os, sys
pm = sys.argv[1]; hz = os.sysconf('SC_CLK_TCK'); t = 0
def fields(p):
    s = open('/proc/%s/stat' % p).read()
    return s[s.rindex(')') + 2:].split()
f = fields(pm); t += sum(int(x) for x in f[11:15])
for p in os.listdir('/proc'):
    if not p.isdigit(): continue
    try:
        g = fields(p)
        if g[1] == pm: t += int(g[11]) + int(g[12])
    except Exception: pass
print('%.3f' % (t / hz))
PY
}
# wait_for FILE PATTERN SECONDS
wait_for() {
  local i
  for i in $(seq $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$FLEET_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "fleet.sh: no '$2' in $1 after $3 s" >&2; tail -5 "$1" "$WORK"/*.err >&2; exit 1
}

# wait_all OUT N SECONDS: until a STATUS line shows every replica passing
# both checks (the start: N connections queue at the server).
wait_all() {
  local i
  for i in $(seq $(($3 * 10))); do
    tail -1 "$1" | awk -v n="$2" '$1 == "STATUS" && $3 == n && $4 == n {ok = 1} END {exit !ok}' && return 0
    sleep 0.1
  done
  echo "fleet.sh: not every replica passed within $3 s: $(tail -1 "$1")" >&2
  return 1
}

# run LABEL JITTER KEEP N INTERVAL_MS KIND(steady|restart)
run() {
  local label=$1 jitter=$2 keep=$3 n=$4 iv=$5 kind=$6 out=$WORK/fleet-$1.out
  echo "== [$SECONDS s] $label: N=$n interval $iv ms HEALTH_JITTER=$jitter HEALTH_KEEP_CONNECTIONS=$keep" >&2
  HEALTH_JITTER=$jitter HEALTH_KEEP_CONNECTIONS=$keep "$WORK/bin/fleet" --n "$n" \
    --pg "$conninfo" --redis "$rurl" --interval-ms "$iv" --timeout-ms "$TIMEOUT_MS" \
    --seconds 300 >"$out" 2>"$WORK/fleet-$label.err" &
  FLEET_PID=$!
  local t_start; t_start=$(now)
  wait_for "$out" '^STARTED' 60
  local s0=0 s1=0 c0=0 c1=0 held=-1 r0=0 after=-1 up=0
  if [ "$keep" = 1 ]; then wait_all "$out" "$n" "$START_WAIT_S" && up=1; else sleep "$WARM_S"; up=1; fi
  if [ "$up" = 1 ] && [ "$kind" = steady ]; then
    sleep "$WARM_S"
    s0=$(now); c0=$(pg_cpu)
    sleep "$((STEADY_S / 2))"
    held=$(fleet_sessions)
    sleep "$((STEADY_S - STEADY_S / 2))"
    s1=$(now); c1=$(pg_cpu)
  elif [ "$up" = 1 ]; then
    sleep "$(python3 -c "print($iv / 1000)")"
    r0=$(now)
    sh "$PG" restart "$PGD" >/dev/null
    # two intervals for every replica to come back, then some slack
    sleep "$(python3 -c "print(2 * $iv / 1000 + 3)")"
    after=$(fleet_sessions)
  fi
  kill -TERM "$FLEET_PID"
  local i
  for i in $(seq 600); do kill -0 "$FLEET_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$FLEET_PID" 2>/dev/null; then echo "fleet.sh: fleet did not stop in 60 s" >&2; exit 1; fi
  wait "$FLEET_PID" || true
  FLEET_PID=
  grep -q '^DONE' "$out" || { echo "fleet.sh: fleet did not finish cleanly" >&2; exit 1; }
  sleep 0.5
  local left; left=$(fleet_sessions)
  echo "$label $jitter $keep $n $iv $kind $up $t_start $s0 $s1 $c0 $c1 $held $r0 $after $left" >>"$WORK/modes.txt"
}

: >"$WORK/modes.txt"
for m in $MODES; do
  run "steady-$m" "$m" 1 "$N" "$INTERVAL_MS" steady
  run "restart-$m" "$m" 1 "$N" "$RESTART_INTERVAL_MS" restart
done
[ "$NOKEEP" = 1 ] && run steady-on-nokeep on 0 "$NOKEEP_N" "$RESTART_INTERVAL_MS" steady
[ "$NOKEEP" = 1 ] && run steady-on-keep on 1 "$NOKEEP_N" "$RESTART_INTERVAL_MS" steady
sleep 0.5
kill "$MON_PID" 2>/dev/null || true
MON_PID=

python3 "$here/fleet-report.py" "$WORK"
