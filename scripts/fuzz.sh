#!/bin/sh
# Build the libFuzzer targets in tests/fuzz/ and run each for a bounded time,
# then replay every saved regression input.
#
# Usage: scripts/fuzz.sh [BUILD_DIR]          (default: build/fuzz)
# Environment:
#   FUZZ_SECONDS   seconds per target (default 20; 0 = build and replay only)
#   FUZZ_TARGETS   space-separated subset of targets (default: all)
#   FUZZ_OPTIONAL  1 = a missing clang/libFuzzer is a skip (exit 0), not a failure
#   CC             the compiler (default clang)
#
# The library sources are compiled again with the fuzzing flags
# (-fsanitize=fuzzer-no-link,address,undefined), not taken from a libtool
# build, so coverage reaches into them.  configure is run once in
# BUILD_DIR/cfg only to produce config.h and the dependency flags.
#
# A crash, leak, timeout or sanitizer report leaves its input in
# BUILD_DIR/artifacts/<target>/ and the script exits non-zero.  Copy such an
# input into tests/fuzz/regressions/<target>/ once it is fixed, so that every
# later run replays it.  Inputs found during a run go to BUILD_DIR/corpus/,
# never into the source tree; tests/fuzz/corpus/<target>/ holds the seeds.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
build=${1:-build/fuzz}
case $build in /*) ;; *) build="$top/$build" ;; esac
seconds=${FUZZ_SECONDS:-20}
cc=${CC:-clang}
all_targets="fuzz_redis_url fuzz_env fuzz_render fuzz_redact fuzz_pg_conninfo fuzz_probe fuzz_http_url"
targets=${FUZZ_TARGETS:-$all_targets}

no_fuzzer() {
  echo "fuzz.sh: $1" >&2
  echo "fuzz.sh: install clang and libFuzzer (Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
  if [ "${FUZZ_OPTIONAL:-0}" = 1 ]; then
    echo "fuzz.sh: FUZZ_OPTIONAL=1: skipping the fuzz stage" >&2
    exit 0
  fi
  exit 1
}

command -v "$cc" >/dev/null 2>&1 || no_fuzzer "$cc not found"
mkdir -p "$build"
probe="$build/probe.c"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
"$cc" -fsanitize=fuzzer,address,undefined "$probe" -o "$build/probe" >"$build/probe.out" 2>&1 ||
  { cat "$build/probe.out" >&2; no_fuzzer "$cc cannot link -fsanitize=fuzzer"; }

# ---- configure once, for config.h and the dependency flags ----
cfg="$build/cfg"
if [ ! -f "$cfg/config.h" ] || [ ! -f "$cfg/Makefile" ] ||
   [ -n "$(find "$top/configure" -newer "$cfg/Makefile" 2>/dev/null)" ]; then
  [ -x "$top/configure" ] || { echo "fuzz.sh: no ./configure: run ./bootstrap first" >&2; exit 1; }
  echo "==== fuzz: configure (for config.h)"
  mkdir -p "$cfg"
  ( cd "$cfg" && "$top/configure" -q CC="$cc" >configure.out 2>&1 ) ||
    { cat "$cfg/configure.out" >&2; exit 1; }
fi
mkvar() { sed -n "s/^$1 = //p" "$cfg/Makefile" | head -1; }
dep_cflags="$(mkvar MHD_CFLAGS) $(mkvar PQ_CFLAGS) $(mkvar REDIS_CFLAGS) $(mkvar OPENSSL_CFLAGS)"
dep_libs="$(mkvar MHD_LIBS) $(mkvar PQ_LIBS) $(mkvar REDIS_LIBS) $(mkvar OPENSSL_LIBS) $(mkvar LIBS)"

# ---- build: library objects once, then one binary per target ----
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san -DHAVE_CONFIG_H -DHEALTH_BUILDING -pthread"
incs="-I$cfg -I$top/include -I$top/libhealth $dep_cflags"
echo "==== fuzz: build ($cc)"
mkdir -p "$build/obj"
objs=""
for src in "$top"/libhealth/*.c "$top"/libhealth/*/*.c; do
  o="$build/obj/$(basename "$src" .c).o"
  # shellcheck disable=SC2086
  "$cc" $cflags -fsanitize=fuzzer-no-link $incs -c "$src" -o "$o"
  objs="$objs $o"
done
rm -f "$build/libhealth-fuzz.a"
# shellcheck disable=SC2086
ar rcs "$build/libhealth-fuzz.a" $objs
for t in $targets; do
  [ -f "$top/tests/fuzz/$t.c" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  # shellcheck disable=SC2086
  "$cc" $cflags -fsanitize=fuzzer $incs "$top/tests/fuzz/$t.c" "$build/libhealth-fuzz.a" \
    $dep_libs -lm -o "$build/$t"
done

# ---- run each target for a bounded time ----
failed=""
# What to show of a failure: the target's own message and its details, the
# sanitizer's verdict, where the input went (not the stack: see the log).
report='^fuzz_[a-z_]+: |^  [a-z. ]+: |^SUMMARY|^==[0-9]+==ERROR|runtime error|Test unit written' 
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
# One target per CPU at a time (FUZZ_JOBS): each libFuzzer process is
# single-threaded, so the per-target time stays what FUZZ_SECONDS says and
# the stage's wall time is divided by the number of CPUs.
fuzz_jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
run_target() {
  t=$1
  seeds="$top/tests/fuzz/corpus/$t"
  work="$build/corpus/$t"
  art="$build/artifacts/$t"
  rm -rf "$art"
  mkdir -p "$work" "$art"
  set -- "$work"
  [ -d "$seeds" ] && set -- "$@" "$seeds"
  if "$build/$t" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$art/" "$@" \
      >"$build/$t.log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log")
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$build/$t.log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    echo "==== fuzz: $t passed: ${execs:-?} executions, coverage ${cov:-?}"
    return 0
  fi
  echo "==== fuzz: $t FAILED; the input is in $art/:"
  ls -1 "$art" || true
  grep -E "$report" "$build/$t.log" | head -20 || true
  echo "---- full log: $build/$t.log"
  return 1
}
run_batch() {
  for b in "$@"; do
    ( if run_target "$b" >"$build/$b.result" 2>&1; then echo 0; else echo 1; fi >"$build/$b.rc" ) &
  done
  wait
  for b in "$@"; do
    if [ "$(cat "$build/$b.rc" 2>/dev/null)" = 0 ]; then
      cat "$build/$b.result"
    else
      cat "$build/$b.result" >&2
      failed="$failed $b"
    fi
  done
}
if [ "$seconds" -gt 0 ]; then
  echo "==== fuzz: each target for ${seconds}s, $fuzz_jobs at a time"
  batch=""
  n=0
  for t in $targets; do
    batch="$batch $t"
    n=$((n + 1))
    [ $n -ge "$fuzz_jobs" ] || continue
    # shellcheck disable=SC2086
    run_batch $batch
    batch=""
    n=0
  done
  # shellcheck disable=SC2086
  [ -z "$batch" ] || run_batch $batch
fi

# ---- replay the regression inputs: each must pass ----
for t in $targets; do
  dir="$top/tests/fuzz/regressions/$t"
  [ -d "$dir" ] || continue
  n=0; bad=0
  for f in $(find "$dir" -type f ! -name '.*' ! -name '*.md' | sort); do
    n=$((n + 1))
    if ! "$build/$t" -rss_limit_mb=1024 -timeout=10 "$f" >"$build/$t.replay.log" 2>&1; then
      bad=$((bad + 1))
      echo "==== fuzz: $t: regression input $(basename "$f") FAILED" >&2
      grep -E "$report" "$build/$t.replay.log" | head -10 >&2 || true
    fi
  done
  [ "$n" -gt 0 ] || continue
  if [ "$bad" -eq 0 ]; then
    echo "==== fuzz: $t: $n regression input(s) replayed"
  else
    failed="$failed $t($bad/$n regressions)"
  fi
done

if [ -n "$failed" ]; then
  echo "FUZZ FAILED:$failed" >&2
  exit 1
fi
echo "FUZZ PASSED: $targets"
