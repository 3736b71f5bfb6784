#!/bin/sh
# Throwaway PostgreSQL cluster for the PostgreSQL checker tests.
#
#   pg-server.sh start DIR         initdb a cluster in DIR, start it on a free
#                                  port on 127.0.0.1; prints the port
#   pg-server.sh stop DIR          stop it (fast) and remove DIR
#   pg-server.sh halt DIR          stop it (fast), keep DIR and its data
#   pg-server.sh resume DIR        start a halted cluster on the same port
#                                  (no-op if it runs); prints the port
#   pg-server.sh restart DIR       halt + resume; prints the port
#   pg-server.sh sql DIR SQL       run SQL as the superuser over the unix
#                                  socket; prints rows unaligned, tuples only
#   pg-server.sh set DIR NAME VAL  ALTER SYSTEM SET NAME = 'VAL' and reload
#   pg-server.sh standby DIR PRIMARY_DIR
#                                  a streaming hot standby of the cluster in
#                                  PRIMARY_DIR (pg_is_in_recovery() is true);
#                                  prints its port; "stop DIR" removes it
#
# The superuser "postgres" is trusted over the unix socket in DIR (TCP is
# not trusted at all); TCP on 127.0.0.1 requires SCRAM passwords.
# Credentials (the Check suite uses the same constants):
#   user "healthcheck"  password PG_TEST_PASSWORD (below)
#
# PostgreSQL refuses to run as root: as root, DIR is handed to the
# "postgres" user and every server command runs as that user.
# Exit status 77 means "skip": the PostgreSQL server binaries are missing.
set -u

PG_TEST_USER='healthcheck'
PG_TEST_PASSWORD='hc-Tq4-secret-pw'

die() { echo "pg-server.sh: $*" >&2; exit 1; }
skip() { echo "pg-server.sh: skip: $*" >&2; exit 77; }

# Server binaries: $PG_BINDIR, the newest Debian-style install, pg_config.
find_bindir() {
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then
    echo "$PG_BINDIR"
    return 0
  fi
  best=
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best=$d
  done
  if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null)
    [ -n "$d" ] && [ -x "$d/initdb" ] && best=$d
  fi
  if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
    best=$(dirname "$(command -v initdb)")
  fi
  [ -n "$best" ] || return 1
  echo "$best"
}

BIN=$(find_bindir) || BIN=

# runuser lives in sbin, which a non-login root PATH may lack.
RUNUSER=$(command -v runuser 2>/dev/null)
for r in /usr/sbin/runuser /sbin/runuser; do
  [ -z "$RUNUSER" ] && [ -x "$r" ] && RUNUSER=$r
done

need_tools() {
  [ -n "$BIN" ] || skip "PostgreSQL server binaries (initdb, pg_ctl) not found"
  [ -x "$BIN/psql" ] || command -v psql >/dev/null 2>&1 || skip "psql not found"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || skip "running as root and there is no postgres user"
    [ -n "$RUNUSER" ] || skip "running as root without runuser"
  fi
}

# Run a server command as the cluster's owner.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    "$RUNUSER" -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_bin() { if [ -x "$BIN/psql" ]; then echo "$BIN/psql"; else command -v psql; fi; }

# A pseudo-random port in 20000-32767 (POSIX sh has no $RANDOM): below
# Linux's ephemeral range (32768-60999), so no outgoing connection of a
# concurrent test can be holding it as its source port.
random_port() {
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $((20000 + n % 12768))
}

port_of() { [ -f "$1/port" ] || die "$1 has no cluster"; cat "$1/port"; }

running() { as_pg "$BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

sql() {
  d=$1; shift
  as_pg "$(psql_bin)" -X -q -A -t -v ON_ERROR_STOP=1 -h "$d" -p "$(port_of "$d")" \
    -U postgres -d postgres -c "$1"
}

# launch DIR PORT: 0 once the cluster accepts connections on PORT.
launch() {
  d=$1 p=$2
  echo "$p" > "$d/port"
  # The port lives in the command line, not postgresql.conf, so a retry on
  # another port needs no edit.  -l keeps the server's output away from our
  # stdout (a caller reading it through a pipe would never see EOF).
  as_pg "$BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 30 \
    -o "-p $p" start >&2
}

cmd_start() {
  d=$1
  need_tools
  mkdir -p "$d" || die "cannot create $d"
  [ -d "$d/data" ] && die "$d already holds a cluster"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$d" || die "cannot chown $d to postgres"
    as_pg test -w "$d" || die "$d is not reachable by the postgres user"
  fi
  as_pg "$BIN/initdb" -D "$d/data" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=reject --no-sync >"$d/initdb.log" 2>&1 \
    || { cat "$d/initdb.log" >&2; die "initdb failed"; }
  cat > "$d/data/pg_hba.conf" <<EOF
local all postgres trust
local replication postgres trust
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
EOF
  cat >> "$d/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$d'
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
max_connections = 60
log_connections = on
log_disconnections = on
EOF
  tries=0
  while :; do
    p=$(random_port)
    launch "$d" "$p" && break
    tries=$((tries + 1))
    if [ $tries -ge 6 ]; then
      tail -n 20 "$d/server.log" >&2 2>/dev/null
      die "could not start PostgreSQL (see $d/server.log)"
    fi
    echo "pg-server.sh: port $p failed, trying another" >&2
  done
  # The role name and password are fixed literals: no quoting to worry about.
  sql "$d" "CREATE ROLE $PG_TEST_USER LOGIN PASSWORD '$PG_TEST_PASSWORD'" >/dev/null \
    || die "cannot create role $PG_TEST_USER"
  echo "$p"
}

cmd_standby() {
  d=$1 primary=$2
  need_tools
  pport=$(port_of "$primary")
  mkdir -p "$d" || die "cannot create $d"
  [ -d "$d/data" ] && die "$d already holds a cluster"
  [ "$(id -u)" = 0 ] && { chown postgres: "$d" || die "cannot chown $d to postgres"; }
  # -R writes standby.signal and primary_conninfo (over the unix socket).
  as_pg "$BIN/pg_basebackup" -h "$primary" -p "$pport" -U postgres -D "$d/data" \
    -R -X stream -c fast --no-sync >"$d/basebackup.log" 2>&1 \
    || { cat "$d/basebackup.log" >&2; die "pg_basebackup failed"; }
  echo "unix_socket_directories = '$d'" >> "$d/data/postgresql.conf"
  tries=0
  while ! launch "$d" "$(random_port)"; do
    tries=$((tries + 1))
    [ $tries -ge 6 ] && die "could not start the standby (see $d/server.log)"
  done
  cat "$d/port"
}

cmd_halt() {
  d=$1
  [ -d "$d/data" ] || return 0
  running "$d" || return 0
  as_pg "$BIN/pg_ctl" -D "$d/data" -m fast -w -t 30 stop >&2 || die "pg_ctl stop failed"
}

cmd_resume() {
  d=$1
  need_tools
  p=$(port_of "$d")
  if ! running "$d"; then
    launch "$d" "$p" || die "could not restart PostgreSQL on port $p (see $d/server.log)"
  fi
  echo "$p"
}

cmd_stop() {
  d=$1
  [ -d "$d" ] || return 0
  [ -n "$BIN" ] && cmd_halt "$d"
  rm -rf "$d"
}

[ $# -ge 2 ] || die "usage: $0 start|stop|halt|resume|restart|sql|set|standby DIR [ARGS...]"
cmd=$1 dir=$2
shift 2
case $cmd in
  start) cmd_start "$dir" ;;
  stop) cmd_stop "$dir" ;;
  halt) need_tools; cmd_halt "$dir" ;;
  resume) cmd_resume "$dir" ;;
  restart) need_tools; cmd_halt "$dir"; cmd_resume "$dir" ;;
  sql)
    [ $# -eq 1 ] || die "usage: $0 sql DIR SQL"
    need_tools; sql "$dir" "$1" ;;
  set)
    [ $# -eq 2 ] || die "usage: $0 set DIR NAME VALUE"
    need_tools
    v=$(printf '%s' "$2" | sed "s/'/''/g")
    sql "$dir" "ALTER SYSTEM SET $1 = '$v'" >/dev/null || die "ALTER SYSTEM failed"
    sql "$dir" "SELECT pg_reload_conf()" >/dev/null || die "reload failed" ;;
  standby)
    [ $# -eq 1 ] || die "usage: $0 standby DIR PRIMARY_DIR"
    cmd_standby "$dir" "$1" ;;
  *) die "unknown command $cmd" ;;
esac
