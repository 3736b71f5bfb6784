#!/usr/bin/env bash
# /metrics benchmark: what a Prometheus scrape of 100 checks costs the
# server, against a reference in the same run.  See bench/README.md.
#
#   bench/metrics.sh [BUILD_DIR]        (or BUILD_DIR=... bench/metrics.sh)
#
# BUILD_DIR is a built libhealth tree; without one the library is built
# into build/bench as bench/run.sh does.  Environment (defaults in brackets):
#   CHECKS [100]     checks registered
#   RUNS [5]         runs per figure (each figure is the median)
#   SCRAPES [3000]   scrapes per in-process run
#   DURATION [3]     seconds per wrk run
#   SERVER_CPU [0] LOAD_CPU [1]   taskset pinning
# Figures:
#   fresh / cached scrape, server CPU us: bench/metrics.c, in one process,
#     every scrape after a change of state (the body rendered again) or
#     none (the cached body handed out);
#   render us: health_answer_render(HEALTH_METRICS) alone;
#   wrk: libhealth's /metrics (checks running every 5 s) against the floor
#     (bench/floor.c, a bare libmicrohttpd server answering the same bytes
#     from memory): server CPU per scrape and the ratio.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
: "${CHECKS:=100}" "${RUNS:=5}" "${SCRAPES:=3000}" "${DURATION:=3}" "${SERVER_CPU:=0}" "${LOAD_CPU:=1}"
for tool in wrk taskset cc pkg-config awk curl; do
  command -v "$tool" >/dev/null || { echo "metrics.sh: $tool is required" >&2; exit 1; }
done
BUILD_DIR=${1:-${BUILD_DIR:-}}
if [ -z "$BUILD_DIR" ]; then
  BUILD_DIR=$repo/build/bench
  if [ ! -f "$BUILD_DIR/libhealth/.libs/libhealth-core.a" ]; then
    [ -x "$repo/configure" ] || (cd "$repo" && ./bootstrap)
    mkdir -p "$BUILD_DIR"
    (cd "$BUILD_DIR" && { [ -f Makefile ] || "$repo/configure" -q CFLAGS="-O2 -g"; } && make -j2 >/dev/null)
  fi
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
core=$BUILD_DIR/libhealth/.libs/libhealth-core.a
[ -f "$core" ] || { echo "metrics.sh: $BUILD_DIR is not a built libhealth tree" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'for p in ${PIDS:-}; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
deps=$(pkg-config --libs libmicrohttpd libpq hiredis openssl)
CF="-O2 -g -Wall -Wextra -pthread"
# shellcheck disable=SC2086
{
  cc $CF -I"$repo/include" "$here/metrics.c" -o "$WORK/metrics" "$core" $deps
  cc $CF -I"$repo/include" "$here/server.c" -o "$WORK/server" "$core" $deps
  cc $CF $(pkg-config --cflags libmicrohttpd) "$here/floor.c" -o "$WORK/floor" $(pkg-config --libs libmicrohttpd)
}
median() { sort -g | awk '{a[NR]=$1} END{if(!NR){print "nan";exit} if(NR%2)print a[(NR+1)/2]; else printf "%.6g\n",(a[NR/2]+a[NR/2+1])/2}'; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}'; }
verdict() { awk -v v="$1" -v l="$2" 'BEGIN{ print (v != "nan" && v+0 < l) ? "PASS" : "MISS" }'; }
PIDS=""
start() { # start NAME CMD... -> sets PID_NAME PORT_NAME
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS="$PIDS $!"
  disown $!
  for _ in $(seq 600); do
    if grep -q '^PID ' "$WORK/$name.out"; then
      read -r _ pid _ port < <(grep '^PID ' "$WORK/$name.out")
      printf -v "PID_$name" %s "$pid"; printf -v "PORT_$name" %s "$port"; return 0
    fi
    sleep 0.1
  done
  echo "metrics.sh: $name did not start" >&2; exit 1
}
scrape_cpu() { # PORT PID -> server CPU us per scrape (wrk, one keep-alive connection)
  local c0 c1 out req
  c0=$(cpu_ns "$2")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c1 -d"${DURATION}s" "http://127.0.0.1:$1/metrics" 2>&1)
  c1=$(cpu_ns "$2")
  req=$(echo "$out" | awk '/requests in/{print $1}')
  awk -v d=$((c1 - c0)) -v n="$req" 'BEGIN{printf "%.2f\n", d/1000/n}'
}

echo "== $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); $CHECKS checks, $RUNS runs" >&2
: >"$WORK/inproc"
for i in $(seq "$RUNS"); do
  taskset -c "$SERVER_CPU" "$WORK/metrics" --checks "$CHECKS" --scrapes "$SCRAPES" | tr '\n' ' ' >>"$WORK/inproc"
  echo >>"$WORK/inproc"
  echo "   in-process run $i: $(tail -1 "$WORK/inproc")" >&2
done
field() { awk -v k="$1" '{for(i=1;i<NF;i++) if($i==k) print $(i+1)}' "$WORK/inproc" | median; }
bytes=$(field body_bytes); fresh=$(field fresh_scrape_server_cpu_us); cached=$(field cached_scrape_server_cpu_us)
rfresh=$(field render_fresh_us); rcached=$(field render_cached_us)

start lib "$WORK/server" --checks "$CHECKS"
curl -fsS -o "$WORK/body" "http://127.0.0.1:$PORT_lib/metrics"
start floor "$WORK/floor" --body-file "$WORK/body"
: >"$WORK/wrk"
for i in $(seq "$RUNS"); do
  f=$(scrape_cpu "$PORT_floor" "$PID_floor"); l=$(scrape_cpu "$PORT_lib" "$PID_lib")
  echo "$f $l" >>"$WORK/wrk"
  echo "   wrk run $i: floor $f us, lib $l us per scrape" >&2
done
wf=$(awk '{print $1}' "$WORK/wrk" | median); wl=$(awk '{print $2}' "$WORK/wrk" | median)
wr=$(awk '{print $2/$1}' "$WORK/wrk" | median)

printf '%-62s %-18s %-10s %s\n' figure value target result
printf '%-62s %-18s %-10s %s\n' "/metrics body, $CHECKS checks, bytes" "$bytes" "" ""
printf '%-62s %-18s %-10s %s\n' "scrape after a change of state: server CPU us" "$fresh" "< 50" "$(verdict "$fresh" 50)"
printf '%-62s %-18s %-10s %s\n' "scrape, state unchanged (cached body): server CPU us" "$cached" "< 50" "$(verdict "$cached" 50)"
printf '%-62s %-18s %-10s %s\n' "render alone (health_answer_render), new state / cached: us" "$rfresh / $rcached" "" "info"
printf '%-62s %-18s %-10s %s\n' "wrk keep-alive, server CPU us/scrape: floor / lib (5 s checks)" "$wf / $wl" "" ""
printf '%-62s %-18s %-10s %s\n' "wrk keep-alive, CPU per scrape ratio lib / floor" "$wr" "" "info"
