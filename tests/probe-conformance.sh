#!/bin/sh
# health-probe's requests, byte for byte, against curl's for the same URLs
# and headers: a loopback recording server keeps the exact bytes of each
# request, and both are compared after normalising only what must differ:
#
#   User-Agent   its value (each client names itself; "curl/7.88.1" vs
#                "health-probe/VERSION"), unless the case sets its own with -H;
#   Connection   the probe adds "Connection: close" (it makes one request per
#                process and says so, so the server closes at once; curl keeps
#                connections for reuse and does not), unless the case sets
#                its own Connection header, which both then send as given.
#
# Everything else must be identical: the request line (origin-form target,
# query kept, fragment dropped, dot segments removed), Host (port when not
# 80, brackets for IPv6, the case as typed), Accept, the headers given with
# -H, their order, the line ends.  A few URLs where the probe deliberately
# differs from curl are checked against the exact bytes the probe must send.
#
# Environment: top_builddir (set by `make check`).  Needs python3 and curl
# (skips without them, unless HEALTH_TEST_REQUIRE_SERVERS=1); the port-80
# cases need root (skipped otherwise).
set -u

builddir=${top_builddir:-.}
require=${HEALTH_TEST_REQUIRE_SERVERS:-0}
probe=$builddir/health-probe

say() { echo "probe-conformance: $*"; }
skip() {
  if [ "$require" = 1 ]; then say "FAIL: $* (HEALTH_TEST_REQUIRE_SERVERS=1)"; exit 1; fi
  say "SKIP: $*"
  exit 77
}
have() { command -v "$1" >/dev/null 2>&1; }
[ -x "$probe" ] || { say "FAIL: $probe not built"; exit 1; }
have python3 || skip "python3 not found (runs the recording server)"
have curl || skip "curl not found (the reference client)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-conformance.XXXXXX") || exit 1
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
failures=0
checks=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

# rec.py ADDRESS PORT DIR: writes each request's bytes to DIR/req (before
# answering, so the file is complete when the client returns), answers 200.
cat >"$tmp/rec.py" <<'EOF'
import os, socket, sys, threading
addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port))
ls.listen(16)
with open(out + "/port.tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(out + "/port.tmp", out + "/port")
threading.Timer(120, lambda: os._exit(0)).start()
while True:
    c, _ = ls.accept()
    c.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        with open(out + "/req.tmp", "wb") as f:
            f.write(data)
        os.rename(out + "/req.tmp", out + "/req")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass
    c.close()
EOF

# start_rec NAME ADDRESS [PORT]: a recording server; its port in rec_port
# (empty if it could not start).
start_rec() {
  mkdir -p "$tmp/$1"
  python3 "$tmp/rec.py" "$2" "${3:-0}" "$tmp/$1" 2>"$tmp/$1/log" &
  pids="$pids $!"
  i=0
  while [ ! -s "$tmp/$1/port" ] && [ $i -lt 100 ] && kill -0 $! 2>/dev/null; do
    sleep 0.05
    i=$((i + 1))
  done
  rec_port=$(cat "$tmp/$1/port" 2>/dev/null)
}

start_rec v4 127.0.0.1
p=$rec_port
[ -n "$p" ] || { say "FAIL: the recording server did not start: $(cat "$tmp/v4/log")"; exit 1; }
v6=""
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  start_rec v6 ::1
  v6=$rec_port
fi
p80=""
if [ "$(id -u)" = 0 ]; then
  start_rec p80 127.0.0.80 80
  p80=$rec_port
fi

# record DIR OUT CLIENT ARGS...: run a client, keep what the server received
record() {
  d=$1 out=$2
  shift 2
  rm -f "$tmp/$d/req"
  "$@" >"$out.stdout" 2>"$out.stderr"
  crc=$?
  if [ -f "$tmp/$d/req" ]; then mv "$tmp/$d/req" "$out"; else : >"$out"; fi
}

# norm FILE HEADERS...: the normalised request (see the top of this file)
norm() {
  f=$1
  shift
  ua=1 conn=1
  for h in "$@"; do
    case $(printf '%s' "$h" | tr 'A-Z' 'a-z') in
      user-agent[:\;]*) ua=0 ;;
      connection[:\;]*) conn=0 ;;
    esac
  done
  awk -v ua="$ua" -v conn="$conn" -v probe="$(basename "$f" | grep -c probe)" '
    ua && /^User-Agent: [^\r]*\r$/ { print "User-Agent: (client)\r"; next }
    probe && conn && $0 == "Connection: close\r" { next }
    { print }' "$f"
}

# same DESCRIPTION URL [HEADER...]: curl and the probe send the same bytes
n=0
same() {
  what=$1 url=$2
  shift 2
  n=$((n + 1))
  dir=v4
  case $url in *"[::1]"*) dir=v6 ;; *127.0.0.80*) dir=p80 ;; esac
  # curl and the probe get the same -H arguments
  record "$dir" "$tmp/$n.curl" sh -c 'u=$1; shift; for h; do set -- "$@" -H "$h"; shift; done; exec curl -g -sS -o /dev/null "$@" "$u"' sh "$url" "$@"
  curl_rc=$crc
  record "$dir" "$tmp/$n.probe" sh -c 'p=$1 u=$2; shift 2; for h; do set -- "$@" -H "$h"; shift; done; exec "$p" --timeout 5000 "$@" "$u"' sh "$probe" "$url" "$@"
  probe_rc=$crc
  checks=$((checks + 1))
  norm "$tmp/$n.curl" "$@" >"$tmp/$n.curl.n"
  norm "$tmp/$n.probe" "$@" >"$tmp/$n.probe.n"
  first=$(head -n 1 "$tmp/$n.probe" | tr -d '\r')
  if [ "$curl_rc" != 0 ] || [ ! -s "$tmp/$n.curl" ]; then
    fail "$what ($url): curl itself failed (exit $curl_rc): $(cat "$tmp/$n.curl.stderr")"
  elif [ "$probe_rc" != 0 ]; then
    fail "$what ($url): the probe failed (exit $probe_rc): $(cat "$tmp/$n.probe.stderr")"
  elif cmp -s "$tmp/$n.curl.n" "$tmp/$n.probe.n"; then
    say "ok   $what: $url -> $first, $(grep -a '^Host:' "$tmp/$n.probe" | tr -d '\r')"
  else
    fail "$what ($url): the requests differ (curl <, probe >):"
    diff "$tmp/$n.curl.n" "$tmp/$n.probe.n" | cat -A | sed 's/^/    /'
  fi
}

# differs DESCRIPTION URL EXPECTED_REQUEST_LINE WHY: the probe deliberately
# differs from curl; its request line must be exactly this.
differs() {
  what=$1 url=$2 want=$3 why=$4
  n=$((n + 1))
  record v4 "$tmp/$n.curl" curl -g -sS -o /dev/null "$url"
  record v4 "$tmp/$n.probe" "$probe" "$url"
  checks=$((checks + 1))
  got=$(head -n 1 "$tmp/$n.probe" | tr -d '\r')
  if [ "$crc" = 0 ] && [ "$got" = "$want" ]; then
    say "ok   $what: $url -> $got (curl: $(head -n 1 "$tmp/$n.curl" | tr -d '\r'); $why)"
  else
    fail "$what ($url): exit $crc, sent '$got', want '$want': $(cat "$tmp/$n.probe.stderr")"
  fi
}

b=http://127.0.0.1:$p
same "path" "$b/health"
same "no path" "$b"
same "root" "$b/"
same "query, no path" "$b?x=1"
same "query kept" "$b/health?x=1&y=2"
same "empty query" "$b/health?"
same "fragment dropped" "$b/health#frag"
same "query kept, fragment dropped" "$b/health?x=1#frag"
same "fragment only" "$b#f"
same "'?' inside the fragment" "$b/a#b?c"
same "scheme upper case" "HTTP://127.0.0.1:$p/health"
same "scheme mixed case" "HtTp://127.0.0.1:$p/x"
same "leading-zero port" "http://127.0.0.1:00$p/x"
same "dot segments" "$b/a/../b/./c"
same "dot segments above the root" "$b/a/b/../../../../c"
same "trailing .." "$b/a/.."
same "encoded dots are not segments" "$b/a/%2e%2e/b"
same "dots in the query are kept" "$b/a?b=/../c"
same "percent-encoding kept as typed" "$b/%7e%20x"
same "double slashes kept" "$b//x//"
same "parameters" "$b/a;p?q"
same "characters curl sends as they are" "$b/a\"<>{}|^\`"
same "IPv4 shorthand" "http://127.1:$p/x"
same "host name" "http://localhost:$p/health"
same "host name, upper case" "http://LOCALHOST:$p/A"
same "header" "$b/health" "X-Token: s3cret"
same "Host replaced" "$b/health" "Host: svc.internal"
same "Host replaced, other case" "$b/health" "HOST: bar:99"
same "User-Agent replaced" "$b/health" "User-Agent: kube-probe/1.29"
same "Accept replaced" "$b/health" "Accept: application/health+json"
same "Accept removed" "$b/health" "Accept:"
same "a header twice, in order" "$b/health" "X-A: 1" "X-A: 2" "x-b: 3"
same "empty header (Name;)" "$b/health" "X-Empty;"
same "value kept as given" "$b/health" "X-Spaced:   a  b  "
same "own Connection header" "$b/health" "Connection: close"
same "own Connection: keep-alive" "$b/health" "Connection: keep-alive"
same "defaults replaced, given order kept" "$b/health" "X-A: 1" "Accept: a" "Host: foo" "User-Agent: u"
same "Accept twice" "$b/health" "Accept: 1" "Accept: 2"
same "empty Accept (Accept;)" "$b/health" "X-A: 1" "Accept;"
if [ -n "$v6" ]; then
  same "IPv6 literal" "http://[::1]:$v6/health"
  same "IPv6 literal, query" "http://[::1]:$v6?x=1#y"
else
  say "note: no IPv6 loopback: the [::1] cases are skipped"
fi
if [ -n "$p80" ]; then
  same "default port" "http://127.0.0.80/health"
  same "empty port" "http://127.0.0.80:/x"
  same "explicit port 80" "http://127.0.0.80:80/x"
  same "port 80 with zeros" "http://127.0.0.80:0080/x?y"
else
  say "note: not root, or 127.0.0.80:80 taken: the default-port cases are skipped"
fi

differs "non-ASCII path" "$b/é" "GET /%C3%A9 HTTP/1.1" \
  "RFC 3986 §2.1 prefers upper-case hex"
differs "non-ASCII query" "$b/a?r=é" "GET /a?r=%C3%A9 HTTP/1.1" \
  "raw 8-bit bytes are not allowed in a request-target (RFC 9112 §3.2)"

# User information: curl sends it as Basic credentials; the probe refuses
# the URL (with its own message, and without the password) and sends nothing.
checks=$((checks + 1))
rm -f "$tmp/v4/req"
"$probe" "http://probe:hunter2@127.0.0.1:$p/health" 2>"$tmp/ui.err"
rc=$?
if [ "$rc" = 1 ] && [ ! -f "$tmp/v4/req" ] && grep -q 'user information' "$tmp/ui.err" &&
   ! grep -q hunter2 "$tmp/ui.err"; then
  say "ok   user@host refused before sending: $(cat "$tmp/ui.err")"
else
  fail "user@host: exit $rc, sent: $([ -f "$tmp/v4/req" ] && echo yes || echo no), '$(cat "$tmp/ui.err")'"
fi

if [ "$failures" -gt 0 ]; then
  say "$failures of $checks checks failed"
  exit 1
fi
say "all $checks checks passed"
exit 0
