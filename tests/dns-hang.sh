#!/bin/sh
# A resolver that never answers must not grow threads without bound: five
# TCP checks every 100 ms against a name only DNS could resolve, in a
# private mount and network namespace whose resolv.conf points at a UDP
# socket of this test that takes the queries and never replies.  The demo
# service keeps fewer than 40 threads and its checks say "(dns)".  Needs
# unshare (util-linux) with the right to create namespaces, ip and python3;
# skips (77) without them.
set -u

: "${top_builddir:=.}"
DEMO="$top_builddir/examples/demo-service"
NAME=db.libhealth-dns-hang.example
MAX_THREADS=40
SECONDS_RUN=12

if [ "${1:-}" != inner ]; then
  [ -x "$DEMO" ] || { echo "dns-hang.sh: $DEMO not built" >&2; exit 1; }
  for c in unshare ip python3 curl; do
    command -v "$c" >/dev/null 2>&1 || { echo "dns-hang.sh: $c not found, skipping" >&2; exit 77; }
  done
  if ! unshare --mount --net true 2>/dev/null; then
    echo "dns-hang.sh: unshare --mount --net is not permitted here, skipping" >&2
    exit 77
  fi
  exec unshare --mount --net sh "$0" inner
fi

# ---- inside the namespaces ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-dns-hang-XXXXXX") || exit 1
PID= SINK=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$SINK" ] && kill "$SINK" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
  echo "dns-hang.sh: FAIL: $*" >&2
  [ -f "$TMP/service.log" ] && tail -n 20 "$TMP/service.log" >&2
  exit 1
}
skip() {
  echo "dns-hang.sh: $*, skipping" >&2
  exit 77
}

ip link set lo up 2>/dev/null || skip "cannot bring up lo in the new network namespace"
# The one nameserver: a socket that reads queries and never answers.
cat >"$TMP/sink.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
n = 0
open(sys.argv[1], "w").write("ready\n")
while True:
    s.recvfrom(4096)
    n += 1
    open(sys.argv[1], "w").write("queries %d\n" % n)
PY
python3 "$TMP/sink.py" "$TMP/sink.state" 2>"$TMP/sink.err" &
SINK=$!
i=0
while [ $i -lt 100 ] && [ ! -s "$TMP/sink.state" ]; do # up to ~5 s
  kill -0 "$SINK" 2>/dev/null || skip "the DNS sink could not start: $(cat "$TMP/sink.err")"
  i=$((i + 1))
  sleep 0.05
done
[ -s "$TMP/sink.state" ] || fail "the DNS sink never started"

printf 'nameserver 127.0.0.1\noptions timeout:30 attempts:3\n' >"$TMP/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$TMP/hosts"
printf 'hosts: files dns\n' >"$TMP/nsswitch.conf"
for f in resolv.conf hosts nsswitch.conf; do
  mount --bind "$TMP/$f" "/etc/$f" 2>/dev/null || skip "cannot bind-mount /etc/$f"
done

# The resolver really hangs: a lookup is still waiting after 2 s, and the
# sink saw the query.
if command -v timeout >/dev/null 2>&1 && command -v getent >/dev/null 2>&1; then
  timeout 2 getent hosts "$NAME" >/dev/null 2>&1
  rc=$?
  [ $rc -eq 124 ] || fail "the lookup did not hang (getent exit $rc)"
  grep -q '^queries' "$TMP/sink.state" || fail "the DNS sink got no query"
fi

# A fresh network namespace: every port is free.
for n in 1 2 3 4 5; do
  export HEALTH_CHECK_DB$n="tcp://$NAME:5432"
  export HEALTH_CHECK_DB${n}_INTERVAL_MS=100 HEALTH_CHECK_DB${n}_TIMEOUT_MS=80
  export HEALTH_CHECK_DB${n}_CRITICAL=0
done
PORT=18080 HEALTH_PORT=18081 HEALTH_ADDRESS=127.0.0.1 HEALTH_LOG_LEVEL=info FLUSH_FILE="$TMP/flush.log" \
  "$DEMO" >"$TMP/service.log" 2>&1 &
PID=$!
i=0
while [ $i -lt 200 ]; do # up to ~10 s
  kill -0 "$PID" 2>/dev/null || fail "the demo service exited"
  [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:18081/ready)" = 200 ] && break
  i=$((i + 1))
  sleep 0.05
done
[ $i -lt 200 ] || fail "the demo service never became ready"

# Sample the thread count for SECONDS_RUN seconds.
max=0
i=0
while [ $i -lt $((SECONDS_RUN * 4)) ]; do
  n=$(ls "/proc/$PID/task" 2>/dev/null | wc -l)
  [ "$n" -gt "$max" ] && max=$n
  i=$((i + 1))
  sleep 0.25
done
vm=$(awk '/^VmSize/ {print $2}' "/proc/$PID/status" 2>/dev/null)
curl -s -m 2 http://127.0.0.1:18081/ready >"$TMP/ready.json"
echo "dns-hang.sh: at most $max threads over ${SECONDS_RUN} s, VmSize ${vm:-?} kB"
[ "$max" -lt $MAX_THREADS ] || fail "$max threads (limit $MAX_THREADS) with a hung resolver"
grep -q '"timeout after [0-9]* ms (dns): previous lookup still running"' "$TMP/ready.json" ||
  fail "/ready does not say the previous lookup is still running (dns): $(cat "$TMP/ready.json")"
kill -TERM "$PID"
wait "$PID" 2>/dev/null
PID=
# sanitizer builds: a report in the service's output is a failure
grep -q 'Sanitizer' "$TMP/service.log" && fail "sanitizer report in the service's output"
exit 0
