#!/bin/sh
# SIGTERM under exhausted limits, with the real demo (examples/demo-service):
# 80 slow requests in flight (GET /slow?ms=60000 on the application port,
# held open), then no descriptor, no thread or no address space left, then
# SIGTERM.  Every flush hook must run, the exit code be 0 and the work
# acknowledged before (POST /work) be in FLUSH_FILE:
#   nofile  `ulimit -n 64` in the subshell that starts the demo: the slow
#           requests fill its descriptor table;
#   nproc   RLIMIT_NPROC lowered to 1 (prlimit) once the requests hold their
#           threads: no thread can be made.  Root ignores RLIMIT_NPROC, so as
#           root the demo runs as nobody (setpriv);
#   as      RLIMIT_AS lowered to the demo's size + 4 MiB (prlimit): no thread
#           stack can be mapped (small allocations still can).  Skipped under
#           the sanitizers (their shadow memory).
# Once a hook needed a pipe and a thread made at SIGTERM: "out of
# resources" / "could not start a thread", exit 3, the record lost.
# Usage: tests/demo-limits.sh [nofile|nproc|as]...  (default: all three).
# Needs curl, python3, prlimit (util-linux); setpriv as root.
set -u

command -v curl >/dev/null 2>&1 || { echo "demo-limits.sh: curl not found, skipping" >&2; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "demo-limits.sh: python3 not found, skipping" >&2; exit 77; }
command -v prlimit >/dev/null 2>&1 || { echo "demo-limits.sh: prlimit not found, skipping" >&2; exit 77; }

: "${top_builddir:=.}"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "demo-limits.sh: $DEMO not built" >&2; exit 1; }
DEMO=$(cd "$(dirname "$DEMO")" && pwd)/$(basename "$DEMO")
SCALE=${HEALTH_TEST_TIME_SCALE:-1}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-limits-XXXXXX") || exit 1
chmod 711 "$TMP" # nobody (the nproc case as root) writes only below $TMP/w
mkdir "$TMP/w" && chmod 777 "$TMP/w"
PID=
HOLD=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

CASE=
fail() {
  echo "demo-limits.sh: FAIL ($CASE): $*" >&2
  [ -f "$TMP/service.log" ] && { echo "--- service log (last 30 lines) ---" >&2; tail -n 30 "$TMP/service.log" >&2; }
  exit 1
}
now_ms() { s=$(date +%s%N); echo $((s / 1000000)); }
code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$HPORT$1" 2>/dev/null; }
nfds() { ls "/proc/$PID/fd" 2>/dev/null | wc -l; }
nthreads() { sed -n 's/^Threads:[[:space:]]*//p' "/proc/$PID/status" 2>/dev/null; }

# start_demo LIMIT_CMD: the demo in the background ($PID), ready, one
# acknowledged POST /work.  LIMIT_CMD runs in the subshell before the exec.
start_demo() {
  LIMIT_CMD=$1
  FLUSH_FILE="$TMP/w/flush-$CASE.log"
  started=0
  attempt=0
  while [ $attempt -lt 5 ] && [ $started -eq 0 ]; do
    attempt=$((attempt + 1))
    set -- $(python3 "$top_srcdir/tests/free-ports.py" 2)
    PORT=$1 HPORT=$2
    : >"$TMP/service.log"
    (
      eval "$LIMIT_CMD"
      exec env FLUSH_FILE="$FLUSH_FILE" PORT="$PORT" HEALTH_PORT="$HPORT" HEALTH_ADDRESS=127.0.0.1 \
        HEALTH_DRAIN_MS=500 HEALTH_SHUTDOWN_DEADLINE_MS=$((10000 * SCALE)) $AS_USER "$DEMO"
    ) >"$TMP/service.log" 2>&1 &
    PID=$!
    i=0
    while [ $i -lt $((200 * SCALE)) ]; do
      grep -q '"level":"error"' "$TMP/service.log" && break
      kill -0 "$PID" 2>/dev/null || break
      [ "$(code /ready)" = 200 ] && { started=1; break; }
      i=$((i + 1))
      sleep 0.05
    done
    if [ $started -eq 0 ]; then
      kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
    fi
  done
  [ $started -eq 1 ] || fail "the demo service never became ready"
  curl -s -m 5 --data-binary "job-$CASE" "http://127.0.0.1:$PORT/work" | grep -q recorded ||
    fail "POST /work was not acknowledged"
}

# hold N: N connections to the application port, each with a GET /slow
# whose answer would take 60 s, held until the demo closes them.
hold() {
  python3 - "$PORT" "$1" >"$TMP/hold.out" 2>&1 <<'EOF' &
import select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /slow?ms=60000 HTTP/1.1\r\nHost: demo\r\n\r\n")
    socks.append(s)
print("held", len(socks), flush=True)
end = time.time() + 120
while socks and time.time() < end:
    r, _, _ = select.select(socks, [], [], 1)
    for s in r:
        try:
            d = s.recv(4096)
        except OSError:
            d = b""
        if not d:
            socks.remove(s)
            s.close()
EOF
  HOLD=$!
}

# until CMD SECONDS: wait (bounded) for a shell condition.
until_true() {
  i=0
  while [ $i -lt $(($2 * 20)) ]; do
    eval "$1" && return 0
    i=$((i + 1))
    sleep 0.05
  done
  return 1
}

# term_and_check: SIGTERM, exit 0 before the deadline, every hook ok, the
# record flushed.
term_and_check() {
  t0=$(now_ms)
  kill -TERM "$PID" || fail "cannot signal the demo"
  limit=$((10 * SCALE + 5))
  i=0
  while kill -0 "$PID" 2>/dev/null && [ $i -lt $((limit * 20)) ]; do
    i=$((i + 1))
    sleep 0.05
  done
  kill -0 "$PID" 2>/dev/null && { kill -9 "$PID"; fail "still running ${limit} s after SIGTERM"; }
  wait "$PID"
  rc=$?
  PID=
  el=$(($(now_ms) - t0))
  kill "$HOLD" 2>/dev/null
  wait "$HOLD" 2>/dev/null
  HOLD=
  grep -q '"event":"hook_failed"' "$TMP/service.log" && fail "a hook failed: $(grep '"event":"hook_failed"' "$TMP/service.log" | head -n 2)"
  [ $rc -eq 0 ] || fail "exit code $rc, expected 0"
  for hk in stop-app-server flush-work; do
    grep -q "\"event\":\"hook_done\",\"hook\":\"$hk\",\"result\":\"ok\"" "$TMP/service.log" ||
      fail "hook $hk did not report ok"
  done
  grep -qx "job-$CASE" "$FLUSH_FILE" 2>/dev/null || fail "the acknowledged record is not in the flush file"
  echo "demo-limits.sh: ok ($CASE): $1; exit 0 after $el ms, every hook ok, the record flushed"
}

case_nofile() {
  CASE=nofile
  AS_USER=
  start_demo 'ulimit -n 64'
  hold 80
  until_true '[ "$(nfds)" -ge 63 ]' $((10 * SCALE)) || fail "the descriptor table never filled: $(nfds) open"
  term_and_check "80 slow requests sent, the 64-descriptor table full at SIGTERM"
}

case_nproc() {
  CASE=nproc
  AS_USER=
  if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null 2>&1 || { echo "demo-limits.sh: setpriv not found, skipping nproc" >&2; return 0; }
    AS_USER="setpriv --reuid=65534 --regid=65534 --clear-groups --"
    # A build tree nobody cannot reach (under a 0700 home): nothing to prove.
    $AS_USER "$DEMO" --usage-probe >/dev/null 2>&1
    [ $? -eq 2 ] || { echo "demo-limits.sh: nproc: nobody cannot run $DEMO, skipped" >&2; return 0; }
  fi
  start_demo ''
  base=$(nthreads)
  hold 80
  until_true '[ "$(nthreads)" -ge $((base + 70)) ]' $((10 * SCALE)) || fail "the slow requests did not get their threads: $(nthreads), base $base"
  # As the demo's user: lowering a limit of one's own process needs no
  # privilege (root may lack CAP_SYS_RESOURCE in a container).
  $AS_USER prlimit --pid "$PID" --nproc=1:1 || fail "prlimit --nproc"
  n=$(nthreads)
  term_and_check "$n threads, RLIMIT_NPROC 1 at SIGTERM$([ -n "$AS_USER" ] && echo ' (as nobody)')"
}

case_as() {
  CASE=as
  AS_USER=
  if [ "$SCALE" -gt 1 ] 2>/dev/null; then
    echo "demo-limits.sh: as: skipped under the sanitizers (shadow memory)" >&2
    return 0
  fi
  start_demo ''
  base=$(nthreads)
  hold 80
  until_true '[ "$(nthreads)" -ge $((base + 70)) ]' $((10 * SCALE)) || fail "the slow requests did not get their threads"
  kb=$(sed -n 's/^VmSize:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$PID/status")
  lim=$(((kb + 4096) * 1024))
  prlimit --pid "$PID" --as=$lim:$lim || fail "prlimit --as"
  term_and_check "VmSize $kb kB, RLIMIT_AS $((lim / 1024)) kB at SIGTERM"
}

[ $# -gt 0 ] || set -- nofile nproc as
for c in "$@"; do
  case $c in
    nofile | nproc | as) "case_$c" ;;
    *) echo "demo-limits.sh: unknown case $c" >&2; exit 99 ;;
  esac
done
exit 0
