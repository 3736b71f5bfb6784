#!/bin/sh
# The Check suites of a plain build (no sanitizers) under valgrind memcheck,
# with zero errors required: no invalid access, no use of uninitialised
# memory, no definite leak, in the suite's process and in every child Check
# forks for a test (valgrind follows fork() by itself; a child that exits
# with --error-exitcode is an error to Check, and every process's own error
# summary is checked here too).
#
# Usage: scripts/valgrind.sh BUILD_DIR [SUITE...]
#   SUITE: render, engine, http, ... (default: every tests/check_* built)
# Environment:
#   VALGRIND_JOBS           suites run at once (default: the number of CPUs;
#                           valgrind runs each process on one CPU at a time.
#                           The suites mostly wait on their scaled timeouts:
#                           check_checkers + check_secrets used 63 s of CPU
#                           in 148 s, two at a time, and the CPUs were 70 %
#                           idle over the whole stage.  scripts/test.sh runs
#                           twice the CPUs at once on a machine of its own;
#                           on a machine loaded by other work,
#                           check_redis's and check_postgres's phase-deadline
#                           cases once failed both two and four at a time)
#   HEALTH_TEST_TIME_SCALE  timing margins of the suites (default 20)
#   HEALTH_TEST_REQUIRE_SERVERS  as for `make check`
# Prints one line per suite; logs are kept in BUILD_DIR/valgrind/.
# Exits 0 only if every suite passed with zero valgrind errors (77 when
# valgrind is not installed).
set -u

if [ "${1:-}" = "--one" ]; then
  # One suite (called through xargs below): BUILD_DIR OUT_DIR SUITE
  build=$2 out=$3 suite=$4
  exe="$build/tests/check_$suite"
  supp=""
  [ -f "$top_srcdir/tests/valgrind.supp" ] && supp="--suppressions=$top_srcdir/tests/valgrind.supp"
  rm -f "$out/$suite".*
  t0=$(date +%s)
  # --trace-children=no: the tests' helper scripts (pg-server.sh, openssl,
  # redis-cli) run natively; only the libhealth processes are checked.
  (cd "$build" && valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --track-fds=no --trace-children=no \
    --num-callers=30 $supp --log-file="$out/$suite.%p.vg" "$exe") \
    >"$out/$suite.out" 2>&1
  rc=$?
  t1=$(date +%s)
  procs=0 errors=0 bad=""
  for f in "$out/$suite".*.vg; do
    [ -f "$f" ] || continue
    procs=$((procs + 1))
    n=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
    # A process killed before its summary (a Check timeout) says nothing.
    [ -n "$n" ] || continue
    if [ "$n" -gt 0 ]; then
      errors=$((errors + n))
      bad="$bad $f"
    fi
  done
  checks=$(grep -E '^[0-9]+%: Checks:' "$out/$suite.out" | tail -n 1)
  [ -n "$checks" ] || checks="no Check summary"
  status=PASS
  if [ $rc -eq 77 ]; then
    status=SKIP
  elif [ $rc -ne 0 ] || [ $errors -ne 0 ]; then
    status=FAIL
  fi
  printf '%-16s %s  %s; memcheck: %d processes, %d errors; exit %d; %d s\n' \
    "check_$suite" "$status" "$checks" "$procs" "$errors" "$rc" $((t1 - t0)) \
    >"$out/$suite.result"
  echo "$bad" >"$out/$suite.bad"
  [ $status != FAIL ]
  exit $?
fi

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SUITE...]" >&2; exit 2; }
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not installed; skipped" >&2; exit 77; }
build=$(cd "$1" && pwd) || exit 2
shift
top=$(cd "$(dirname "$0")/.." && pwd)

if [ $# -gt 0 ]; then
  suites="$*"
else
  suites=""
  for f in "$build"/tests/check_*; do
    case $f in *.*) continue ;; esac
    [ -x "$f" ] && suites="$suites ${f##*/check_}"
  done
fi
[ -n "$suites" ] || { echo "valgrind: no tests/check_* in $build (run make check first)" >&2; exit 2; }
for s in $suites; do
  [ -x "$build/tests/check_$s" ] || { echo "valgrind: $build/tests/check_$s not built" >&2; exit 2; }
done

out="$build/valgrind"
mkdir -p "$out"
scale=${HEALTH_TEST_TIME_SCALE:-20}
jobs=${VALGRIND_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Check's timeouts (a suite's own tcase_set_timeout() values too) grow by
# CK_TIMEOUT_MULTIPLIER; the suites widen their margins by the time scale.
top_srcdir=$top
top_builddir=$build
CK_DEFAULT_TIMEOUT=60
CK_TIMEOUT_MULTIPLIER=$scale
HEALTH_TEST_TIME_SCALE=$scale
HEALTH_TEST_VALGRIND=1
export top_srcdir top_builddir CK_DEFAULT_TIMEOUT CK_TIMEOUT_MULTIPLIER \
  HEALTH_TEST_TIME_SCALE HEALTH_TEST_VALGRIND

echo "valgrind: memcheck on:$suites ($jobs at a time, time scale $scale)"
t0=$(date +%s)
# The slowest first, so that they do not end up last in line (seconds under
# valgrind, two at a time: postgres 141, redis 129, checkers 85, liveness 74,
# secrets 63, hostile 61, checklog 58, shutdown 33, numbers 21, guard 20).
ordered=""
for s in postgres redis checkers liveness secrets hostile checklog shutdown numbers guard; do
  case " $suites " in *" $s "*) ordered="$ordered $s" ;; esac
done
for s in $suites; do
  case " $ordered " in *" $s "*) ;; *) ordered="$ordered $s" ;; esac
done
printf '%s\n' $ordered | xargs -P "$jobs" -I{} sh "$0" --one "$build" "$out" {} || true
t1=$(date +%s)

failed=""
for s in $ordered; do
  if [ -f "$out/$s.result" ]; then
    cat "$out/$s.result"
  else
    echo "check_$s        FAIL  no result"
  fi
  if ! grep -q " PASS \| SKIP " "$out/$s.result" 2>/dev/null; then
    failed="$failed $s"
  fi
done
for s in $failed; do
  echo "---- check_$s: failed tests"
  grep -E ':[EF]:' "$out/$s.out" | head -20
  for f in $(cat "$out/$s.bad" 2>/dev/null); do
    echo "---- $f"
    grep -v '^==[0-9]*== *$' "$f" | head -80
  done
done
echo "valgrind: $(($(echo $ordered | wc -w))) suites in $((t1 - t0)) s; logs in $out"
if [ -n "$failed" ]; then
  echo "valgrind: FAILED:$failed"
  exit 1
fi
echo "valgrind: all suites passed with zero memcheck errors"
