#!/bin/sh
# The packaging metadata agrees with the build, so that updating it is one
# obvious step:
#   - one version: configure.ac's (PACKAGE_VERSION), <health.h>'s
#     HEALTH_VERSION_* and the upstream part of debian/changelog's;
#   - the soname: libhealth.so.N (libtool -version-info) is packaged as
#     libhealthN in debian/control, with debian/libhealthN.symbols;
#   - debian/libhealthN.symbols is what scripts/gen-symbols.py makes from
#     libhealth/libhealth.map and tests/exports.txt (an export added to
#     those without the symbols file fails here, before dpkg-gensymbols
#     fails the package build).
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
status=0
fail() { echo "packaging: $*" >&2; status=1; }

[ -f "$srcdir/debian/changelog" ] || { echo "packaging: no debian/ directory: skipped"; exit 77; }
ac=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$builddir/config.h")
h=$(sed -n 's/^#define HEALTH_VERSION_STRING "\(.*\)"$/\1/p' "$srcdir/include/health.h")
hmaj=$(sed -n 's/^#define HEALTH_VERSION_MAJOR \([0-9]*\)$/\1/p' "$srcdir/include/health.h")
hmin=$(sed -n 's/^#define HEALTH_VERSION_MINOR \([0-9]*\)$/\1/p' "$srcdir/include/health.h")
hpat=$(sed -n 's/^#define HEALTH_VERSION_PATCH \([0-9]*\)$/\1/p' "$srcdir/include/health.h")
deb=$(sed -n '1s/^libhealth (\([^)]*\)).*/\1/p' "$srcdir/debian/changelog")
debup=${deb%-*}
debup=${debup#*:}
[ -n "$ac" ] || fail "no PACKAGE_VERSION in config.h"
[ "$h" = "$ac" ] || fail "HEALTH_VERSION_STRING is '$h' in include/health.h, configure.ac says '$ac'"
[ "$hmaj.$hmin.$hpat" = "$ac" ] || fail "HEALTH_VERSION_MAJOR.MINOR.PATCH is $hmaj.$hmin.$hpat, configure.ac says '$ac'"
[ "$debup" = "$ac" ] || fail "debian/changelog's upstream version is '$debup' (of $deb), configure.ac says '$ac' (dch -v $ac-1)"

lt=$(sed -n 's/^AC_SUBST(\[HEALTH_LT_VERSION\], \[\([0-9:]*\)\])$/\1/p' "$srcdir/configure.ac")
major=$((${lt%%:*} - ${lt##*:}))
lib="$builddir/libhealth/.libs/libhealth.so"
if [ -f "$lib" ] && command -v readelf >/dev/null 2>&1; then
  soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [ "$soname" = "libhealth.so.$major" ] || fail "the library's soname is $soname, configure.ac's -version-info $lt gives libhealth.so.$major"
fi
grep -q "^Package: libhealth$major\$" "$srcdir/debian/control" ||
  fail "debian/control has no package libhealth$major for libhealth.so.$major"
grep -q "libhealth$major (= \${binary:Version})" "$srcdir/debian/control" ||
  fail "libhealth-dev does not depend on libhealth$major (= \${binary:Version})"
[ -f "$srcdir/debian/libhealth$major.symbols" ] || fail "no debian/libhealth$major.symbols"
[ -f "$srcdir/debian/libhealth$major.install" ] || fail "no debian/libhealth$major.install"

if command -v python3 >/dev/null 2>&1; then
  python3 "$srcdir/scripts/gen-symbols.py" --check || status=1
else
  echo "packaging: python3 not found: symbols file not compared"
fi
[ $status = 0 ] && echo "packaging: version $ac everywhere, libhealth.so.$major packaged as libhealth$major, symbols file current"
exit $status
