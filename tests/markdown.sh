#!/bin/sh
# Every Markdown file of the tree renders as written: tables whole, links to
# files and anchors that exist (tests/markdown.py says what it checks).
set -eu
src=${srcdir:-.}
cd "$src"
files=$(find . -name '*.md' -not -path './build/*' -not -path './node_modules/*' -not -path './libhealth-*' | sort)
[ -n "$files" ] || { echo "markdown: no Markdown file found under $src"; exit 1; }
# The checker must catch what it claims to: a broken table and a dead anchor.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# T\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n| 3 |\n\n| 4 | 5 |\n\n[x](#nowhere)\n' >"$tmp/bad.md"
if out=$(python3 tests/markdown.py "$tmp/bad.md"); then
  echo "markdown: the checker passed a broken file"; exit 1
fi
[ "$(echo "$out" | wc -l)" -eq 3 ] || { echo "markdown: expected 3 defects, got:"; echo "$out"; exit 1; }
# shellcheck disable=SC2086
python3 tests/markdown.py $files
echo "markdown: $(echo "$files" | wc -l) files, every table and link whole"
