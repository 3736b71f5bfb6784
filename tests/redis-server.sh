#!/bin/sh
# Throwaway Redis servers (TLS + plaintext) for the Redis checker tests.
#
#   redis-server.sh certs DIR            CA, server/client certificates in DIR
#   redis-server.sh start DIR [ARGS...]  start an instance; prints "TLSPORT PLAINPORT"
#   redis-server.sh stop DIR             stop it (waits until it is gone)
#   redis-server.sh restart DIR          stop + start on the same ports and ARGS
#   redis-server.sh cli DIR ARGS...      redis-cli on the plaintext port as "default"
#   redis-server.sh newca DIR NAME       a second CA NAME.crt in DIR and a server
#                                        certificate from it, server-NAME.crt/.key
#                                        (for rotation tests: CONFIG SET tls-cert-file)
#
# Each instance lives in its own DIR (certificates are made there if missing).
# Exit status 77 means "skip": redis-server, redis-cli or openssl is missing,
# or redis-server was built without TLS.
#
# Credentials (the Check suite uses the same constants):
#   user "default"  password REDIS_TEST_PASSWORD (below)
#   user "checker"  password REDIS_TEST_CHECKER_PASSWORD, allowed only what a
#                   health check needs (AUTH, PING, ROLE, SELECT, CLIENT SETNAME)
set -u

REDIS_TEST_PASSWORD='dflt-Xq7-secret-pw'
REDIS_TEST_CHECKER_PASSWORD='chk:p@ss/w%rd-Zk9'

die() { echo "redis-server.sh: $*" >&2; exit 1; }
skip() { echo "redis-server.sh: skip: $*" >&2; exit 77; }

have() { command -v "$1" >/dev/null 2>&1; }

need_tools() {
  have redis-server || skip "redis-server not found"
  have redis-cli || skip "redis-cli not found"
  have openssl || skip "openssl not found"
  # redis-cli and redis-server come from the same build: a redis-cli that
  # rejects --tls means a server without TLS too.
  if redis-cli --tls -h 127.0.0.1 -p 1 PING 2>&1 | grep -qi 'unrecognized option'; then
    skip "redis was built without TLS"
  fi
}

# A pseudo-random port in 20000-32767 (POSIX sh has no $RANDOM): below
# Linux's ephemeral range (32768-60999), so no outgoing connection of a
# concurrent test can be holding it as its source port.
random_port() {
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $((20000 + n % 12768))
}

# Single-quote one argument for a later eval.
quote() { printf "'%s' " "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

ossl() { openssl "$@" >/dev/null 2>&1 || die "openssl $1 failed"; }

# cert DIR NAME CA SUBJECT EXTFILE-CONTENT
make_cert() {
  d=$1 name=$2 ca=$3 subj=$4 ext=$5
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$name.key"
  ossl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr"
  printf '%s\n' "$ext" > "$d/$name.ext"
  ossl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
    -CAcreateserial -days 2 -sha256 -extfile "$d/$name.ext" -out "$d/$name.crt"
  rm -f "$d/$name.csr" "$d/$name.ext"
}

make_ca() {
  d=$1 name=$2
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$name.key"
  ossl req -x509 -new -key "$d/$name.key" -subj "/CN=libhealth test $name" \
    -days 2 -sha256 -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -out "$d/$name.crt"
}

cmd_certs() {
  d=$1
  have openssl || skip "openssl not found"
  mkdir -p "$d" || die "cannot create $d"
  [ -f "$d/client.crt" ] && return 0
  make_ca "$d" ca
  make_ca "$d" wrongca
  srv='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth'
  # server: the name the tests connect to; other: a valid cert for another name
  make_cert "$d" server ca "/CN=localhost" "$srv
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
  make_cert "$d" other ca "/CN=other.example" "$srv
subjectAltName=DNS:other.example"
  make_cert "$d" client ca "/CN=libhealth-test-client" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
  chmod 600 "$d"/*.key
}

cmd_newca() {
  d=$1 name=$2
  have openssl || skip "openssl not found"
  [ -f "$d/ca.crt" ] || die "$d has no certificates"
  make_ca "$d" "$name"
  make_cert "$d" "server-$name" "$name" "/CN=localhost" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
  chmod 600 "$d"/*.key
}

plain_port() { cut -d' ' -f2 "$1/ports"; }

cli() {
  d=$1; shift
  redis-cli -h 127.0.0.1 -p "$(plain_port "$d")" --user default \
    --pass "$REDIS_TEST_PASSWORD" --no-auth-warning "$@"
}

# Fractional sleep is not POSIX; fall back to a whole second.
nap() { sleep 0.05 2>/dev/null || sleep 1; }

alive() { [ -f "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null; }

# launch DIR TLSPORT PLAINPORT: 0 when this instance answers on both
# ports, 1 when it did not come up (a port was taken: try others), 2 when
# the plaintext port works and TLS does not (no point retrying).
launch() {
  d=$1 tp=$2 pp=$3 plain_ok=0
  rm -f "$d/redis.pid"
  eval "set -- $(cat "$d/args")"
  redis-server --bind 127.0.0.1 --port "$pp" --tls-port "$tp" \
    --tls-cert-file "$d/server.crt" --tls-key-file "$d/server.key" \
    --tls-ca-cert-file "$d/ca.crt" --tls-auth-clients no \
    --daemonize yes --pidfile "$d/redis.pid" --dir "$d" \
    --logfile "$d/redis.log" --save '' --appendonly no \
    --user default on ">$REDIS_TEST_PASSWORD" '~*' '&*' '+@all' \
    --user checker on ">$REDIS_TEST_CHECKER_PASSWORD" \
      '+auth' '+ping' '+role' '+select' '+client|setname' '+hello' \
    "$@" </dev/null >>"$d/redis.out" 2>&1
  printf '%s %s\n' "$tp" "$pp" > "$d/ports"
  i=0
  while [ $i -lt 100 ]; do
    if [ -f "$d/redis.pid" ]; then
      # The pid check guards against another server already on that port.
      got=$(cli "$d" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
      if [ -n "$got" ] && [ "$got" = "$(cat "$d/redis.pid")" ]; then
        plain_ok=1
        # and the TLS port must answer too (with a client certificate, in
        # case this instance requires one)
        if redis-cli -h 127.0.0.1 -p "$tp" --tls --cacert "$d/ca.crt" \
            --cert "$d/client.crt" --key "$d/client.key" \
            --user default --pass "$REDIS_TEST_PASSWORD" --no-auth-warning \
            PING 2>/dev/null | grep -q PONG; then
          return 0
        fi
      fi
    fi
    if [ $i -gt 10 ] && ! alive "$d"; then break; fi
    nap
    i=$((i + 1))
  done
  cmd_stop "$d" >/dev/null 2>&1
  if cat "$d/redis.log" "$d/redis.out" 2>/dev/null |
      grep -qi 'tls.*not supported\|not built with tls\|tls support'; then
    skip "redis-server built without TLS"
  fi
  [ $plain_ok = 1 ] && return 2
  return 1
}

cmd_start() {
  d=$1; shift
  need_tools
  cmd_certs "$d"
  : > "$d/args"
  for a in "$@"; do quote "$a" >> "$d/args"; done
  tries=0
  while [ $tries -lt 8 ]; do
    tp=$(random_port)
    pp=$(random_port)
    if [ "$tp" != "$pp" ]; then
      launch "$d" "$tp" "$pp"
      case $? in
        0) echo "$tp $pp"; return 0 ;;
        2) die "the TLS port does not answer (see $d/redis.log)" ;;
      esac
    fi
    tries=$((tries + 1))
  done
  tail -n 20 "$d/redis.log" >&2 2>/dev/null
  die "could not start redis-server (see $d/redis.log)"
}

cmd_stop() {
  d=$1
  [ -f "$d/redis.pid" ] || return 0
  pid=$(cat "$d/redis.pid")
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then kill -9 "$pid" 2>/dev/null; fi
    if [ $i -gt 150 ]; then die "redis-server $pid does not stop"; fi
    nap
  done
  rm -f "$d/redis.pid"
}

cmd_restart() {
  d=$1
  [ -f "$d/ports" ] || die "$d has no running instance"
  need_tools
  cmd_stop "$d"
  read -r tp pp < "$d/ports"
  launch "$d" "$tp" "$pp" || die "could not restart redis-server on ports $tp $pp"
  echo "$tp $pp"
}

[ $# -ge 2 ] || die "usage: $0 certs|start|stop|restart|cli|newca DIR [ARGS...]"
cmd=$1 dir=$2
shift 2
case $cmd in
  certs) cmd_certs "$dir" ;;
  start) cmd_start "$dir" "$@" ;;
  stop) cmd_stop "$dir" ;;
  restart) cmd_restart "$dir" ;;
  cli) need_tools; cli "$dir" "$@" ;;
  newca) [ $# -ge 1 ] || die "usage: $0 newca DIR NAME"; cmd_newca "$dir" "$1" ;;
  *) die "unknown command $cmd" ;;
esac
