#!/bin/sh
# The hostile-environment battery for logging (issue 23, items 1, 4, 5):
# examples/demo-service with stdout and stderr in a full pipe nobody reads,
# in a pipe read at 1 KiB/s, in a pipe whose reader exits, and with stdio
# closed.  The cases and their assertions: tests/hostile-log.py.  About
# 10 s.  Needs python3.
set -u
command -v python3 >/dev/null 2>&1 || { echo "hostile-log.sh: python3 not found, skipping" >&2; exit 77; }
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "hostile-log.sh: $DEMO not built" >&2; exit 1; }
exec python3 "$top_srcdir/tests/hostile-log.py" "$DEMO" "$@"
