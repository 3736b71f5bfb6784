#!/bin/sh
# The whole test suite, from a clean clone on Debian 12:
#   installs what is missing, bootstraps, checks the C formatting
#   (scripts/format.sh --check), builds, runs `make check` with the
#   real PostgreSQL and TLS Redis servers, `make distcheck` (a subset of the tests:
#   see distcheck_tests below), builds the Debian packages and uses them
#   (scripts/package-check.sh), then the suite
#   again under ASan+UBSan and under TSan, the Check suites of the plain
#   build under valgrind memcheck, then a bounded libFuzzer run of every
#   fuzz target.  Prints the wall time of each stage and the total.
# Usage: scripts/test.sh [format|plain|distcheck|package|asan|tsan|valgrind|fuzz ...]   (default: all)
# Environment: TEST_JOBS (tests at once in make check; default twice the
# CPUs), VALGRIND_JOBS (suites at once under valgrind; default twice the
# CPUs), DISTCHECK_TESTS, FUZZ_SECONDS, HEALTH_TEST_TIME_SCALE
# (the sanitizer stages' timing factor, default 3).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
stages=${*:-"format plain distcheck package asan tsan valgrind fuzz"}
jobs=$(nproc 2>/dev/null || echo 2)
# Tests at once in `make check`: most of a test's time is spent waiting
# (on deadlines, servers, child processes), not computing.  Measured on 2
# cores: the plain suite used 1.6 cores at 4 at a time (118 s, against
# about 220 s at 2), the ASan one 1.5 cores (155 s against about 200 s).
test_jobs=${TEST_JOBS:-$((jobs * 2))}
t_start=$(date +%s)

scripts/deps.sh test
./bootstrap >/dev/null 2>&1 || ./bootstrap
times="setup $(($(date +%s) - t_start)) s"

# A missing server is a failure here, never a silent skip.
HEALTH_TEST_REQUIRE_SERVERS=1
export HEALTH_TEST_REQUIRE_SERVERS
# Read only by the sanitizer builds.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
# The sanitizer builds run several times slower: their timing margins
# (never the behaviour asserted) widen by this factor.
san_scale=${HEALTH_TEST_TIME_SCALE:-3}

failed=""
# The slowest tests of a build, from each log's creation (the test's start)
# to its .trs (its end): "name N s, ..." (empty where the file system keeps
# no creation time).
slowest() {
  for l in "$1"/tests/*.log; do
    t=${l%.log}.trs
    [ -f "$t" ] || continue
    b=$(stat -c %W "$l" 2>/dev/null) || continue
    [ "${b:-0}" -gt 0 ] 2>/dev/null || continue
    echo "$(($(stat -c %Y "$t") - b)) $(basename "$l" .log)"
  done | sort -rn | head -n 6 | awk '{ printf "%s%s %d s", (NR > 1 ? ", " : ""), $2, $1 }'
}
run_stage() {
  name=$1; shift
  dir="$top/build/$name"
  echo "==== $name: configure $*"
  rm -rf "$dir"; mkdir -p "$dir"
  ( cd "$dir" && "$top/configure" -q "$@" >configure.out 2>&1 || { cat configure.out; exit 1; } )
  echo "==== $name: make"
  ( cd "$dir" && make -s -j"$jobs" >make.out 2>&1 || { tail -40 make.out; exit 1; } ) || return 1
  echo "==== $name: make check"
  t_check=$(date +%s)
  # The test programs are built first at -j$jobs, then run $test_jobs at once.
  if ( cd "$dir" && make -s -j"$jobs" check TESTS= >/dev/null && make -s -j"$test_jobs" check ); then
    echo "==== $name: passed (make check $(($(date +%s) - t_check)) s; the slowest tests: $(slowest "$dir"))"
  else
    for f in "$dir"/tests/*.log; do
      grep -q "^# FAIL: *[1-9]\|^FAIL\|^ERROR" "$f" 2>/dev/null && { echo "---- $f"; tail -60 "$f"; }
    done
    return 1
  fi
}

# The tests the distcheck stage runs in the unpacked tarball.  The plain
# stage has just run every test on the same sources; what distcheck adds is
# the tarball: everything needed is distributed and the tests find it with
# srcdir != builddir.  So one of each kind of test runs there: the ones that
# read distributed files (exports.txt, docs/man, deploy/, the server scripts
# and certificates, the examples) and the ones that once left files behind
# (distcleancheck).  All suites are still built there.  A plain
# `make distcheck` (no TESTS=) runs everything; DISTCHECK_TESTS=all here too.
distcheck_tests=${DISTCHECK_TESTS:-"tests/exports.sh tests/man.sh tests/layers.sh tests/recipes.sh \
  tests/names.sh tests/deprecated.sh tests/markdown.sh \
  tests/demo.sh tests/demo-own-port.sh tests/demo-env.sh \
  tests/check_render tests/check_postgres tests/check_redis tests/check_probe"}

for stage in $stages; do
  t0=$(date +%s)
  case $stage in
    format)
      echo "==== format (scripts/format.sh --check)"
      # A missing clang-format (exit 77) fails here too: deps.sh installs it.
      if scripts/format.sh --check; then
        echo "==== format: passed"
      else
        failed="$failed format"
      fi ;;
    plain)
      if run_stage plain; then
        scripts/install-check.sh build/plain || failed="$failed install"
      else
        failed="$failed plain"
      fi ;;
    distcheck)
      echo "==== distcheck (tests run in the tarball: ${DISTCHECK_TESTS:-a subset})"
      [ -f build/plain/Makefile ] || run_stage plain || true
      if [ "$distcheck_tests" = all ]; then
        set --
      else
        # shellcheck disable=SC2086
        set -- TESTS="$(echo $distcheck_tests)"
      fi
      if ( cd build/plain && make -s -j"$jobs" distcheck "$@" >distcheck.out 2>&1 ); then
        grep -E "archives ready|^libhealth-.*tar.gz" build/plain/distcheck.out || true
        echo "==== distcheck: passed"
      else
        tail -60 build/plain/distcheck.out; failed="$failed distcheck"
      fi ;;
    package)
      echo "==== package (scripts/package-check.sh: dpkg-buildpackage, lintian, the packages used)"
      if scripts/package-check.sh; then
        echo "==== package: passed"
      else
        failed="$failed package"
      fi ;;
    asan)
      ( export HEALTH_TEST_TIME_SCALE="$san_scale"
        run_stage asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
          LDFLAGS="-fsanitize=address,undefined" ) || failed="$failed asan" ;;
    tsan)
      ( export HEALTH_TEST_TIME_SCALE="$san_scale"
        run_stage tsan CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" ) || failed="$failed tsan" ;;
    valgrind)
      echo "==== valgrind (memcheck, the Check suites of build/plain)"
      # Reuse the plain build; build its test programs without running them.
      if [ -f build/plain/Makefile ] || run_stage plain; then
        if ( cd build/plain && make -s -j"$jobs" >/dev/null && make -s -j"$jobs" check TESTS= >/dev/null ); then
          # Suites at once: twice the CPUs.  They wait on their deadlines
          # (times 20) far more than they compute: with 2 at a time on 2
          # cores, the CPUs were 70 % idle over the stage.
          VALGRIND_JOBS=${VALGRIND_JOBS:-$((jobs * 2))} scripts/valgrind.sh build/plain ||
            failed="$failed valgrind"
        else
          failed="$failed valgrind"
        fi
      else
        failed="$failed valgrind"
      fi ;;
    fuzz)
      echo "==== fuzz (libFuzzer, ${FUZZ_SECONDS:-20} s per target)"
      scripts/fuzz.sh build/fuzz || failed="$failed fuzz" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
  t=$(($(date +%s) - t0))
  echo "==== $stage: $t s"
  times="$times, $stage $t s"
done
echo "==== wall time: $times; total $(($(date +%s) - t_start)) s"

if [ -n "$failed" ]; then
  # The reasons again, last, where a truncated CI log still shows them.
  echo "==== failures"
  for f in build/*/tests/*.log build/*/valgrind/*; do
    [ -f "$f" ] || continue
    grep -Hm5 ":F:\|:E:\|WARNING: ThreadSanitizer\|ERROR: AddressSanitizer\|runtime error:\|ERROR SUMMARY: [1-9]" "$f" 2>/dev/null || true
  done
  echo "FAILED stages:$failed"
  exit 1
fi
echo "ALL STAGES PASSED: $stages"
