#!/bin/sh
# The names 0.2.0 replaced (include/health.h, "Deprecated names"):
#  1. every one of them warns at compile time, naming its successor:
#     tests/deprecated.c, compiled with the warning as an error, fails
#     with one diagnostic per old name it calls;
#  2. they still work: tests/deprecated (built by make check from the same
#     file without the warning) calls each and checks its answer;
#  3. HEALTH_NO_DEPRECATED hides them.
srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
cc=${CC:-cc}
fail=0

# "old new" pairs, from prototypes that may span several lines
pairs=$(tr '\n' ' ' <"$srcdir/include/health.h" | tr ';' '\n' |
  sed -n 's/.*HEALTH_EXPORT [^(]*[ *]\(health_[a-z_]*\)(.*HEALTH_DEPRECATED("use \(health_[a-z_]*\)()").*/\1 \2/p')
old=$(echo "$pairs" | cut -d' ' -f1)
n=$(echo "$old" | grep -c .)
[ "$n" -ge 20 ] || { echo "deprecated: only $n deprecated names found in health.h" >&2; exit 1; }

out=$(LC_ALL=C $cc -fsyntax-only -Werror=deprecated-declarations -I"$srcdir/include" "$srcdir/tests/deprecated.c" 2>&1)
if [ $? -eq 0 ]; then
  echo "deprecated: tests/deprecated.c compiled without a deprecation error" >&2
  fail=1
fi
for name in $old; do
  if ! grep -q "^ *EXPECT(${name}(\|^ *${name}(\|[ (]${name}(" "$srcdir/tests/deprecated.c"; then
    echo "deprecated: tests/deprecated.c never calls $name" >&2; fail=1; continue
  fi
  succ=$(echo "$pairs" | awk -v n="$name" '$1 == n { print $2 }')
  if ! echo "$out" | grep -q "$name'* is deprecated: use $succ()"; then
    echo "deprecated: no compile-time warning for $name naming $succ()" >&2; fail=1
  fi
done
# HEALTH_NO_DEPRECATED hides them: the same file no longer compiles.
if LC_ALL=C $cc -fsyntax-only -DHEALTH_NO_DEPRECATED -Werror=implicit-function-declaration \
  -I"$srcdir/include" "$srcdir/tests/deprecated.c" >/dev/null 2>&1; then
  echo "deprecated: HEALTH_NO_DEPRECATED left the old names declared" >&2; fail=1
fi
echo "$out" | grep -q "health_pg_options_t'* is deprecated" ||
  { echo "deprecated: no warning for health_pg_options_t" >&2; fail=1; }

if ! "$builddir/tests/deprecated"; then
  echo "deprecated: an old name does not answer as its successor" >&2; fail=1
fi
[ $fail -eq 0 ] && echo "deprecated: $n old names warn and work"
exit $fail
