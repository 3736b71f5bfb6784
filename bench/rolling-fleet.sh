#!/bin/sh
# A rolling deploy of a fleet behind HAProxy under load: 10 instances of the
# demo service replaced 2 at a time, 0 failed requests and 0 lost
# acknowledged bodies required (tests/rolling-deploy.sh, scenario
# "rolling").  A minute or more; kept out of `make check` (bench/README.md).
#
#   bench/rolling-fleet.sh BUILD_DIR     (a configured tree after `make check`
#                                         or `make examples/demo-service
#                                         health-probe tests/loadclient`)
# ROLLING_INSTANCES [10], ROLLING_BATCH [2], ROLLING_KEEP=1 keeps the logs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-}}
[ -n "$BUILD_DIR" ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
(cd "$BUILD_DIR" && make -s examples/demo-service health-probe tests/loadclient >/dev/null)
top_srcdir=$repo top_builddir=$BUILD_DIR ROLLING_SCENARIOS=rolling \
  HEALTH_TEST_REQUIRE_SERVERS=1 exec sh "$repo/tests/rolling-deploy.sh"
