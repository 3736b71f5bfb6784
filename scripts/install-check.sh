#!/bin/sh
# `make install` into a staging directory, then build and run a program
# against the installed header, library and libhealth.pc with pkg-config.
# Usage: scripts/install-check.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
make -s -C "$build" install DESTDIR="$stage" >/dev/null
prefix=$(sed -n 's/^prefix=//p' "$build/pkgconfig/libhealth.pc")
libdir=$(find "$stage" -name libhealth.pc -path '*pkgconfig*' -exec dirname {} \; | head -n1)
fail() { echo "install-check: FAIL: $*" >&2; exit 1; }
[ -n "$libdir" ] || fail "libhealth.pc not installed"
[ -f "$stage$prefix/include/health.h" ] || fail "health.h not installed"
ls "$stage$prefix"/lib*/libhealth.so* >/dev/null 2>&1 || fail "shared library not installed"
ls "$stage$prefix"/lib*/libhealth.a >/dev/null 2>&1 || fail "static library not installed"
[ -x "$stage$prefix/bin/health-probe" ] || fail "health-probe not installed"
[ -x "$stage$prefix/bin/health-lint" ] || fail "health-lint not installed"
# The reference pages, as `man` finds them (MANPATH: the staged tree only).
for page in man3/health_add_postgres.3 man3/libhealth.3 man1/health-probe.1 man1/health-lint.1; do
  [ -f "$stage$prefix/share/man/$page" ] || fail "$page not installed"
done
if command -v man >/dev/null 2>&1; then
  MANPATH="$stage$prefix/share/man" man -P cat health_add_postgres 2>/dev/null | grep -q "health_add_postgres" \
    || fail "man health_add_postgres does not show the page"
fi
export PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$libdir"
pkg-config --exists libhealth || fail "pkg-config cannot find libhealth"
pkg-config --print-requires-private libhealth | grep -q libmicrohttpd || fail "Requires.private lacks libmicrohttpd"
cc -o "$stage/minimal" "$top/examples/minimal.c" $(pkg-config --cflags --libs libhealth) || fail "cannot build against the installed library"
cc -static-libgcc -o "$stage/minimal-static" "$top/examples/minimal.c" \
  $(pkg-config --cflags libhealth) "$(dirname "$(ls "$stage$prefix"/lib*/libhealth.a | head -n1)")/libhealth.a" \
  $(PKG_CONFIG_SYSROOT_DIR= pkg-config --libs $(pkg-config --print-requires-private libhealth)) -pthread \
  || fail "cannot link the static library (with its Requires.private as shared libraries)"
# Run it: the health port must answer, then SIGTERM must exit it with 0.
# The port comes from tests/free-ports.py; another process may still take
# it before the program binds it (a client's ephemeral port), so a start
# that fails with "Address already in use" is tried again on another port,
# at most 5 times.
ok=0
for attempt in 1 2 3 4 5; do
  port=$(python3 "$top/tests/free-ports.py" 1) || fail "no free port"
  LD_LIBRARY_PATH="$(dirname "$(ls "$stage$prefix"/lib*/libhealth.so | head -n1)")" \
    HEALTH_PORT=$port HEALTH_ADDRESS=127.0.0.1 HEALTH_DRAIN_MS=0 HEALTH_LOG_LEVEL=warn \
    "$stage/minimal" 2>"$stage/minimal.err" &
  pid=$!
  for i in $(seq 1 100); do
    if "$stage$prefix/bin/health-probe" --timeout 500 "http://127.0.0.1:$port/ready" 2>/dev/null; then ok=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  [ $ok = 1 ] && break
  kill -0 $pid 2>/dev/null && break # running but not answering: a failure
  wait $pid || true
  grep -q "already in use" "$stage/minimal.err" || break
  echo "install-check: port $port was taken before the program bound it; another port"
done
[ $ok = 1 ] || cat "$stage/minimal.err" >&2
kill -TERM $pid 2>/dev/null || true
rc=0; wait $pid || rc=$?
[ $ok = 1 ] || fail "installed program did not answer /ready"
[ $rc = 0 ] || fail "installed program exited $rc after SIGTERM"
echo "install-check: header, shared+static library, libhealth.pc, health-probe and man pages installed; a program built with pkg-config runs and exits 0 on SIGTERM"
