#!/usr/bin/env bash
# health-probe as a whole process, next to /bin/true and `curl -fsS`, in the
# same run: the cost of a container HEALTHCHECK command.  See bench/README.md.
#
#   bench/probe.sh [BUILD_DIR]          (or BUILD_DIR=... bench/probe.sh)
#
# BUILD_DIR is a configured and built libhealth tree; without one the
# library is built into build/bench (as bench/run.sh does).  The target is
# `server --checks 3 --detail full` (bench/server.c), /ready; the commands
# are timed by `hyperfine -N` (no shell), pinned to LOAD_CPU, the server to
# SERVER_CPU, with the order of the commands rotated between rounds so that
# drifts in machine load fall on all of them alike.
#
# Environment (defaults in brackets):
#   ROUNDS [5]          hyperfine rounds; times are the median over the
#                       rounds of hyperfine's medians, ratios the median of
#                       the rounds' ratios (so load drifts cancel)
#   RUNS [300]          runs per command per round (after 20 warm-up runs)
#   SERVER_CPU [0] LOAD_CPU [1]
#   BENCH_WORK          directory for logs and binaries [a fresh mktemp -d]
#
# Rows: wall-clock ms per run (hyperfine's median) and CPU ms per run (its
# mean user + system time: less sensitive to a busy run queue) of /bin/true,
# health-probe (as built: static when configure could link it so), the same
# probe linked dynamically (built here from the same sources, to show what
# static linking buys), and curl -fsS; the ratios probe / true (target
# <= 1.3, wall clock) and curl / probe.
# shellcheck disable=SC2046
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
: "${ROUNDS:=5}" "${RUNS:=300}" "${SERVER_CPU:=0}" "${LOAD_CPU:=1}"

for tool in hyperfine curl taskset cc pkg-config awk; do
  command -v "$tool" >/dev/null || { echo "probe.sh: $tool is required" >&2; exit 1; }
done

BUILD_DIR=${1:-${BUILD_DIR:-}}
if [ -z "$BUILD_DIR" ]; then
  BUILD_DIR=$repo/build/bench
  if [ ! -f "$BUILD_DIR/libhealth/.libs/libhealth-core.a" ] || [ ! -x "$BUILD_DIR/health-probe" ]; then
    echo "== building libhealth into $BUILD_DIR" >&2
    [ -x "$repo/configure" ] || (cd "$repo" && ./bootstrap)
    mkdir -p "$BUILD_DIR"
    (cd "$BUILD_DIR" && { [ -f Makefile ] || "$repo/configure" -q CFLAGS="-O2 -g"; } && make -j2 >/dev/null)
  fi
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
core=$BUILD_DIR/libhealth/.libs/libhealth-core.a
probe=$BUILD_DIR/health-probe
[ -f "$core" ] && [ -x "$probe" ] || { echo "probe.sh: $BUILD_DIR is not a built libhealth tree" >&2; exit 1; }

WORK=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$WORK/bin"
echo "== logs and binaries in $WORK" >&2
deps=$(pkg-config --libs libmicrohttpd libpq hiredis openssl)
# shellcheck disable=SC2086
cc -O2 -g -pthread -I"$repo/include" "$here/server.c" -o "$WORK/bin/server" "$core" $deps
cc -O2 -g -pthread -I"$repo/include" -I"$repo/libhealth" "$repo/tools/health-probe.c" \
  "$repo"/libhealth/probe/probe.c "$repo"/libhealth/probe/request.c "$repo"/libhealth/probe/answer.c \
  -o "$WORK/bin/health-probe-dynamic"
linkage=$(file -L "$probe" | grep -q 'statically linked' && echo static || echo dynamic)

"$WORK/bin/server" --checks 3 --detail full >"$WORK/server.out" 2>"$WORK/server.err" &
server=$!
trap 'kill -KILL $server 2>/dev/null || true' EXIT
taskset -p -c "$SERVER_CPU" "$server" >/dev/null
for _ in $(seq 600); do
  grep -q '^PID ' "$WORK/server.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.1
done
port=$(awk '/^PID /{print $4}' "$WORK/server.out")
url="http://127.0.0.1:$port/ready"
"$probe" "$url" || { echo "probe.sh: $probe $url failed" >&2; exit 1; }
"$WORK/bin/health-probe-dynamic" "$url"
curl -fsS -o /dev/null "$url"

cmds=("/bin/true" "$probe $url" "$WORK/bin/health-probe-dynamic $url" "curl -fsS $url")
names=(true probe probe-dynamic curl)
for r in $(seq "$ROUNDS"); do
  # rotate the order: round r starts with command r mod 4
  order=()
  for k in 0 1 2 3; do order+=($(( (k + r) % 4 ))); done
  args=()
  for k in "${order[@]}"; do args+=("${cmds[$k]}"); done
  taskset -c "$LOAD_CPU" hyperfine -N --style none --warmup 20 --runs "$RUNS" \
    --export-json "$WORK/round$r.json" "${args[@]}" >"$WORK/round$r.txt" 2>&1
  # per command: "NAME MEDIAN_S CPU_S" (CPU = mean user + system time)
  for k in 0 1 2 3; do
    m=$(awk -v want="${cmds[${order[$k]}]}" '
          /"command":/ { c=$0; sub(/^[^:]*: *"/, "", c); sub(/",? *$/, "", c) }
          c == want && /"median":/ { v=$2; sub(/,/, "", v); med=v }
          c == want && /"user":/ { v=$2; sub(/,/, "", v); u=v }
          c == want && /"system":/ { v=$2; sub(/,/, "", v); s=v }
          END { print med, u + s }' "$WORK/round$r.json")
    echo "${names[${order[$k]}]} $m $r" >>"$WORK/medians.txt"
  done
  echo "   round $r: $(awk -v r="$r" '$4 == r {printf "%s %.3f ms (cpu %.3f)  ", $1, $2*1000, $3*1000}' "$WORK/medians.txt")" >&2
done

median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
med() { awk -v n="$1" -v f="${2:-2}" '$1 == n {print $f}' "$WORK/medians.txt" | median; }
# ratio A B [FIELD]: the median over the rounds of A/B within each round
ratio() {
  awk -v a="$1" -v b="$2" -v f="${3:-2}" '$1 == a {x[$4]=$f} $1 == b {y[$4]=$f}
    END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' "$WORK/medians.txt" | median
}
t=$(med true) p=$(med probe) d=$(med probe-dynamic) c=$(med curl)
rp=$(ratio probe true) rd=$(ratio probe-dynamic true) rc=$(ratio curl probe)
ct=$(med true 3) cp=$(med probe 3) cd=$(med probe-dynamic 3) cc=$(med curl 3)
rcp=$(ratio probe true 3) rcc=$(ratio curl probe 3)
echo
echo "health-probe benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) CPUs  load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ROUNDS=$ROUNDS RUNS=$RUNS  target: $url  health-probe: $linkage"
awk -v t="$t" -v p="$p" -v d="$d" -v c="$c" -v l="$linkage" -v rp="$rp" -v rd="$rd" -v rc="$rc" \
    -v ct="$ct" -v cp="$cp" -v cd="$cd" -v cc="$cc" -v rcp="$rcp" -v rcc="$rcc" 'BEGIN{
  printf "%-40s %12s %12s\n", "command (median over the rounds)", "wall ms/run", "CPU ms/run"
  printf "%-40s %12.3f %12.3f\n", "/bin/true", t*1000, ct*1000
  printf "%-40s %12.3f %12.3f\n", "health-probe (" l ")", p*1000, cp*1000
  printf "%-40s %12.3f %12.3f\n", "health-probe linked dynamically", d*1000, cd*1000
  printf "%-40s %12.3f %12.3f\n", "curl -fsS", c*1000, cc*1000
  printf "%-40s %12.2f %12.2f   target <= 1.3 (wall)  %s\n", "health-probe / true", rp, rcp, (rp <= 1.3) ? "PASS" : "MISS"
  printf "%-40s %12.2f\n", "health-probe dynamic / true", rd
  printf "%-40s %12.1f %12.1f\n", "curl / health-probe", rc, rcc
}'
