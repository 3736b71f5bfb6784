#!/bin/sh
# The Debian packages, built and used as a user would (scripts/test.sh's
# `package` stage; docs/PACKAGING.md):
#   - dpkg-buildpackage -us -uc -b on a clean export of the tree (the files
#     git tracks or would track: no build products), the test suite not run
#     again (DEB_BUILD_OPTIONS=nocheck: the suite already ran);
#   - lintian on the .changes: any error or warning fails;
#   - dpkg-gensymbols -c4 refuses the library when debian/libhealth1.symbols
#     lacks one of its exports;
#   - libhealth1, libhealth-dev and health-tools unpacked with dpkg -x into a
#     temporary root: debian/tests/build-and-probe (the autopkgtest) builds
#     examples/minimal.c there through pkg-config, and the packaged
#     health-probe (dynamically linked) probes it; a CMake project finds
#     the package's libhealth::libhealth in that root.
# Skipped, with a line, where dpkg-buildpackage or lintian is not installed.
# Usage: scripts/package-check.sh [KEEP_DIR]   (KEEP_DIR keeps the .debs)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in dpkg-buildpackage dh lintian; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "package-check: skipped: $tool not installed (Debian's dpkg-dev, debhelper, lintian)"
    exit 0
  fi
done
fail() { echo "package-check: FAIL: $*" >&2; exit 1; }
t0=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
version=$(sed -n '1s/^libhealth (\([^)]*\)).*/\1/p' "$top/debian/changelog")
[ -n "$version" ] || fail "no version in debian/changelog"
src="$tmp/libhealth-${version%-*}"
mkdir "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
  # (a file deleted but not yet committed is left out: --ignore-failed-read)
  ( cd "$top" && git ls-files -z --cached --others --exclude-standard |
      tar --null --ignore-failed-read -T - -cf - 2>/dev/null ) | tar -xf - -C "$src"
else
  ( cd "$top" && tar --exclude=./build --exclude=./debian/.debhelper -cf - . ) | tar -xf - -C "$src"
fi

echo "package-check: dpkg-buildpackage -us -uc -b (log: build.log)"
jobs=$(nproc 2>/dev/null || echo 2)
if ! ( cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" dpkg-buildpackage -us -uc -b >../build.log 2>&1 ); then
  tail -40 "$tmp/build.log" >&2; fail "dpkg-buildpackage failed"
fi
t_build=$(($(date +%s) - t0))
changes=$(ls "$tmp"/libhealth_*.changes)
for p in libhealth1 libhealth-dev health-tools; do
  ls "$tmp/${p}_${version}_"*.deb >/dev/null 2>&1 || fail "no $p package built"
done

# lintian: no error, no warning (overrides, with their reasons, are in
# debian/*.lintian-overrides).
lintian --fail-on error,warning "$changes" >"$tmp/lintian.out" 2>&1 || {
  cat "$tmp/lintian.out" >&2; fail "lintian reports errors or warnings"; }
if grep -q "^[EW]:" "$tmp/lintian.out"; then cat "$tmp/lintian.out" >&2; fail "lintian reports errors or warnings"; fi
t_lintian=$(($(date +%s) - t0 - t_build))

root="$tmp/root"
for deb in "$tmp"/*.deb; do
  case $deb in *-dbgsym_*) continue ;; esac
  dpkg -x "$deb" "$root"
done
lib=$(ls "$root"/usr/lib/*/libhealth.so.1 | head -n1)
[ -f "$lib" ] || fail "libhealth.so.1 not in libhealth1"

# The symbols check has teeth: without one of its lines, the same library
# is refused at check level 4.
sym="$src/debian/libhealth1.symbols"
( cd "$src" && dpkg-gensymbols -c4 -plibhealth1 -I"$sym" -e"$lib" -O"$tmp/symbols.out" >/dev/null 2>&1 ) ||
  fail "dpkg-gensymbols -c4 refuses the built library with debian/libhealth1.symbols"
grep -v " health_status@" "$sym" >"$tmp/short.symbols"
if ( cd "$src" && dpkg-gensymbols -c4 -plibhealth1 -I"$tmp/short.symbols" -e"$lib" -O"$tmp/symbols.out" >/dev/null 2>&1 ); then
  fail "dpkg-gensymbols -c4 accepts an export missing from the symbols file"
fi

# health-tools' probe is linked dynamically (Debian policy).
readelf -l "$root/usr/bin/health-probe" | grep -q "program interpreter" ||
  fail "health-probe in health-tools is linked statically"

LIBHEALTH_ROOT="$root" sh "$src/debian/tests/build-and-probe" || fail "the autopkgtest failed against the unpacked packages"

# CMake: find_package(libhealth) in the unpacked root (a multiarch libdir,
# relocated: the config file computes its paths from its own location).
if command -v cmake >/dev/null 2>&1; then
  mkdir "$tmp/cmake"
  cp "$top/tests/consumers/cmake/CMakeLists.txt" "$top/examples/minimal.c" "$tmp/cmake/"
  ( cd "$tmp/cmake" && cmake -S . -B build -DCMAKE_PREFIX_PATH="$root/usr" \
      -DLIBHEALTH_WANT="$(echo "$version" | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')" >cmake.out 2>&1 &&
      cmake --build build >>cmake.out 2>&1 ) || { cat "$tmp/cmake/cmake.out" >&2; fail "CMake consumer of libhealth-dev"; }
  readelf -d "$tmp/cmake/build/minimal" | grep -q "libhealth\.so\.1" || fail "CMake consumer not linked to libhealth.so.1"
fi
[ -z "${1:-}" ] || cp "$tmp"/*.deb "$tmp"/*.changes "$1"/
echo "package-check: libhealth1, libhealth-dev, health-tools $version built ($t_build s), lintian clean ($t_lintian s), symbols enforced, a program built from the unpacked packages answered the packaged health-probe; $(($(date +%s) - t0)) s in all"
