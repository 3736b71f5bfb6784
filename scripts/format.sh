#!/bin/sh
# The project's C formatting, by clang-format and the .clang-format at the
# top of the tree.
#
# Usage: scripts/format.sh --check    list what is not formatted (exit 1)
#        scripts/format.sh --fix      reformat those files in place
#        scripts/format.sh --list     print the files covered
# Covered: every C source and header the project owns: *.c and *.h under
# libhealth/ include/ tests/ tools/ examples/ bench/ fuzz/ and at the top,
# except generated ones (config.h), build directories (build*/, .libs/,
# .deps/, a distcheck's _build/ or libhealth-*/) and third-party code
# (third_party/, vendor/).
# Environment: CLANG_FORMAT  the program (default clang-format; the CI runs
#              Debian 12's, 14.x: other versions may format differently).
# Exit status: 0 formatted (or fixed), 1 not formatted, 2 usage,
#              77 clang-format is not installed.
set -u
cd "$(dirname "$0")/.." || exit 2
mode=${1:-}
case $mode in
  --check|--fix|--list) ;;
  *) echo "usage: $0 --check | --fix | --list" >&2; exit 2 ;;
esac

files() {
  for d in libhealth include tests tools examples bench fuzz; do
    [ -d "$d" ] || continue
    find "$d" \( -name 'build*' -o -name _build -o -name .libs -o -name .deps \
      -o -name third_party -o -name vendor -o -name 'libhealth-*' \) -prune \
      -o -type f \( -name '*.c' -o -name '*.h' \) -print
  done
  for f in *.c *.h; do
    case $f in config.h|'*.c'|'*.h') continue ;; esac
    [ -f "$f" ] && echo "$f"
  done
}

if [ "$mode" = --list ]; then
  files | sort
  exit 0
fi

cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "format.sh: $cf not found: install clang-format (Debian 12: apt-get install clang-format)" >&2
  exit 77
fi
[ -f .clang-format ] || { echo "format.sh: no .clang-format at the top of the tree" >&2; exit 2; }
jobs=$(nproc 2>/dev/null || echo 2)
list=$(files | sort)
[ -n "$list" ] || { echo "format.sh: no C files found" >&2; exit 2; }

if [ "$mode" = --fix ]; then
  # shellcheck disable=SC2086
  printf '%s\n' $list | xargs -P "$jobs" -n 8 "$cf" -i --style=file || exit 1
  echo "format.sh: reformatted $(printf '%s\n' $list | wc -l) files ($("$cf" --version))"
  exit 0
fi

# --check: one diff per file that clang-format would change.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/format.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
export cf tmp
# shellcheck disable=SC2016,SC2086
printf '%s\n' $list | xargs -P "$jobs" -I{} sh -c '
  out="$tmp/$(echo "$1" | tr / _).diff"
  "$cf" --style=file "$1" >"$out.new" || { echo "clang-format failed on $1" >"$out"; exit 0; }
  diff -u --label "$1" --label "$1 (formatted)" "$1" "$out.new" >"$out" || true
  rm -f "$out.new"
  [ -s "$out" ] || rm -f "$out"' sh {}
bad=$(cd "$tmp" && ls -- *.diff 2>/dev/null | wc -l)
if [ "$bad" -eq 0 ]; then
  echo "format.sh: $(printf '%s\n' $list | wc -l) files formatted ($("$cf" --version))"
  exit 0
fi
changed=$(cat "$tmp"/*.diff | grep -c '^-[^-]')
echo "format.sh: $bad files not formatted ($changed lines would change; $("$cf" --version)):"
for d in "$tmp"/*.diff; do
  sed -n '1s/^--- /  /p' "$d"
done
echo "format.sh: the first differences (fix with: scripts/format.sh --fix):"
n=0
for d in "$tmp"/*.diff; do
  [ $n -lt 6 ] || break
  head -n 16 "$d"
  n=$((n + 1))
done
exit 1
