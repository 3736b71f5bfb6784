#!/bin/sh
# Install the Debian packages libhealth needs to build, test and run its
# demo, skipping apt entirely when everything is already there.
# Usage: scripts/deps.sh [build|test|all]
set -e
what=${1:-all}
build_pkgs="build-essential autoconf automake libtool pkg-config libmicrohttpd-dev libpq-dev libhiredis-dev libssl-dev libyaml-dev check"
server_pkgs="postgresql redis-server openssl curl"
test_pkgs="libevent-dev debhelper dh-autoreconf dpkg-dev fakeroot lintian cmake meson ninja-build mandoc clang-format locales python3-yaml python3-botocore clang libclang-rt-14-dev valgrind haproxy wrk hyperfine python3 procps iproute2 prometheus"
case $what in
  build) pkgs="$build_pkgs" ;;
  demo) pkgs="$build_pkgs $server_pkgs" ;;
  test|all) pkgs="$build_pkgs $server_pkgs $test_pkgs" ;;
  *) echo "usage: $0 [build|demo|test|all]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages:$missing (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The postgresql package would start a cluster on 5432: tests start their own.
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts the packaged servers; tests and the demo use their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop redis-server postgresql prometheus >/dev/null 2>&1 || true
fi
service redis-server stop >/dev/null 2>&1 || true
service prometheus stop >/dev/null 2>&1 || true
service postgresql stop >/dev/null 2>&1 || true
exit 0
