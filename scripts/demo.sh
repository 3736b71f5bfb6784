#!/bin/sh
# Build and run the demo service with a throwaway local PostgreSQL and a
# Redis over TLS as its dependencies (the README's first command).
#   application  http://127.0.0.1:${PORT:-8080}/   (GET /, POST /work, GET /slow?ms=N)
#   health       http://127.0.0.1:${HEALTH_PORT:-8081}/health and /ready
# Ctrl-C (or SIGTERM) runs the graceful shutdown; the servers are removed after.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/deps.sh demo
[ -x configure ] || ./bootstrap >/dev/null
mkdir -p build/demo
if [ ! -f build/demo/Makefile ]; then
  (cd build/demo && "$top/configure" -q)
fi
make -s -C build/demo -j"$(nproc 2>/dev/null || echo 2)" examples/demo-service health-probe >/dev/null

state=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-demo.XXXXXX")
chmod 755 "$state"
pid=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  sh tests/pg-server.sh stop "$state/pg" >/dev/null 2>&1 || true
  sh tests/redis-server.sh stop "$state/redis" >/dev/null 2>&1 || true
  echo "demo: flushed work is in $state/flush.log" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_port=$(sh tests/pg-server.sh start "$state/pg")
set -- $(sh tests/redis-server.sh start "$state/redis")
redis_tls_port=$1
pg_password=$(sed -n "s/^PG_TEST_PASSWORD='\(.*\)'$/\1/p" tests/pg-server.sh)
redis_password=$(sed -n "s/^REDIS_TEST_PASSWORD='\(.*\)'$/\1/p" tests/redis-server.sh)

export DATABASE_URL="postgresql://healthcheck:${pg_password}@127.0.0.1:${pg_port}/postgres?application_name=demo-service"
export REDIS_URL="rediss://:${redis_password}@localhost:${redis_tls_port}/0"
export REDIS_CA_FILE="$state/redis/ca.crt"
export FLUSH_FILE="$state/flush.log"
export PORT="${PORT:-8080}" HEALTH_PORT="${HEALTH_PORT:-8081}"

cat >&2 <<MSG
demo: PostgreSQL on 127.0.0.1:$pg_port, Redis (TLS) on localhost:$redis_tls_port
demo: try   curl -s localhost:$HEALTH_PORT/ready
            curl -s -d hello localhost:$PORT/work
            build/demo/health-probe http://127.0.0.1:$HEALTH_PORT/health && echo healthy
demo: Ctrl-C drains for ${HEALTH_DRAIN_MS:-15000} ms, flushes the work to $FLUSH_FILE and exits
MSG
build/demo/examples/demo-service &
pid=$!
# Ctrl-C reaches the service itself (same process group): only wait for its
# drain.  A SIGTERM to this script is passed on.
trap ':' INT
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid" && rc=0 || rc=$?
done
echo "demo: demo-service exited with code ${rc:-0}" >&2
