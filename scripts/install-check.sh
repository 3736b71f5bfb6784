#!/bin/sh
# `make install` into a staging directory, then build and run programs
# against the installed header, library, libhealth.pc and CMake package:
# through pkg-config (shared, and the static library), a CMake project
# (find_package + libhealth::libhealth) and a Meson one (dependency()).
# Each program must answer /ready to the installed health-probe and exit
# 0 on SIGTERM.  CMake and Meson builds are skipped, with a line, where
# those tools are not installed.
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
for f in libhealthConfig.cmake libhealthConfigVersion.cmake; do
  ls "$stage$prefix"/lib*/cmake/libhealth/$f >/dev/null 2>&1 || fail "$f not installed"
  if grep -n '@[A-Za-z_]*@' "$stage$prefix"/lib*/cmake/libhealth/$f; then fail "$f: a template word was not replaced"; fi
done
[ -x "$stage$prefix/bin/health-lint" ] || fail "health-lint not installed"
# The reference pages, as `man` finds them (MANPATH: the staged tree only).
for page in man3/health_postgres_add.3 man3/libhealth.3 man1/health-probe.1 man1/health-lint.1; do
  [ -f "$stage$prefix/share/man/$page" ] || fail "$page not installed"
done
if command -v man >/dev/null 2>&1; then
  MANPATH="$stage$prefix/share/man" man -P cat health_postgres_add 2>/dev/null | grep -q "health_postgres_add" \
    || fail "man health_postgres_add does not show the page"
fi
shlibdir=$(dirname "$(ls "$stage$prefix"/lib*/libhealth.so | head -n1)")
export PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$libdir"
pkg-config --exists libhealth || fail "pkg-config cannot find libhealth"
# <health.h> includes no header of the dependencies: --cflags names
# libhealth's include directory only (nothing for /usr/include).
cflags=$(pkg-config --cflags libhealth | sed 's/ *$//')
want="-I$stage$prefix/include"
[ "$prefix" = /usr ] && want=""
[ "$cflags" = "$want" ] || fail "pkg-config --cflags libhealth is '$cflags', want '$want'"
static_libs=$(pkg-config --static --libs libhealth)
for l in -lhealth -lmicrohttpd; do
  case " $static_libs " in *" $l "*) ;; *) fail "pkg-config --static --libs libhealth lacks $l: $static_libs" ;; esac
done

# run_probe NAME PROGRAM: start PROGRAM on a free port, probe /ready with
# the installed health-probe, SIGTERM it, expect exit 0.  The port comes
# from tests/free-ports.py; another process may still take it before the
# program binds it (a client's ephemeral port), so a start that fails with
# "Address already in use" is tried again on another port, at most 5 times.
run_probe() {
  name=$1 prog=$2 ok=0
  for attempt in 1 2 3 4 5; do
    port=$(python3 "$top/tests/free-ports.py" 1) || fail "no free port"
    LD_LIBRARY_PATH="$shlibdir" \
      HEALTH_PORT=$port HEALTH_ADDRESS=127.0.0.1 HEALTH_DRAIN_MS=0 HEALTH_LOG_LEVEL=info \
      "$prog" 2>"$stage/$name.err" &
    pid=$!
    for i in $(seq 1 100); do
      if "$stage$prefix/bin/health-probe" --timeout 500 "http://127.0.0.1:$port/ready" 2>/dev/null; then ok=1; break; fi
      kill -0 $pid 2>/dev/null || break
      sleep 0.05
    done
    [ $ok = 1 ] && break
    kill -0 $pid 2>/dev/null && break # running but not answering: a failure
    wait $pid || true
    grep -q "already in use" "$stage/$name.err" || break
    echo "install-check: port $port was taken before $name bound it; another port"
  done
  [ $ok = 1 ] || cat "$stage/$name.err" >&2
  # health_start installs the SIGTERM handler after the health port answers:
  # its "started" line says it returned (waited for at most 10 s).
  i=0
  while [ $ok = 1 ] && [ $((i += 1)) -le 200 ] && ! grep -q '"event":"started"' "$stage/$name.err"; do
    sleep 0.05
  done
  kill -TERM $pid 2>/dev/null || true
  rc=0; wait $pid || rc=$?
  [ $ok = 1 ] || fail "$name did not answer /ready"
  [ $rc = 0 ] || fail "$name exited $rc after SIGTERM"
}

cc -o "$stage/minimal" "$top/examples/minimal.c" $(pkg-config --cflags --libs libhealth) || fail "cannot build against the installed library"
run_probe minimal "$stage/minimal"

# The static library, linked with `pkg-config --static --libs libhealth`: a
# directory holding only libhealth.a comes first, so -lhealth is static and
# the dependencies are their shared libraries.  A library that a
# dependency's own .pc names but its -dev package does not ship (Debian
# 12's libpq.pc names libpgcommon and libpgport) is left out, with a line.
mkdir "$stage/static"
cp "$shlibdir/libhealth.a" "$stage/static/"
flags="" missing=""
for f in $static_libs; do
  case $f in
    -l*) lib=${f#-l}
         if [ "$lib" != health ] && [ "$(cc -print-file-name="lib$lib.so")" = "lib$lib.so" ] &&
            [ "$(cc -print-file-name="lib$lib.a")" = "lib$lib.a" ]; then
           case "$missing " in *" $f "*) ;; *) missing="$missing $f" ;; esac
           continue
         fi ;;
  esac
  flags="$flags $f"
done
[ -z "$missing" ] || echo "install-check: not installed here, left out of the static link:$missing"
# shellcheck disable=SC2086
cc -o "$stage/minimal-static" "$top/examples/minimal.c" $(pkg-config --cflags libhealth) -L"$stage/static" $flags \
  || fail "cannot link the static library with pkg-config --static --libs libhealth"
if readelf -d "$stage/minimal-static" | grep -q "libhealth\.so"; then fail "minimal-static needs libhealth.so"; fi
run_probe minimal-static "$stage/minimal-static"
built="pkg-config (shared and static)"

# CMake: find_package(libhealth 0.2) + libhealth::libhealth, with the
# prefix moved (the config file computes its paths from its own location).
if command -v cmake >/dev/null 2>&1; then
  want_mm=$(pkg-config --modversion libhealth | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')
  mkdir "$stage/moved" "$stage/cmake"
  cp -a "$stage$prefix/." "$stage/moved/"
  cp "$top/tests/consumers/cmake/CMakeLists.txt" "$top/examples/minimal.c" "$stage/cmake/"
  for kind in shared static; do
    static=OFF; [ $kind = static ] && static=ON
    ( cd "$stage/cmake" && cmake -S . -B "build-$kind" -DCMAKE_PREFIX_PATH="$stage/moved" \
        -DLIBHEALTH_WANT="$want_mm" -Dlibhealth_USE_STATIC_LIBS=$static >cmake.out 2>&1 &&
      cmake --build "build-$kind" >>cmake.out 2>&1 ) || {
      # libpq's .pc names libraries Debian 12 does not ship (see above):
      # the static target then cannot link here.
      if [ $kind = static ] && [ -n "$missing" ] && grep -q "cannot find -l" "$stage/cmake/cmake.out"; then
        echo "install-check: CMake static consumer not linked: its dependencies name libraries not installed here:$missing"
        continue
      fi
      cat "$stage/cmake/cmake.out" >&2; fail "the CMake consumer ($kind) does not build"; }
    if [ $kind = shared ]; then
      readelf -d "$stage/cmake/build-$kind/minimal" | grep -q "libhealth\.so\.1" || fail "CMake consumer not linked to libhealth.so.1"
    fi
    run_probe "cmake-$kind" "$stage/cmake/build-$kind/minimal"
    built="$built, CMake $kind"
  done
else
  echo "install-check: cmake not installed: CMake consumer skipped"
fi

# Meson: dependency('libhealth') through libhealth.pc.
if command -v meson >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then
  mkdir "$stage/meson"
  cp "$top/tests/consumers/meson/meson.build" "$top/examples/minimal.c" "$stage/meson/"
  ( cd "$stage/meson" && meson setup build >meson.out 2>&1 && ninja -C build >>meson.out 2>&1 ) ||
    { cat "$stage/meson/meson.out" >&2; fail "the Meson consumer does not build"; }
  run_probe meson "$stage/meson/build/minimal"
  built="$built, Meson"
else
  echo "install-check: meson or ninja not installed: Meson consumer skipped"
fi
echo "install-check: header, shared+static library, libhealth.pc, CMake package, health-probe and man pages installed; programs built with $built answer /ready and exit 0 on SIGTERM"
