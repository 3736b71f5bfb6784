#!/bin/sh
# health-probe against misbehaving and hanging servers, answers of every
# framing and names that hang or refuse: the second part of tests/probe.sh
# (PROBE_PART=servers), a test of its own so that make check runs both
# parts at once.
PROBE_PART=servers
export PROBE_PART
exec /bin/sh "${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}/tests/probe.sh"
