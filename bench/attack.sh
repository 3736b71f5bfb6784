#!/usr/bin/env bash
# The health port under attack: probe success rate and latency from
# 127.0.0.1 while N slow clients (each from its own loopback address,
# reconnecting as soon as they are cut) or a connection flood hit the
# port -- libhealth (bench/server.c) next to the floor (bench/floor.c, a
# bare libmicrohttpd server with the same limits) in the same run.
# See bench/README.md.
#
#   bench/attack.sh [BUILD_DIR]
#
# Environment (defaults in brackets):
#   NS ["1000 10000"]  slow-client counts
#   FLOOD [2000]       connection attempts in flight for the flood (0: skip)
#   SECONDS_EACH [10]  attack duration per row
#   PROBE_MS [100]     one probe every PROBE_MS; good = a 200 within 1 s
#   BENCH_WORK         directory for logs and binaries [a fresh mktemp -d]
# Prints one row per server and attack: probes, % answered within 1 s,
# p50/p99 latency, and the server's CPU (% of one core) during the attack.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
: "${NS:=1000 10000}" "${FLOOD:=2000}" "${SECONDS_EACH:=10}" "${PROBE_MS:=100}"

BUILD_DIR=${1:-${BUILD_DIR:-$repo/build/bench}}
if [ ! -f "$BUILD_DIR/libhealth/.libs/libhealth-core.a" ]; then
  echo "attack.sh: build libhealth first (e.g. bench/run.sh builds $repo/build/bench)" >&2
  exit 1
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
core=$BUILD_DIR/libhealth/.libs/libhealth-core.a
WORK=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$WORK/bin"
echo "== logs and binaries in $WORK" >&2
CF="-O2 -g -Wall -Wextra -pthread"
# shellcheck disable=SC2046
{
  cc $CF -I"$repo/include" "$here/server.c" -o "$WORK/bin/server" "$core" \
    $(pkg-config --libs libmicrohttpd libpq hiredis openssl)
  cc $CF $(pkg-config --cflags libmicrohttpd) "$here/floor.c" -o "$WORK/bin/floor" \
    $(pkg-config --libs libmicrohttpd)
  cc $CF "$repo/tests/slowloris.c" -o "$WORK/bin/slowloris"
}

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME CMD...: sets PID and PORT from the server's "PID n PORT p" line.
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=("$!")
  for _ in $(seq 300); do
    if grep -q '^PID ' "$WORK/$name.out" 2>/dev/null; then
      read -r _ PID _ PORT < <(grep '^PID ' "$WORK/$name.out")
      return 0
    fi
    sleep 0.1
  done
  echo "attack.sh: $name did not start" >&2
  tail -5 "$WORK/$name.err" >&2
  exit 1
}

field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'; }

printf '%-9s %-22s %7s %9s %8s %8s %8s\n' server attack probes "ok<1s %" p50_ms p99_ms cpu_%
row() { # row SERVER ATTACK-ARGS LABEL
  local name=$1 args=$2 label=$3
  if [ "$name" = libhealth ]; then
    start "$name" "$WORK/bin/server"
  else
    start "$name" "$WORK/bin/floor"
  fi
  local out
  out=$("$WORK/bin/slowloris" -p "$PORT" -S "$PID" -t "$SECONDS_EACH" -i "$PROBE_MS" -w 1000 $args)
  echo "$name $label $out" >>"$WORK/rows.txt"
  kill -KILL "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  printf '%-9s %-22s %7s %9s %8s %8s %8s\n' "$name" "$label" "$(field probes "$out")" \
    "$(field ok_pct "$out")" "$(field p50_ms "$out")" "$(field p99_ms "$out")" \
    "$(field server_cpu_pct "$out")"
  sleep 1 # let TIME_WAIT and backlogs settle between rows
}

for n in $NS; do
  for s in floor libhealth; do row "$s" "-n $n" "$n slow clients"; done
done
if [ "$FLOOD" != 0 ]; then
  for s in floor libhealth; do row "$s" "-m flood -n $FLOOD" "flood ($FLOOD in flight)"; done
fi
echo "== raw lines in $WORK/rows.txt" >&2
