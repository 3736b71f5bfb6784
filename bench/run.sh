#!/usr/bin/env bash
# libhealth benchmark: one command, prints a table of figures, targets and
# PASS/MISS.  See bench/README.md for the method.
#
#   bench/run.sh [BUILD_DIR]          (or BUILD_DIR=... bench/run.sh)
#
# BUILD_DIR is a configured and built libhealth tree (in or out of tree).
# Without one, the script builds the library itself into build/bench under
# the repository (./bootstrap if configure is missing, then configure and
# make).  The bench programs are compiled with cc and linked against the
# static convenience library libhealth/.libs/libhealth-core.a of that build
# (the same objects as libhealth.so; static, so no rpath and no stale
# installed copy can be picked up), plus pkg-config's flags for
# libmicrohttpd, libpq, hiredis and openssl.
#
# Environment (defaults in brackets; QUICK=1 shrinks them to about a minute):
#   RUNS [5]            runs per figure, each figure is the median
#   DURATION [5]        seconds per wrk run
#   WARMUP [2]          seconds of wrk warm-up per server and mode
#   CONNS [16]          wrk connections (wrk -t1 -c$CONNS)
#   IDLE_SECONDS [30]   idle measurement window
#   IDLE_SETTLE [12]    seconds between the last request and that window
#                       (more than HEALTH_CONNECTION_TIMEOUT, 10 s)
#   SHUTDOWN_RUNS [5]   SIGTERM samples (a fresh server each)
#   DEADLINE_SAMPLES [10] hanging-check samples
#   PROBE_RUNS [200]    hyperfine runs per command and round (bench/probe.sh)
#   CALLGRIND [1]       count instructions per request under callgrind (0: skip)
#   CALLGRIND_REQS [2000] requests counted per callgrind measurement
#   CALLGRIND_INTERVAL_MS [600000] check interval of the 3-check server under callgrind
#                       (long: no re-render in the counted window; 5000 to count them)
#   SECTIONS ["load callgrind syscalls idle shutdown deadline probe"] what to run
#   SYSCALL_REQS [2000] requests counted per strace measurement (syscalls section)
#   SERVER_CPU [0] LOAD_CPU [1]   taskset pinning of server and load generator
#   BENCH_WORK          directory for logs and binaries [a fresh mktemp -d]
# PID_x / PORT_x are set by start() through printf -v; pkg-config output is
# meant to split.
# shellcheck disable=SC2154,SC2046
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "${QUICK:-0}" = 1 ]; then
  : "${RUNS:=2}" "${DURATION:=1}" "${WARMUP:=0.3}" "${IDLE_SECONDS:=5}"
  : "${SHUTDOWN_RUNS:=3}" "${DEADLINE_SAMPLES:=5}" "${PROBE_RUNS:=50}"
  : "${CALLGRIND_REQS:=300}"
fi
: "${RUNS:=5}" "${DURATION:=5}" "${WARMUP:=2}" "${CONNS:=16}" "${IDLE_SECONDS:=30}" "${IDLE_SETTLE:=12}"
: "${SHUTDOWN_RUNS:=5}" "${DEADLINE_SAMPLES:=10}" "${PROBE_RUNS:=200}"
: "${CALLGRIND:=1}" "${CALLGRIND_REQS:=2000}" "${CALLGRIND_INTERVAL_MS:=600000}" "${SERVER_CPU:=0}" "${LOAD_CPU:=1}"
: "${SECTIONS:=load callgrind syscalls idle shutdown deadline probe}"
want() { [[ " $SECTIONS " == *" $1 "* ]] && echo "== [$SECONDS s] section $1" >&2; }

BUILD_DIR=${1:-${BUILD_DIR:-}}
for tool in wrk hyperfine curl taskset cc pkg-config awk; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
  echo "run.sh: valgrind not found: skipping the callgrind section" >&2
  CALLGRIND=0
fi

# ---- build ---------------------------------------------------------------
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
probe=$BUILD_DIR/health-probe
[ -f "$core" ] && [ -x "$probe" ] || { echo "run.sh: $BUILD_DIR is not a built libhealth tree" >&2; exit 1; }

WORK=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$WORK/bin"
echo "== logs and binaries in $WORK" >&2
deps=$(pkg-config --libs libmicrohttpd libpq hiredis openssl)
CF="-O2 -g -Wall -Wextra -pthread"
# shellcheck disable=SC2086
{
  cc $CF -I"$repo/include" "$here/server.c" -o "$WORK/bin/server" "$core" $deps
  cc $CF $(pkg-config --cflags libmicrohttpd) "$here/floor.c" -o "$WORK/bin/floor" \
    $(pkg-config --libs libmicrohttpd)
  cc $CF "$here/killtime.c" -o "$WORK/bin/killtime"
  cc $CF "$here/reqloop.c" -o "$WORK/bin/reqloop"
}

# ---- helpers ---------------------------------------------------------------
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME CPU CMD... : start a server (pinned to CPU, "-" for none) and
# wait (at most 60 s) for its "PID n PORT p" line; sets PID_<NAME>, PORT_<NAME>.
start() {
  local name=$1 cpu=$2; shift 2
  if [ "$cpu" = - ]; then
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  else
    taskset -c "$cpu" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  fi
  local bg=$! i
  PIDS+=("$bg")
  for i in $(seq 600); do
    if grep -q '^PID ' "$WORK/$name.out" 2>/dev/null; then
      read -r _ pid _ port < <(grep '^PID ' "$WORK/$name.out")
      printf -v "PID_$name" %s "$pid"
      printf -v "PORT_$name" %s "$port"
      return 0
    fi
    kill -0 "$bg" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: server $name did not start; its stderr:" >&2
  tail -5 "$WORK/$name.err" >&2
  exit 1
}
stop() { # stop NAME (SIGKILL: SIGTERM would run libhealth's 15 s drain)
  local v="PID_$1"
  kill -KILL "${!v}" 2>/dev/null || true
  wait "${!v}" 2>/dev/null || true
}

median() { sort -g | awk '{a[NR]=$1} END{if(!NR){print "nan";exit} if(NR%2)print a[(NR+1)/2]; else printf "%.6g\n",(a[NR/2]+a[NR/2+1])/2}'; }
maxof() { sort -g | tail -1; }

cpu_ticks() { # utime+stime of a process (all threads), clock ticks
  awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$1/stat"
}
cpu_ns() { # on-CPU time of all live threads, ns (schedstat: precise)
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}'
}
wakeups() { # voluntary+nonvoluntary context switches of all live threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{print s+0}'
}
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
nthreads() { awk '/^Threads/{print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

to_us() { # wrk latency ("162.00us", "4.47ms", "1.02s") -> microseconds
  awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) m=1; else if (v ~ /ms$/) m=1000; else if (v ~ /s$/) m=1000000; else m=1; printf "%.1f\n", n*m }'
}

# wrk_run PORT PATH MODE(ka|close) SECONDS PID -> "req rps p50 p99 cpu_us errors"
wrk_run() {
  local port=$1 path=$2 mode=$3 secs=$4 pid=$5 out c0 c1
  local hdr=()
  [ "$mode" = close ] && hdr=(-H 'Connection: close')
  c0=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" timeout $((${secs%.*} + 30)) wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
          "${hdr[@]}" "http://127.0.0.1:$port$path" 2>&1) || true
  c1=$(cpu_ticks "$pid")
  echo "$out" >>"$WORK/wrk.log"
  local req rps p50 p99 errs non2xx
  req=$(echo "$out" | awk '/requests in/{print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
  p50=$(to_us "$(echo "$out" | awk '$1=="50%"{print $2}')")
  p99=$(to_us "$(echo "$out" | awk '$1=="99%"{print $2}')")
  errs=$(echo "$out" | awk '/Socket errors/{gsub(/,/,""); print $4+$6+$8+$10}')
  non2xx=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  [ -n "$req" ] && [ "$req" -gt 0 ] || { echo "run.sh: wrk failed:" >&2; echo "$out" >&2; exit 1; }
  local cpu_us
  cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$req" 'BEGIN{printf "%.3f", t/hz*1e6/n}')
  echo "$req $rps $p50 $p99 $cpu_us $(( ${errs:-0} + ${non2xx:-0} ))"
}

# ---- results table ----------------------------------------------------------
ROWS=()
# row FIGURE VALUE TARGET VERDICT
row() { ROWS+=("$1|$2|$3|$4"); }
verdict() { # verdict VALUE OP LIMIT -> PASS/MISS (OP: ge, le, lt)
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN{
    if (v == "nan" || v == "") { print "MISS"; exit }
    ok = (op=="ge") ? v>=l : (op=="le") ? v<=l : v<l; print ok ? "PASS" : "MISS" }'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN{ if (v=="nan"||v=="") print "n/a"; else printf f, v }'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== machine: $(nproc) CPUs, load average $LOAD_BEFORE; server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" >&2

# ---- 1. request path: floor vs libhealth ---------------------------------------
bin=$WORK/bin
if want load; then
# scenario NAME LIBSERVER PATH FLOORSERVER TARGET_RPS TARGET_CPU
scenario() {
  local name=$1 lib=$2 path=$3 fl=$4 t_rps=$5 t_cpu=$6 mode
  local lp="PORT_$lib" lpid="PID_$lib" fp="PORT_$fl" fpid="PID_$fl"
  for mode in ka close; do
    local hdr=(); [ "$mode" = close ] && hdr=(-H 'Connection: close')
    local port
    for port in "${!fp}" "${!lp}"; do
      taskset -c "$LOAD_CPU" timeout 60 wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" \
        "http://127.0.0.1:$port$path" >/dev/null 2>&1 || true
    done
    local f="$WORK/$name-$mode.runs"; : >"$f"
    local i fr lr
    for i in $(seq "$RUNS"); do
      if [ $((i % 2)) = 1 ]; then
        fr=$(wrk_run "${!fp}" "$path" "$mode" "$DURATION" "${!fpid}")
        lr=$(wrk_run "${!lp}" "$path" "$mode" "$DURATION" "${!lpid}")
      else
        lr=$(wrk_run "${!lp}" "$path" "$mode" "$DURATION" "${!lpid}")
        fr=$(wrk_run "${!fp}" "$path" "$mode" "$DURATION" "${!fpid}")
      fi
      echo "$fr $lr" >>"$f"
      echo "   $name $mode run $i: floor [$fr] lib [$lr]  (req rps p50us p99us cpu_us/req errors)" >&2
    done
    # columns: 1 req 2 rps 3 p50 4 p99 5 cpu 6 err (floor), 7..12 (lib)
    local frps lrps rr fcpu lcpu cr lp50 lp99 fp50 fp99 errs
    frps=$(awk '{print $2}' "$f" | median); lrps=$(awk '{print $8}' "$f" | median)
    rr=$(awk '{print $8/$2}' "$f" | median)
    fcpu=$(awk '{print $5}' "$f" | median); lcpu=$(awk '{print $11}' "$f" | median)
    cr=$(awk '{print ($5>0)?$11/$5:"nan"}' "$f" | median)
    fp50=$(awk '{print $3}' "$f" | median); fp99=$(awk '{print $4}' "$f" | median)
    lp50=$(awk '{print $9}' "$f" | median); lp99=$(awk '{print $10}' "$f" | median)
    errs=$(awk '{s+=$6+$12} END{print s+0}' "$f")
    local m; m=$([ "$mode" = ka ] && echo keep-alive || echo close)
    row "$name $m: req/s floor / lib" "$(fmt "$frps" %.0f) / $(fmt "$lrps" %.0f)" "" ""
    if [ "$t_rps" = - ]; then row "$name $m: req/s ratio" "$(fmt "$rr" %.3f)" "(none)" "info"
    else row "$name $m: req/s ratio" "$(fmt "$rr" %.3f)" ">= $t_rps" "$(verdict "$rr" ge "$t_rps")"; fi
    row "$name $m: CPU us/req floor / lib" "$(fmt "$fcpu" %.2f) / $(fmt "$lcpu" %.2f)" "" ""
    if [ "$t_cpu" = - ]; then row "$name $m: CPU/req ratio" "$(fmt "$cr" %.3f)" "(none)" "info"
    else row "$name $m: CPU/req ratio" "$(fmt "$cr" %.3f)" "<= $t_cpu" "$(verdict "$cr" le "$t_cpu")"; fi
    local p99t="" p99v="info"
    if [ "$name" = "ready3" ] && [ "$mode" = ka ]; then p99t="< 300"; p99v=$(verdict "$lp99" lt 300); fi
    row "$name $m: p50 / p99 us floor" "$(fmt "$fp50" %.0f) / $(fmt "$fp99" %.0f)" "" ""
    row "$name $m: p50 / p99 us lib" "$(fmt "$lp50" %.0f) / $(fmt "$lp99" %.0f)" "${p99t:+p99 $p99t}" "$p99v"
    [ "$errs" = 0 ] || row "$name $m: socket errors + non-2xx" "$errs" "0" "MISS"
  done
}
echo "== request path ($RUNS runs x ${DURATION}s, wrk -t1 -c$CONNS)" >&2
# Only the servers of the scenario at hand run (the 1000-check server's
# background work would otherwise tax the 3-check figures).
case " ${LOAD_SCENARIOS:-ready3 ready1000} " in *" ready3 "*)
start lib3 "$SERVER_CPU" "$bin/server" --checks 3 --detail full
curl -fsS -o "$WORK/body-ready3" "http://127.0.0.1:$PORT_lib3/ready"
curl -fsS -o "$WORK/body-health" "http://127.0.0.1:$PORT_lib3/health"
start floor_ready3 "$SERVER_CPU" "$bin/floor" --body-file "$WORK/body-ready3"
start floor_health "$SERVER_CPU" "$bin/floor" --body-file "$WORK/body-health"
echo "   bodies: /ready (3 checks, full) $(wc -c <"$WORK/body-ready3") B, /health $(wc -c <"$WORK/body-health") B" >&2
scenario ready3 lib3 /ready floor_ready3 0.95 1.1
scenario health lib3 /health floor_health - -
stop lib3; stop floor_ready3; stop floor_health
;; esac

case " ${LOAD_SCENARIOS:-ready3 ready1000} " in *" ready1000 "*)
start lib1000 "$SERVER_CPU" "$bin/server" --checks 1000 --detail status
curl -fsS -o "$WORK/body-ready1000" "http://127.0.0.1:$PORT_lib1000/ready"
start floor_ready1000 "$SERVER_CPU" "$bin/floor" --body-file "$WORK/body-ready1000"
row "lib1000 (1000 checks, 5 s interval): threads / RSS KiB" "$(nthreads "$PID_lib1000") / $(rss_kib "$PID_lib1000")" "(none)" "info"
scenario ready1000-status lib1000 /ready floor_ready1000 0.9 1.11
stop lib1000; stop floor_ready1000
;; esac
fi

# ---- 2. instructions per request (callgrind; independent of machine load) -------
if [ "$CALLGRIND" = 1 ] && want callgrind; then
  [ -f "$WORK/body-ready3" ] || {
    start b3 - "$bin/server" --checks 3 --detail full
    curl -fsS -o "$WORK/body-ready3" "http://127.0.0.1:$PORT_b3/ready"
    stop b3
  }
  echo "== callgrind: instructions per request on the HTTP thread ($CALLGRIND_REQS requests)" >&2
  # cg NAME PATH MODE CMD... -> "IR IR_NO_MEMSET" per request, HTTP thread only
  cg() {
    local name=$1 path=$2 mode=$3; shift 3
    local out="$WORK/cg-$name-$mode" cl=""
    [ "$mode" = close ] && cl=close
    rm -f "$out".*
    start "cg" - valgrind --tool=callgrind --separate-threads=yes --max-threads=2000 \
      --callgrind-out-file="$out.%p" "$@"
    local pid=$PID_cg port=$PORT_cg
    "$bin/reqloop" "$port" "$path" 200 $cl >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    "$bin/reqloop" "$port" "$path" "$CALLGRIND_REQS" $cl >/dev/null
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
    # The HTTP thread is the one that did most of the work in the window.
    local f
    f=$(for t in "$out.$pid".1-*; do
          [ -f "$t" ] && awk -v f="$t" '/^(summary|totals):/{print $2, f; exit}' "$t"
        done | sort -n | tail -1 | cut -d' ' -f2-)
    if [ -n "$f" ] && [ -f "$f" ]; then
      mv "$f" "$out.http-thread"
      callgrind_annotate --threshold=100 --inclusive=no "$out.http-thread" >"$out.txt" 2>/dev/null || true
    fi
    rm -f "$out".[0-9]*
    [ -f "$out.http-thread" ] || { echo "nan nan"; return; }
    local total ms
    total=$(awk '/^(summary|totals):/{print $2; exit}' "$out.http-thread")
    ms=$(awk '/memset/ && /^ *[0-9,]+ \(/{gsub(/,/,"",$1); s+=$1} END{print s+0}' "$out.txt")
    awk -v t="$total" -v m="$ms" -v n="$CALLGRIND_REQS" 'BEGIN{ if (t+0 <= 0) print "nan nan"; else printf "%.0f %.0f\n", t/n, (t-m)/n }'
  }
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{print (a>0 && b>0)?a/b:"nan"}'; }
  for mode in ka close; do
    m=$([ "$mode" = ka ] && echo keep-alive || echo close)
    read -r f_ir f_x < <(cg floor3 /ready $mode "$bin/floor" --body-file "$WORK/body-ready3")
    read -r l_ir l_x < <(cg lib3 /ready $mode "$bin/server" --checks 3 --detail full --interval-ms "$CALLGRIND_INTERVAL_MS")
    row "Ir/req ready3 $m: floor / lib (all)" "$f_ir / $l_ir ($(awk -v a="$l_ir" -v b="$f_ir" 'BEGIN{ if (a+0>0 && b+0>0) printf "%+d", a-b; else print "n/a" }'))" "" ""
    row "Ir/req ready3 $m: floor / lib (w/o memset)" "$f_x / $l_x" "" ""
    r=$(ratio "$l_x" "$f_x")
    row "Ir/req ready3 $m: ratio (w/o memset)" "$(fmt "$r" %.3f)" "<= 1.1" "$(verdict "$r" le 1.1)"
    if [ "${QUICK:-0}" != 1 ]; then
      read -r k_ir k_x < <(cg lib1000 /ready $mode "$bin/server" --checks 1000 --detail status)
      r=$(ratio "$k_x" "$f_x")
      row "Ir/req ready1000-status $m: lib (all / w/o memset), ratio" "$k_ir / $k_x, $(fmt "$r" %.3f)" "<= 1.11" "$(verdict "$r" le 1.11)"
    fi
  done
fi

# ---- 2b. system calls per request (strace -c over every thread; load-independent) ---
if want syscalls; then
  if ! command -v strace >/dev/null 2>&1; then
    echo "run.sh: strace not found: skipping the syscalls section" >&2
  else
    [ -f "$WORK/body-ready3" ] || {
      start b3 - "$bin/server" --checks 3 --detail full
      curl -fsS -o "$WORK/body-ready3" "http://127.0.0.1:$PORT_b3/ready"
      stop b3
    }
    SYSCALL_REQS=${SYSCALL_REQS:-2000}
    # sc NAME MODE CMD... -> "ALL NOFUTEX" system calls per request, all threads
    sc() {
      local name=$1 mode=$2; shift 2
      local out="$WORK/sc-$name-$mode" cl="" i
      [ "$mode" = close ] && cl=close
      start "sc" - "$@"
      local pid=$PID_sc port=$PORT_sc
      "$bin/reqloop" "$port" /ready 200 $cl >/dev/null
      strace -c -f -q -p "$pid" -o "$out" 2>/dev/null & local sp=$!
      for i in $(seq 50); do grep -q TracerPid:.*[1-9] "/proc/$pid/status" 2>/dev/null && break; sleep 0.1; done
      sleep 0.3
      "$bin/reqloop" "$port" /ready "$SYSCALL_REQS" $cl >/dev/null
      kill -INT "$sp" 2>/dev/null; wait "$sp" 2>/dev/null || true
      stop sc
      awk -v n="$SYSCALL_REQS" '$NF=="total"{t=$4} $NF=="futex"{f=$4}
        END{ if (t+0<=0) print "nan nan"; else printf "%.2f %.2f\n", t/n, (t-f)/n }' "$out"
    }
    for mode in ka close; do
      m=$([ "$mode" = ka ] && echo keep-alive || echo close)
      read -r f_all f_nf < <(sc floor3 $mode "$bin/floor" --body-file "$WORK/body-ready3")
      read -r l_all l_nf < <(sc lib3 $mode "$bin/server" --checks 3 --detail full --interval-ms "$CALLGRIND_INTERVAL_MS")
      row "syscalls/req ready3 $m: floor / lib (all threads)" "$f_all / $l_all" "" ""
      row "syscalls/req ready3 $m: floor / lib (w/o futex)" "$f_nf / $l_nf" "lib <= floor + 0.05" \
        "$(verdict "$(awk -v a="$l_nf" -v b="$f_nf" 'BEGIN{print (a==""||b=="")?"nan":a-b}')" le 0.05)"
    done
  fi
fi

# ---- 3. idle cost ------------------------------------------------------------------
if want idle; then
echo "== idle: ${IDLE_SETTLE}s settling, then ${IDLE_SECONDS}s without traffic" >&2
start idle_floor - "$bin/floor"
start idle_lib0 - "$bin/server" --checks 0
start idle_lib10 - "$bin/server" --checks 10 --interval-ms 1000
for s in idle_floor idle_lib0 idle_lib10; do
  p="PORT_$s"; curl -fsS -o /dev/null "http://127.0.0.1:${!p}/ready" || true
done
sleep 1.5
# Wake-ups right after traffic: libhealth's slow-client reaper sleeps until
# the last connection's head deadline (HEALTH_CONNECTION_TIMEOUT, 10 s) once
# and then parks without a timeout; the window below starts after that.
declare -A WS0 W0 C0
for s in idle_floor idle_lib0 idle_lib10; do p="PID_$s"; WS0[$s]=$(wakeups "${!p}"); done
sleep "$IDLE_SETTLE"
for s in idle_floor idle_lib0 idle_lib10; do
  p="PID_$s"; W0[$s]=$(wakeups "${!p}"); C0[$s]=$(cpu_ns "${!p}")
done
row "wake-ups in the ${IDLE_SETTLE}s after the last request: floor / lib0" "$(( ${W0[idle_floor]} - ${WS0[idle_floor]} )) / $(( ${W0[idle_lib0]} - ${WS0[idle_lib0]} ))" "(none)" "info"
sleep "$IDLE_SECONDS"
declare -A W C R
for s in idle_floor idle_lib0 idle_lib10; do
  p="PID_$s"
  W[$s]=$(( $(wakeups "${!p}") - ${W0[$s]} ))
  C[$s]=$(awk -v a="$(cpu_ns "${!p}")" -v b="${C0[$s]}" -v t="$IDLE_SECONDS" 'BEGIN{printf "%.4f", (a-b)/(t*1e9)*100}')
  R[$s]=$(rss_kib "${!p}")
done
rd=$(( ${R[idle_lib0]} - ${R[idle_floor]} ))
row "idle RSS KiB floor / lib (0 checks) / lib (10 checks)" "${R[idle_floor]} / ${R[idle_lib0]} / ${R[idle_lib10]}" "" ""
row "idle RSS lib - floor, KiB" "$rd" "<= 1024" "$(verdict "$rd" le 1024)"
row "idle wake-ups floor / lib 0 checks (${IDLE_SECONDS}s)" "${W[idle_floor]} / ${W[idle_lib0]}" "lib 0" "$(verdict "${W[idle_lib0]}" le 0)"
row "idle lib 10 checks @1s: wake-ups, threads" "${W[idle_lib10]}, $(nthreads "$PID_idle_lib10")" "" ""
row "idle CPU % of a core: floor / lib0 / lib10" "${C[idle_floor]} / ${C[idle_lib0]} / ${C[idle_lib10]}" "lib10 < 0.1" "$(verdict "${C[idle_lib10]}" lt 0.1)"
stop idle_floor; stop idle_lib0; stop idle_lib10
fi

# ---- 4. shutdown ---------------------------------------------------------------------
if want shutdown; then
echo "== shutdown: $SHUTDOWN_RUNS x SIGTERM with HEALTH_DRAIN_MS=0" >&2
: >"$WORK/shutdown.txt"
for i in $(seq "$SHUTDOWN_RUNS"); do
  # Not pinned: a service's shutdown thread is not pinned either, and on a
  # busy CPU 0 the figure would be that CPU's run-queue wait.
  HEALTH_DRAIN_MS=0 start sd - "$bin/server" --checks 3
  kt=$("$bin/killtime" "$PID_sd" --wait-exit 30000)
  wait "$PID_sd" 2>/dev/null || true
  sent=$(echo "$kt" | awk '/^SENT_MS/{print $2}')
  ex=$(echo "$kt" | awk '/^EXIT_AFTER_MS/{print $2}')
  cp "$WORK/sd.err" "$WORK/shutdown-$i.log"
  mono() { awk -F'"mono_ms":' -v ev="\"event\":\"$1\"" 'index($0, ev){split($2,a,","); print a[1]; exit}' "$WORK/sd.err"; }
  fl=$(mono readiness_flipped); st=$(mono shutdown_started)
  flip=$(awk -v a="$fl" -v b="$sent" 'BEGIN{print (a=="")?"nan":a-b}')
  echo "$flip ${ex:-nan}" >>"$WORK/shutdown.txt"
  # "started" is when the shutdown thread woke and logged (signal delivery,
  # self-pipe and thread wake-up: scheduling latency on a busy machine).
  echo "   shutdown run $i: flipped after $flip ms (shutdown thread logged at $(awk -v a="$st" -v b="$sent" 'BEGIN{print (a=="")?"nan":a-b}') ms), exited after ${ex:-nan} ms" >&2
done
flip_med=$(awk '{print $1}' "$WORK/shutdown.txt" | median); flip_max=$(awk '{print $1}' "$WORK/shutdown.txt" | maxof)
exit_med=$(awk '{print $2}' "$WORK/shutdown.txt" | median); exit_max=$(awk '{print $2}' "$WORK/shutdown.txt" | maxof)
row "SIGTERM -> readiness flipped, ms (median / max)" "$(fmt "$flip_med" %.3f) / $(fmt "$flip_max" %.3f)" "max < 1" "$(verdict "$flip_max" lt 1)"
row "SIGTERM -> exit, drain 0, ms (median / max)" "$(fmt "$exit_med" %.3f) / $(fmt "$exit_max" %.3f)" "(none)" "info"
fi

# ---- 5. deadlines ----------------------------------------------------------------------
if want deadline; then
echo "== deadlines: $DEADLINE_SAMPLES hanging runs, timeout 100 ms" >&2
start dl - "$bin/server" --hang-samples "$DEADLINE_SAMPLES" --hang-timeout-ms 100
for i in $(seq $((DEADLINE_SAMPLES * 10 + 100))); do
  grep -q DEADLINE_DONE "$WORK/dl.out" && break
  sleep 0.1
done
stop dl
awk '/^DEADLINE_LATE_US/{print $2/1000}' "$WORK/dl.out" >"$WORK/deadline.txt"
n=$(wc -l <"$WORK/deadline.txt")
dl_med=$(median <"$WORK/deadline.txt"); dl_max=$(maxof <"$WORK/deadline.txt")
row "hanging check: fail lands after timeout, ms (median / max, n=$n)" "$(fmt "$dl_med" %.2f) / $(fmt "${dl_max:-nan}" %.2f)" "max < 20" "$(verdict "${dl_max:-nan}" lt 20)"
fi

# ---- 6. probe --------------------------------------------------------------------------------
# bench/probe.sh does it (health-probe vs /bin/true vs curl -fsS, same run);
# its two ratio rows go into this table.
if want probe; then
echo "== probe: bench/probe.sh, $PROBE_RUNS runs per command and round" >&2
ROUNDS=3 RUNS=$PROBE_RUNS SERVER_CPU=$SERVER_CPU LOAD_CPU=$LOAD_CPU BENCH_WORK="$WORK/probe" \
  "$here/probe.sh" "$BUILD_DIR" >"$WORK/probe.txt" 2>"$WORK/probe.err" || true
pt=$(awk '/^health-probe \/ true/{print $4}' "$WORK/probe.txt")
cp=$(awk '/^curl \/ health-probe/{print $4}' "$WORK/probe.txt")
row "health-probe / true / curl -fsS, ms per run (median)" "$(awk '/^(\/bin\/true|health-probe \(|curl -fsS)/{printf "%s%s", s, $(NF-1); s=" / "}' "$WORK/probe.txt")" "" ""
row "health-probe time / /bin/true time" "$(fmt "${pt:-nan}" %.2f)" "<= 1.3" "$(verdict "${pt:-nan}" le 1.3)"
row "curl -fsS time / health-probe time" "$(fmt "${cp:-nan}" %.1f)" "(none)" "info"
fi

# ---- table -----------------------------------------------------------------------------------
echo
echo "libhealth benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) CPUs  load avg at start $LOAD_BEFORE, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS IDLE_SECONDS=$IDLE_SECONDS QUICK=${QUICK:-0}"
printf '%s\n' "${ROWS[@]}" | awk -F'|' '
  { f[NR]=$1; v[NR]=$2; t[NR]=$3; r[NR]=$4; if (length($1)>w1) w1=length($1); if (length($2)>w2) w2=length($2); if (length($3)>w3) w3=length($3) }
  END { fmt="%-" w1 "s  %-" w2 "s  %-" w3 "s  %s\n"
        printf fmt, "figure", "value", "target", "result"
        for (i=1;i<=NR;i++) printf fmt, f[i], v[i], t[i], r[i] }'
misses=$(printf '%s\n' "${ROWS[@]}" | grep -c '|MISS$' || true)
echo
echo "$misses target(s) missed.  Logs: $WORK"
