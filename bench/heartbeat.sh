#!/bin/sh
# What a heartbeat beat costs, next to references measured in the same run
# (empty loop, relaxed atomic store, locked increment, a clock read per
# beat), and the idle cost of the library's sampler thread.  See
# bench/README.md ("Heartbeat").
#
#   bench/heartbeat.sh [BUILD_DIR]      (or BUILD_DIR=... bench/heartbeat.sh)
#
# BUILD_DIR is a configured and built libhealth tree (`make` builds
# bench/heartbeat there); without one, build/bench under the repository is
# used, configured and built first if needed, as bench/run.sh does.
# Environment: ITERATIONS [50000000], ROUNDS [7], IDLE_SECONDS [5],
# CPU [0] (taskset pinning; empty: none).  Exit status 1 when a beat costs
# 10 ns or more.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-}}
if [ -z "$BUILD_DIR" ]; then
  BUILD_DIR=$repo/build/bench
  if [ ! -x "$BUILD_DIR/bench/heartbeat" ]; then
    echo "== building libhealth into $BUILD_DIR" >&2
    [ -x "$repo/configure" ] || (cd "$repo" && ./bootstrap)
    mkdir -p "$BUILD_DIR"
    (cd "$BUILD_DIR" && { [ -f Makefile ] || "$repo/configure" -q CFLAGS="-O2 -g"; } && make -j2 >/dev/null)
  fi
fi
bin=$BUILD_DIR/bench/heartbeat
[ -x "$bin" ] || { echo "heartbeat.sh: $bin not built (run make in $BUILD_DIR)" >&2; exit 1; }
pin=
cpu=${CPU-0}
if [ -n "$cpu" ] && command -v taskset >/dev/null 2>&1; then pin="taskset -c $cpu"; fi
echo "== $(uname -m), $(nproc) CPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo unknown), load $(cut -d' ' -f1-3 /proc/loadavg)"
exec $pin "$bin" --iterations "${ITERATIONS:-50000000}" --rounds "${ROUNDS:-7}" --idle-seconds "${IDLE_SECONDS:-5}"
