#!/bin/sh
# The reference pages: every exported symbol has its section-3 page, the
# pages generated from include/health.h are up to date with the header,
# and every page (with libhealth(3) and health-probe(1)) passes
# `mandoc -T lint` without warnings.
srcdir=${top_srcdir:-.}
man="$srcdir/docs/man"
fail=0

for sym in $(cat "$srcdir/tests/exports.txt"); do
  [ -f "$man/$sym.3" ] || { echo "man: no page for exported symbol $sym" >&2; fail=1; }
done
for f in "$man"/health_*.3; do
  sym=$(basename "$f" .3)
  grep -qx "$sym" "$srcdir/tests/exports.txt" || { echo "man: page $sym.3 documents no exported symbol" >&2; fail=1; }
done

# A page speaks of a health_error_t only when its function takes one.
for f in "$man"/health_*.3; do
  if grep -q 'Vt health_error_t' "$f" && ! grep -q '^\.Fa "health_error_t \*' "$f"; then
    echo "man: $(basename "$f") explains a health_error_t its function does not take" >&2; fail=1
  fi
done

if command -v python3 >/dev/null 2>&1; then
  tmp=${TMPDIR:-/tmp}/libhealth-man.$$
  trap 'rm -rf "$tmp"' EXIT INT TERM
  python3 "$srcdir/scripts/gen-man.py" "$srcdir/include/health.h" "$tmp" || fail=1
  for f in "$tmp"/*.3 "$tmp"/pages.am; do
    if ! cmp -s "$f" "$man/$(basename "$f")"; then
      echo "man: $(basename "$f") is out of date: run scripts/gen-man.py" >&2
      diff -u "$man/$(basename "$f")" "$f" | head -20 >&2
      fail=1
    fi
  done
else
  echo "man: python3 not found: generated pages not compared with the header"
fi

if command -v mandoc >/dev/null 2>&1; then
  if ! mandoc -T lint -W warning "$man"/*.3 "$man"/*.1; then
    echo "man: mandoc -T lint found warnings" >&2; fail=1
  fi
elif [ -n "$HEALTH_TEST_REQUIRE_SERVERS" ]; then
  echo "man: mandoc not found" >&2; fail=1
else
  echo "man: mandoc not found: lint skipped"
fi
exit $fail
