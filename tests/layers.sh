#!/bin/sh
# The library's shape, checked on every `make check`:
#   1. no source file under libhealth/ (.c or .h) is longer than 450 lines;
#   2. no import loop among the library's files: file A imports file B when
#      A's object calls a non-static function that B's object defines (read
#      with nm from the objects of libhealth-core.la in the build tree); every
#      strongly connected component of that graph with more than one file is
#      a loop, listed with the calls that close it;
#   3. every call goes down the declared layers (libhealth/layers.txt): each
#      .c file under libhealth/ is in the map, and a file calls only files of
#      its own layer or of a lower rank. A call up (or across, to another
#      layer of the same rank) fails with the caller, the callee, both layers
#      and the symbols.
#
# Usage: tests/layers.sh [--src DIR] [--map FILE] [--max N] [--self-test] [OBJECT...]
#   --src DIR     the sources to measure (default: $top_srcdir/libhealth)
#   --map FILE    the layer map (default: DIR/layers.txt)
#   --max N       the line limit (default 450)
#   --self-test   only prove the loop finder and the direction check on small
#                 objects compiled here with $CC (with and without a loop, with
#                 and without a call up); exit 0 if it tells them apart
#   OBJECT...     the objects to read (default: the PIC objects of
#                 libhealth-core.la under $top_builddir/libhealth and its
#                 subfolders, else the non-PIC ones)
# A file's name in the graph is its object's name without the libtool
# prefix: libhealth_core_la-registry.o -> registry (libhealth/engine/
# registry.c); the map names each file by its path under libhealth/, so
# the file names under libhealth/ must be unique.
# Exit status: 0 passed, 1 a file too long, a loop, a file missing from the
# map or a call up the layers, 99 nothing to read.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/.." && pwd)}
top_builddir=${top_builddir:-.}
src=$top_srcdir/libhealth
shown=libhealth
map=
max=450
self_test=0
while [ $# -gt 0 ]; do
  case $1 in
    --src) src=$2; shown=$2; shift 2 ;;
    --map) map=$2; shift 2 ;;
    --max) max=$2; shift 2 ;;
    --self-test) self_test=1; shift ;;
    --) shift; break ;;
    -*) echo "layers: unknown option $1" >&2; exit 99 ;;
    *) break ;;
  esac
done
NM=${NM:-nm}
command -v "$NM" >/dev/null 2>&1 || { echo "layers: $NM not found (binutils)" >&2; exit 99; }
[ -n "$map" ] || map=$src/layers.txt

# symbols OBJECT...: "file U sym" for what a file needs, "file D sym" for the
# functions and data it defines for others.
symbols() {
  for o in "$@"; do
    name=${o##*/}
    name=${name%.o}
    name=${name##*_la-}
    "$NM" "$o" | awk -v f="$name" '
      $1 == "U" && NF == 2 { print f, "U", $2 }
      NF == 3 && $2 ~ /^[TWDBRV]$/ { print f, "D", $3 }'
  done
}

# direction MAP OBJECT...: one line per pair of files where the first calls
# up (or across) the layers; exit 1 if any, 99 if the map is malformed.
direction() {
  m=$1
  shift
  symbols "$@" | awk -v map="$m" '
    BEGIN {
      while ((getline line < map) > 0) {
        ln++
        sub(/#.*/, "", line)
        n = split(line, w, " ")
        if (n == 0) continue
        if (w[1] == "layer" && n == 3 && w[2] ~ /^[0-9]+$/) { rank[w[3]] = w[2] + 0; continue }
        if (n == 2 && (w[2] in rank)) {
          f = w[1]; sub(/\.c$/, "", f); sub(/^.*\//, "", f)
          if (f in layer) { printf "%s:%d: %s listed twice (or a file of the same name)\n", map, ln, w[1]; broken = 1 }
          layer[f] = w[2]; path[f] = w[1]
          continue
        }
        printf "%s:%d: not \"layer RANK NAME\" nor \"FILE.c LAYER\" (layers are declared before use): %s\n", map, ln, line
        broken = 1
      }
      if (broken) exit 99
    }
    $2 == "D" { owner[$3] = $1; files[$1] = 1; next }
    { need[++n] = $1 " " $3; files[$1] = 1 }
    END {
      if (broken) exit 99
      bad = 0
      for (f in files) if (!(f in layer)) { printf "%s.c: not in %s (give it a layer)\n", f, map; bad = 1 }
      for (i = 1; i <= n; i++) {
        split(need[i], p, " ")
        b = owner[p[2]]
        a = p[1]
        if (b == "" || b == a || !(a in layer) || !(b in layer)) continue
        la = layer[a]; lb = layer[b]
        if (la == lb || rank[lb] < rank[la]) continue
        k = a SUBSEP b
        if (!(k in up)) { up[k] = p[2]; order[++nu] = k }
        else if (cnt[k] < 3) up[k] = up[k] ", " p[2]
        cnt[k]++
      }
      for (i = 1; i <= nu; i++) {
        split(order[i], q, SUBSEP)
        la = layer[q[1]]; lb = layer[q[2]]
        printf "%s (%d %s) calls %s %s (%d %s): %s%s\n", path[q[1]], rank[la], la, (rank[lb] == rank[la] ? "across to" : "up into"), path[q[2]], rank[lb], lb, up[order[i]], (cnt[order[i]] > 3 ? ", ..." : "")
        bad = 1
      }
      exit bad
    }'
}

# coverage MAP DIR: every .c file of DIR (and its subfolders) in the map,
# every file of the map in DIR; exit 1 if not.
coverage() {
  awk '{ sub(/#.*/, "") } NF == 2 && $1 ~ /\.c$/ { print $1 }' "$1" | sort >"$tmp/mapped"
  (cd "$2" && find . -name '*.c' -type f | sed 's|^\./||') | sort >"$tmp/present"
  comm -13 "$tmp/mapped" "$tmp/present" | sed "s|\$| is not in $3 (give it a layer)|"
  comm -23 "$tmp/mapped" "$tmp/present" | sed "s|\$| is in $3 but not in the sources (remove it)|"
  cmp -s "$tmp/mapped" "$tmp/present"
}

# loops OBJECT...: prints "file -> file ..." edges, then one "LOOP n: files"
# line per component and its in-loop calls; exit 1 if any loop.
loops() {
  for o in "$@"; do
    name=${o##*/}
    name=${name%.o}
    name=${name##*_la-}
    # T/W: functions this object defines for others; U: what it needs.
    "$NM" "$o" | awk -v f="$name" '
      $1 == "U" && NF == 2 { print f, "U", $2 }
      NF == 3 && ($2 == "T" || $2 == "W") { print f, "D", $3 }'
  done | awk '
    $2 == "D" { owner[$3] = $1; files[$1] = 1; next }
    { need[++n] = $1 " " $3; files[$1] = 1 }
    END {
      for (i = 1; i <= n; i++) {
        split(need[i], p, " ")
        b = owner[p[2]]
        if (b == "" || b == p[1]) continue
        if (!((p[1], b) in edge)) { edge[p[1], b] = p[2]; nedge[p[1]]++ }
        else if (nedge_sym[p[1], b] < 2) { edge[p[1], b] = edge[p[1], b] ", " p[2] }
        nedge_sym[p[1], b]++
      }
      # Transitive closure (a few dozen files: the cube is cheap).
      nf = 0
      for (f in files) name[++nf] = f
      # sorted names, for a stable report
      for (i = 2; i <= nf; i++) { v = name[i]; for (j = i - 1; j >= 1 && name[j] > v; j--) name[j + 1] = name[j]; name[j + 1] = v }
      for (i = 1; i <= nf; i++) for (j = 1; j <= nf; j++)
        if ((name[i], name[j]) in edge) reach[i, j] = 1
      for (k = 1; k <= nf; k++) for (i = 1; i <= nf; i++) if (reach[i, k])
        for (j = 1; j <= nf; j++) if (reach[k, j]) reach[i, j] = 1
      bad = 0
      for (i = 1; i <= nf; i++) {
        if (done[i]) continue
        comp = name[i]; cnt = 1; done[i] = 1; member[i] = i
        for (j = i + 1; j <= nf; j++)
          if (reach[i, j] && reach[j, i]) { comp = comp " " name[j]; cnt++; done[j] = 1; member[j] = i }
        if (cnt < 2) continue
        bad++
        printf "LOOP %d: %d files import each other: %s\n", bad, cnt, comp
        for (a = 1; a <= nf; a++) {
          if (member[a] != i) continue
          for (b = 1; b <= nf; b++)
            if (member[b] == i && ((name[a], name[b]) in edge))
              printf "  %s -> %s (%s%s)\n", name[a], name[b], edge[name[a], name[b]], (nedge_sym[name[a], name[b]] > 2 ? ", ..." : "")
        }
      }
      exit bad ? 1 : 0
    }'
}

if [ $self_test = 1 ]; then
  CC=${CC:-cc}
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/layers.XXXXXX") || exit 99
  trap 'rm -rf "$tmp"' EXIT
  # a -> b -> c -> a is a loop; d -> a is not part of it.
  printf 'int b1(void);\nint a1(void) { return b1(); }\n' >"$tmp/a.c"
  printf 'int c1(void);\nint b1(void) { return c1(); }\n' >"$tmp/b.c"
  printf 'int a1(void);\nint c1(void) { return a1() + 1; }\n' >"$tmp/c.c"
  printf 'int a1(void);\nstatic int s(void) { return 2; }\nint d1(void) { return a1() + s(); }\n' >"$tmp/d.c"
  # the same without the loop: c calls nothing of a.
  printf 'int c1(void) { return 1; }\n' >"$tmp/c2.c"
  for f in a b c d c2; do
    "$CC" -c "$tmp/$f.c" -o "$tmp/$f.o" || { echo "layers: $CC cannot compile the self-test" >&2; exit 99; }
  done
  mkdir "$tmp/noloop" && cp "$tmp/a.o" "$tmp/b.o" "$tmp/d.o" "$tmp/noloop/" && cp "$tmp/c2.o" "$tmp/noloop/c.o"
  out=$(loops "$tmp/a.o" "$tmp/b.o" "$tmp/c.o" "$tmp/d.o")
  rc=$?
  if [ $rc -ne 1 ] || [ "$(echo "$out" | head -1)" != "LOOP 1: 3 files import each other: a b c" ]; then
    echo "layers: self-test: the loop a -> b -> c -> a was not found as such:" >&2
    echo "$out" >&2
    exit 1
  fi
  out=$(loops "$tmp/noloop/a.o" "$tmp/noloop/b.o" "$tmp/noloop/c.o" "$tmp/noloop/d.o")
  rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "layers: self-test: a loop reported where there is none:" >&2
    echo "$out" >&2
    exit 1
  fi
  # Direction on the loop-free set (a -> b -> c, d -> a): d above a above b
  # and c passes; b above a is a call up; a beside b (same rank, another
  # layer) is a call across; a file left out of the map fails.

  printf 'layer 0 low\nlayer 1 mid\nlayer 2 top\nb.c low\nc.c low\na.c mid\nd.c top\n' >"$tmp/ok.map"
  printf 'layer 0 low\nlayer 1 mid\nlayer 2 top\nc.c low\na.c mid\nb.c top # wrong\nd.c top\n' >"$tmp/up.map"
  printf 'layer 0 low\nlayer 1 mid\nlayer 1 side\nlayer 2 top\nc.c low\na.c mid\nb.c side\nd.c top\n' >"$tmp/across.map"
  printf 'layer 0 low\nlayer 1 mid\nlayer 2 top\nb.c low\na.c mid\nd.c top\n' >"$tmp/missing.map"
  set -- "$tmp/noloop/a.o" "$tmp/noloop/b.o" "$tmp/noloop/c.o" "$tmp/noloop/d.o"
  out=$(direction "$tmp/ok.map" "$@")
  rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "layers: self-test: a call up reported where every call goes down:" >&2
    echo "$out" >&2
    exit 1
  fi
  out=$(direction "$tmp/up.map" "$@")
  rc=$?
  if [ $rc -ne 1 ] || [ "$out" != "a.c (1 mid) calls up into b.c (2 top): b1" ]; then
    echo "layers: self-test: the call up a -> b was not reported as such (rc $rc):" >&2
    echo "$out" >&2
    exit 1
  fi
  out=$(direction "$tmp/across.map" "$@")
  rc=$?
  if [ $rc -ne 1 ] || [ "$out" != "a.c (1 mid) calls across to b.c (1 side): b1" ]; then
    echo "layers: self-test: the call across a -> b was not reported as such (rc $rc):" >&2
    echo "$out" >&2
    exit 1
  fi
  out=$(direction "$tmp/missing.map" "$@")
  rc=$?
  if [ $rc -ne 1 ] || [ "$out" != "c.c: not in $tmp/missing.map (give it a layer)" ]; then
    echo "layers: self-test: a file missing from the map was not reported (rc $rc):" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "layers: self-test passed (a loop of 3 found, none in the same files without it; calls up, across and an unmapped file found)"
  exit 0
fi

failed=0

# ---- 0. the loop finder itself, on a toy case (when a compiler is here) ----
if command -v "${CC:-cc}" >/dev/null 2>&1; then
  sh "$0" --self-test || exit 1
fi

# ---- 1. file length ----
[ -d "$src" ] || { echo "layers: no directory $src" >&2; exit 99; }
long=$(find "$src" -name '*.[ch]' -type f -exec wc -l {} + | awk -v max="$max" '$2 != "total" && $1 > max { printf "  %s: %d lines\n", $2, $1 }' | sort)
if [ -n "$long" ]; then
  echo "layers: FAIL: library files over $max lines (split them by concern):"
  echo "$long" | sed "s|$src/|$shown/|"
  failed=1
else
  echo "layers: every file under $shown/ has at most $max lines"
fi

# ---- 2. import loops ----
if [ $# -eq 0 ]; then
  # the PIC objects, else the non-PIC ones, at the top and in the subfolders
  for d in .libs/ ''; do
    n=0
    for o in "$top_builddir"/libhealth/${d}libhealth_core_la-*.o "$top_builddir"/libhealth/*/${d}libhealth_core_la-*.o; do
      [ -f "$o" ] || continue
      if [ $n -eq 0 ]; then set -- "$o"; else set -- "$@" "$o"; fi
      n=$((n + 1))
    done
    [ $n -eq 0 ] || break
  done
  [ $# -gt 0 ] || { echo "layers: no objects of libhealth-core.la under $top_builddir/libhealth (build first)" >&2; exit 99; }
fi
for o in "$@"; do
  [ -f "$o" ] || { echo "layers: no object $o" >&2; exit 99; }
done
out=$(loops "$@")
if [ $? -ne 0 ]; then
  echo "layers: FAIL: import loops among the library's files (break each by moving the shared part down a layer):"
  echo "$out"
  failed=1
else
  echo "layers: no import loop among the $# objects"
fi

# ---- 3. the declared layers: every file in the map, every call going down ----
[ -f "$map" ] || { echo "layers: no layer map $map" >&2; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/layers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
if ! out=$(coverage "$map" "$src" "$shown/${map##*/}"); then
  echo "layers: FAIL: the layer map and the sources differ:"
  echo "$out" | sed 's/^/  /'
  failed=1
else
  echo "layers: every .c file under $shown/ has a layer in ${map##*/}"
fi
out=$(direction "$map" "$@")
rc=$?
if [ $rc -eq 99 ]; then
  echo "layers: the layer map is malformed:" >&2
  echo "$out" >&2
  exit 99
elif [ $rc -ne 0 ]; then
  echo "layers: FAIL: calls up (or across) the layers of ${map##*/} (move the shared part down, or pass the value down from the caller):"
  echo "$out" | sed 's/^/  /'
  failed=1
else
  echo "layers: every call among the $# objects goes down the layers of ${map##*/}"
fi
exit $failed
