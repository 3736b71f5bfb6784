#!/bin/sh
# examples/minimal-cpp11 and -cpp17 (built with -pedantic -Werror) through SIGTERM.
# The scenario and its bounds: tests/shapes.py.  Needs python3 (skips without it).
set -u
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
if ! command -v python3 >/dev/null 2>&1; then
  [ "${HEALTH_TEST_REQUIRE_SERVERS:-0}" = 1 ] && { echo "$0: FAIL: python3 not found" >&2; exit 1; }
  echo "$0: python3 not found, skipping" >&2
  exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-shapes-XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP
python3 "$top_srcdir/tests/shapes.py" cpp "$top_builddir" "$top_srcdir" "$TMP"
