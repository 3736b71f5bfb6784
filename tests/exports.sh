#!/bin/sh
# The shared library exports exactly the public API: every symbol that
# `nm -D --defined-only` lists must start with health_ and be listed in
# tests/exports.txt (sorted), and every listed symbol must be exported.
# Keep tests/exports.txt in sync with the HEALTH_EXPORT prototypes of
# include/health.h.

srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
lib="$builddir/libhealth/.libs/libhealth.so"
expected="$srcdir/tests/exports.txt"

if [ ! -f "$lib" ]; then
  echo "exports: $lib not found (static-only build?): skipped"
  exit 77
fi
if ! command -v nm >/dev/null 2>&1; then
  echo "exports: nm not found: skipped"
  exit 77
fi
if [ ! -s "$expected" ]; then
  echo "exports: $expected is missing or empty" >&2
  exit 1
fi

tmp=${TMPDIR:-/tmp}/libhealth-exports.$$
trap 'rm -f "$tmp.raw" "$tmp.actual" "$tmp.expected"' EXIT INT TERM

if ! nm -D --defined-only "$lib" >"$tmp.raw" 2>&1; then
  cat "$tmp.raw" >&2
  rm -f "$tmp.raw"
  echo "exports: nm failed on $lib" >&2
  exit 1
fi
# "ADDRESS TYPE NAME@@VERSION": every public symbol carries the version
# node of libhealth/libhealth.map; the node itself is an absolute symbol.
unversioned=$(awk 'NF >= 3 && $2 != "A" && $3 !~ /@@?LIBHEALTH_[0-9.]+$/ { print $3 }' "$tmp.raw")
if [ -n "$unversioned" ]; then
  echo "exports: symbols without a LIBHEALTH_* version (libhealth/libhealth.map):" >&2
  echo "$unversioned" >&2
  rm -f "$tmp.raw"
  exit 1
fi
awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmp.raw" | LC_ALL=C sort -u >"$tmp.actual"
rm -f "$tmp.raw"
LC_ALL=C sort -u "$expected" >"$tmp.expected"

status=0
if ! cmp -s "$expected" "$tmp.expected"; then
  echo "exports: tests/exports.txt is not sorted or has duplicates (use LC_ALL=C sort -u)" >&2
  status=1
fi
bad=$(grep -v '^health_' "$tmp.actual")
if [ -n "$bad" ]; then
  echo "exports: symbols without the health_ prefix are exported:" >&2
  echo "$bad" >&2
  status=1
fi
if ! diff -u "$tmp.expected" "$tmp.actual" >&2; then
  echo "exports: the exported symbols differ from tests/exports.txt" >&2
  echo "         (lines with - are expected but missing, + are exported but not listed)" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "exports: $(wc -l <"$tmp.actual") symbols, all listed in tests/exports.txt"
exit $status
