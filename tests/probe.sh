#!/bin/sh
# health-probe, the HEALTHCHECK command for images without curl, against
# live, failing, draining, closed and hanging endpoints, answers of every
# framing (1xx first, slow, huge, chunked, close-delimited, truncated), a
# resolver that never answers (in a mount namespace of its own), names with
# several addresses, malformed URLs and bad options; and it must depend on
# nothing beyond libc.  (The request bytes are compared with curl's by
# tests/probe-conformance.sh.)
#
#   exit 0  the answer's status was accepted (default 200-299)
#   exit 1  anything else, with a one-line reason on stderr; usage errors
#           too (never 2: Docker reserves it)
#
# Environment: top_srcdir, top_builddir (set by `make check`);
# HEALTH_TEST_TIME_SCALE widens the timing margins.  Needs python3 for the
# misbehaving test servers (skips without it, unless
# HEALTH_TEST_REQUIRE_SERVERS=1); the hung-resolver and several-addresses
# cases need root for unshare/mount (skipped otherwise, with a note).
set -u

builddir=${top_builddir:-.}
require=${HEALTH_TEST_REQUIRE_SERVERS:-0}
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
probe=$builddir/health-probe
demo=$builddir/examples/demo-service

say() { echo "probe: $*"; }
skip() {
  if [ "$require" = 1 ]; then say "FAIL: $* (HEALTH_TEST_REQUIRE_SERVERS=1)"; exit 1; fi
  say "SKIP: $*"
  exit 77
}
have() { command -v "$1" >/dev/null 2>&1; }
[ -x "$probe" ] || { say "FAIL: $probe not built"; exit 1; }
[ -x "$demo" ] || { say "FAIL: $demo not built (make check builds it)"; exit 1; }
have python3 || skip "python3 not found (runs the misbehaving test servers)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-probe.XXXXXX") || exit 1
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Under ThreadSanitizer a process that still has a thread (the abandoned
# lookup) sleeps 1 s at exit (atexit_sleep_ms), which is not the probe's time.
TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS }atexit_sleep_ms=0"
export TSAN_OPTIONS
scale=${HEALTH_TEST_TIME_SCALE:-1}
case $scale in ''|*[!0-9]*) scale=1 ;; esac
[ "$scale" -ge 1 ] || scale=1
failures=0
checks=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
now_ms() { date +%s%3N; }

# run_probe ARGS...: runs health-probe; sets rc, err (stderr), ms (elapsed).
run_probe() {
  t0=$(now_ms)
  "$probe" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  ms=$(( $(now_ms) - t0 ))
  err=$(cat "$tmp/err")
}

# expect WHAT RC STDERR_SUBSTRING MAX_MS -- ARGS...
expect() {
  what=$1 want_rc=$2 want_err=$3 max_ms=$4
  shift 5
  run_probe "$@"
  checks=$((checks + 1))
  ok=1
  case " $want_rc " in *" $rc "*) ;; *) ok=0 ;; esac
  if [ -n "$want_err" ]; then
    case $err in *"$want_err"*) ;; *) ok=0 ;; esac
  elif [ -n "$err" ] && [ "$rc" = 0 ]; then
    ok=0 # success is silent
  fi
  [ "$ms" -le "$max_ms" ] || ok=0
  if [ "$ok" = 1 ]; then
    say "ok   $what: exit $rc in ${ms} ms${err:+ ($(head -n 1 "$tmp/err"))}"
  else
    fail "$what: exit $rc (want $want_rc), ${ms} ms (max $max_ms), stderr '$err' (want '$want_err')"
  fi
  # A failure's reason is exactly one line, usage errors included.
  if [ "$rc" = 1 ] && [ -s "$tmp/err" ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    fail "$what: the reason is not exactly one line on stderr"
  fi
}


# Misbehaving servers on 127.0.0.1: fake.py MODE PORTFILE [ADDRESS [PORT]].  Each
# exits on its own after 90 s.
#   noaccept    listens, never accepts (the kernel completes the handshake)
#   silent      accepts, reads, never answers
#   partial     answers "HTTP/1.1 20" and stalls
#   status:N    answers every request with status N
#   garbage     answers something that is not HTTP
#   close       reads the request and closes without answering
#   bypath      answers GET /<kind>: 1xx first, slow, huge, chunked,
#               close-delimited, truncated... (see answer() below)
#   saturated   a listener on ADDRESS:PORT whose accept queue is full, so
#               that connecting to it hangs (SYNs dropped)
cat >"$tmp/fake.py" <<'EOF'
import socket, sys, threading, time
mode, portfile = sys.argv[1], sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, int(sys.argv[4]) if len(sys.argv) > 4 else 0))
ls.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
import os
os.rename(portfile + ".tmp", portfile)
threading.Timer(90, lambda: os._exit(0)).start()
held = []
def serve(c):
    try:
        c.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        if mode == "close":
            c.close()
            return
        if mode == "silent":
            held.append(c)
            return
        if mode == "partial":
            c.sendall(b"HTTP/1.1 20")
            held.append(c)
            return
        if mode == "garbage":
            c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        elif mode.startswith("status:"):
            code = int(mode.split(":")[1])
            c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % code)
        c.close()
    except OSError:
        pass
def answer(c, m, req):
    """The answers of the "bypath" server: GET /<m>[/...]."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    if m == "interim100":
        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + ok)
    elif m == "interim-many":
        for s in (b"100 Continue", b"102 Processing", b"103 Early Hints\r\nLink: </a.css>; rel=preload"):
            c.sendall(b"HTTP/1.1 " + s + b"\r\n\r\n")
            time.sleep(0.02)
        c.sendall(ok)
    elif m == "interim-503":
        c.sendall(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    elif m == "slowhead":   # the whole answer, a byte at a time, over ~0.4 s
        for b in ok:
            c.sendall(bytes([b]))
            time.sleep(0.4 / len(ok))
    elif m == "slowbody":   # a 200 head, then a body that never ends in time
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(30)
    elif m == "huge":       # 200 with 1 GiB announced and sent until the probe leaves
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(16384):
            c.sendall(chunk)
    elif m == "huge-close": # 200, no length, endless body
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        for _ in range(16384):
            c.sendall(b"y" * 65536)
    elif m == "chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                  b"4;ext=1\r\nabcd\r\n")
        time.sleep(0.05)
        c.sendall(b"A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
        time.sleep(30)      # keeps the connection: the probe must stop at the last chunk
    elif m == "chunked-trunc":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    elif m == "chunked-bad":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    elif m == "close-delimited":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        time.sleep(0.05)
        c.sendall(b"pass" * 1000)
    elif m == "length-trunc":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    elif m == "length-keepalive":  # ignores Connection: close; Content-Length ends it
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        time.sleep(30)
    elif m == "length-conflict":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
    elif m == "http10":
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nfine")
    elif m == "bare-lf":
        c.sendall(b"HTTP/1.1 204 No Content\nX-A: b\n\n")
    elif m == "no-phrase":
        c.sendall(b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n")
    elif m == "reset":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        import struct
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif m == "token":      # 200 only with the right header
        good = b"\r\nx-token: s3cret\r\n" in req.lower()
        c.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n" % (b"200 OK" if good else b"401 Unauthorized"))
    elif m.startswith("status"):
        c.sendall(b"HTTP/1.1 %s X\r\nContent-Length: 0\r\n\r\n" % m[6:].encode())
    else:
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
def serve_bypath(c):
    try:
        c.settimeout(60)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        m = data.split(b" ")[1].decode().split("/")[1]
        answer(c, m, data)
        c.close()
    except OSError:
        pass
if mode == "noaccept":
    while True:
        time.sleep(1)
if mode == "saturated":  # the accept queue is full: further SYNs are dropped
    ls.close()
    ls = socket.socket(socket.AF_INET)
    ls.bind((host, int(sys.argv[4])))
    ls.listen(0)
    fill = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, int(sys.argv[4])))
        fill.append(s)
    while True:
        time.sleep(1)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve_bypath if mode == "bypath" else serve, args=(c,), daemon=True).start()
EOF

# start_fake MODE [ADDRESS [PORT]]: sets fake_port
start_fake() {
  rm -f "$tmp/port.$1"
  python3 "$tmp/fake.py" "$1" "$tmp/port.$1" ${2:+"$2"} ${3:+"$3"} &
  pids="$pids $!"
  i=0
  while [ ! -s "$tmp/port.$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  fake_port=$(cat "$tmp/port.$1" 2>/dev/null)
  [ -n "$fake_port" ] || { fail "fake server $1 did not start"; fake_port=1; }
}

# Two parts, two tests that make check runs at once: "services"
# (tests/probe.sh: sections 1-5, the demo-service instances) and "servers"
# (tests/probe-servers.sh: sections 6-8, the misbehaving servers and the
# name cases).  PROBE_PART=all runs both in one process.
part=${PROBE_PART:-services}
case $part in services|servers|all) ;; *) say "FAIL: PROBE_PART must be services, servers or all"; exit 1 ;; esac

if [ "$part" != servers ]; then
# ---------------------------------------------------------------------------
# 1. No dependency beyond libc.
if [ "$(head -c 4 "$probe" | od -An -c | tr -d ' ')" != '177ELF' ]; then
  fail "$probe is not an ELF binary (a libtool wrapper means it links a libtool library)"
elif have ldd; then
  ldd "$probe" >"$tmp/ldd" 2>&1
  if grep -q 'not a dynamic executable\|statically linked' "$tmp/ldd"; then
    say "ok   health-probe is static"
  else
    allowed='linux-vdso\.so|linux-gate\.so|^[[:space:]]*libc\.so\.|ld-linux|/ld-.*\.so|^[[:space:]]*$'
    # A sanitizer build (scripts/test.sh asan/tsan) adds its runtime and what
    # that needs; the library and its dependencies are never allowed.
    if grep -Eq '^[[:space:]]*lib(asan|tsan|ubsan|lsan)\.so' "$tmp/ldd"; then
      allowed="$allowed|^[[:space:]]*lib(asan|tsan|ubsan|lsan|m|gcc_s|stdc\+\+|dl|pthread|rt)\.so"
      say "note: sanitizer build; its runtime libraries are allowed"
    fi
    extra=$(grep -Ev "$allowed" "$tmp/ldd")
    grep -Eq 'libhealth|libmicrohttpd|libpq|libhiredis|libssl|libcrypto|libgnutls' "$tmp/ldd" &&
      fail "health-probe links the library or its dependencies: $(tr -s ' \t\n' ' ' <"$tmp/ldd")"
    if [ -n "$extra" ]; then
      fail "health-probe needs more than libc: $extra"
    else
      say "ok   ldd health-probe: only libc ($(tr -s ' \t\n' ' ' <"$tmp/ldd"))"
    fi
    grep -q 'libc\.so' "$tmp/ldd" || fail "ldd does not list libc: $(cat "$tmp/ldd")"
  fi
  checks=$((checks + 1))
else
  say "note: ldd not found; dependency check skipped"
fi

# ---------------------------------------------------------------------------
# 2. Usage errors: exit 1 (never 2) with one line naming the problem; the
#    URL's problems are found before any network traffic.
expect "no URL" "1" "no URL given" 2000 --
expect "--timeout without a value" "1" "--timeout needs a value" 2000 -- --timeout
expect "--timeout= without a value" "1" "--timeout must be" 2000 -- --timeout= http://127.0.0.1:1/
expect "--timeout abc" "1" "--timeout must be" 2000 -- --timeout abc http://127.0.0.1:1/
expect "--timeout 0" "1" "--timeout must be" 2000 -- --timeout 0 http://127.0.0.1:1/
expect "--timeout -5" "1" "--timeout must be" 2000 -- --timeout -5 http://127.0.0.1:1/
expect "--timeout 600001" "1" "--timeout must be" 2000 -- --timeout 600001 http://127.0.0.1:1/
expect "--timeout 5ms" "1" "--timeout must be" 2000 -- --timeout 5ms http://127.0.0.1:1/
expect "--timeout=+5" "1" "--timeout must be" 2000 -- --timeout=+5 http://127.0.0.1:1/
expect "unknown option" "1" "unknown option '--bogus'" 2000 -- --bogus http://127.0.0.1:1/
expect "two URLs" "1" "more than one URL" 2000 -- http://127.0.0.1:1/ http://127.0.0.1:2/
expect "--expect abc" "1" "bad status code list 'abc'" 2000 -- --expect abc http://127.0.0.1:1/
expect "--expect 150" "1" "not a range of final status codes" 2000 -- --expect=150 http://127.0.0.1:1/
expect "--expect 399-200" "1" "not a range of final status codes" 2000 -- -e 399-200 http://127.0.0.1:1/
expect "--expect without a value" "1" "--expect needs" 2000 -- --expect
expect "-H without a colon" "1" "bad header 'X-Token'" 2000 -- -H X-Token http://127.0.0.1:1/
expect "-H with a newline" "1" "control character" 2000 -- -H "X-A: b
Injected: yes" http://127.0.0.1:1/
expect "-H Host: (empty)" "1" "empty Host header" 2000 -- -H "Host:" http://127.0.0.1:1/
expect "https" "1" "https:// is not supported: probe the plain health port" 2000 -- https://127.0.0.1:1/
expect "HTTPS" "1" "https:// is not supported" 2000 -- HTTPS://127.0.0.1:1/
expect "ftp" "1" "unsupported scheme 'ftp'" 2000 -- ftp://127.0.0.1/
expect "user@host" "1" "user information (user@host) in the URL is not supported" 2000 -- \
  http://probe:hunter2@127.0.0.1:1/health
case $err in *hunter2*) fail "user@host: the password is repeated on stderr: $err" ;; esac
for u in "127.0.0.1:8081/health" "http://" "http://:8081/" "http://127.0.0.1:0/" \
         "http://127.0.0.1:65536/" "http://127.0.0.1:99999999999999999999/" \
         "http://127.0.0.1:80x/" "http://[::1/" "http://[::g]/" "http://127.0.0.1/a b" \
         "http://127.0.0.1/a$(printf '\t')b" "http://h%41st/" "http://h_st!/" \
         "http://[fe80::1%25eth0]:80/"; do
  expect "malformed URL '$u'" "1" "" 2000 -- "$u"
  case $err in
    "health-probe: "*": "*) ;;
    *) fail "malformed URL '$u': no reason given: '$err'" ;;
  esac
  case $err in *"connect failed"*|*resolve*|*timeout*) fail "malformed URL '$u' reached the network: $err" ;; esac
done
expect "empty port is the default port" "1" "connect failed" 2000 -- "http://127.0.0.1:/x"
expect "--quiet says nothing" "1" "" 2000 -- --quiet https://127.0.0.1:1/
[ -z "$err" ] || fail "--quiet printed '$err'"
expect "-q before a usage error" "1" "" 2000 -- -q --bogus
[ -z "$err" ] || fail "-q printed '$err'"
expect "--help" "0" "" 2000 -- --help
grep -q '^usage: health-probe' "$tmp/out" || fail "--help: no usage on stdout"
grep -q -- '--expect' "$tmp/out" || fail "--help does not mention --expect"
expect "-h" "0" "" 2000 -- -h
expect "--version" "0" "" 2000 -- --version
grep -Eq '^health-probe \(libhealth\) [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" ||
  fail "--version printed '$(cat "$tmp/out")'"

# ---------------------------------------------------------------------------
# 3. A live demo-service: 200 -> exit 0; an address that needs a fallback.
set -- $(python3 "$srcdir/tests/free-ports.py" 5)
app1=$1 h1=$2 app2=$3 h2=$4 closed=$5
env PORT="$app1" HEALTH_PORT="$h1" HEALTH_ADDRESS=127.0.0.1 FLUSH_FILE="$tmp/flush1.log" \
  HEALTH_DRAIN_MS=20000 HEALTH_SHUTDOWN_DEADLINE_MS=25000 HEALTH_LOG_LEVEL=warn \
  "$demo" 2>"$tmp/demo1.log" &
live=$!
pids="$pids $live"
i=0
until "$probe" --timeout 500 "http://127.0.0.1:$h1/ready" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 100 ] || { fail "demo-service never became ready"; cat "$tmp/demo1.log"; exit 1; }
  sleep 0.05
done
expect "live /health" "0" "" 2000 -- "http://127.0.0.1:$h1/health"
expect "live /ready" "0" "" 2000 -- --timeout 2000 "http://127.0.0.1:$h1/ready"
expect "live /ready, -t" "0" "" 2000 -- -t 2000 "http://127.0.0.1:$h1/ready"
expect "live, query string" "0" "" 2000 -- "http://127.0.0.1:$h1/health?x=1"
expect "live, fragment dropped" "0" "" 2000 -- "http://127.0.0.1:$h1/health#frag"
expect "live, HTTP:// upper case" "0" "" 2000 -- "HTTP://127.0.0.1:$h1/health"
expect "live, leading-zero port" "0" "" 2000 -- "http://127.0.0.1:0$h1/health"
expect "live, dot segments" "0" "" 2000 -- "http://127.0.0.1:$h1/x/../health"
expect "live, --timeout=500" "0" "" 2000 -- --timeout=500 "http://127.0.0.1:$h1/health"
expect "live, -t500" "0" "" 2000 -- -t500 "http://127.0.0.1:$h1/health"
expect "live, -- URL" "0" "" 2000 -- -- "http://127.0.0.1:$h1/health"
expect "live, unknown path" "1" "HTTP 404" 2000 -- "http://127.0.0.1:$h1/nope"
# The service binary as its own probe (health_probe() in the library).
checks=$((checks + 1))
if HEALTH_PORT="$h1" "$demo" --healthcheck 2>"$tmp/self.err"; then
  say "ok   demo-service --healthcheck: exit 0 against a live service"
else
  fail "demo-service --healthcheck against a live service: $(cat "$tmp/self.err")"
fi
checks=$((checks + 1))
if HEALTH_PORT="$closed" "$demo" --healthcheck 2>"$tmp/self.err"; then
  fail "demo-service --healthcheck passed against a closed port"
elif grep -q "connect failed" "$tmp/self.err"; then
  say "ok   demo-service --healthcheck: exit 1 against a closed port ($(cat "$tmp/self.err"))"
else
  fail "demo-service --healthcheck: unclear reason '$(cat "$tmp/self.err")'"
fi
# "localhost" may resolve to ::1 first, where nothing listens: the probe must
# try the next address.
if getent hosts localhost >/dev/null 2>&1; then
  expect "live via localhost" "0" "" 2000 -- "http://localhost:$h1/health"
  expect "live via LOCALHOST (host names are case-insensitive)" "0" "" 2000 -- "http://LOCALHOST:$h1/health"
fi

# ---------------------------------------------------------------------------
# 4. A failing service: its flush directory does not exist -> /ready 503.
env PORT="$app2" HEALTH_PORT="$h2" HEALTH_ADDRESS=127.0.0.1 \
  FLUSH_FILE="$tmp/no-such-dir/flush.log" HEALTH_LOG_LEVEL=warn \
  HEALTH_DRAIN_MS=0 HEALTH_SHUTDOWN_DEADLINE_MS=2000 \
  "$demo" 2>"$tmp/demo2.log" &
failing=$!
pids="$pids $failing"
i=0
until "$probe" --timeout 500 "http://127.0.0.1:$h2/health" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 100 ] || { fail "failing demo-service never answered /health"; break; }
  sleep 0.05
done
expect "failing /ready" "1" "HTTP 503 Service Unavailable (expected 200-299)" 2000 -- "http://127.0.0.1:$h2/ready"
expect "failing /ready, --expect 200-399" "1" "(expected 200-399)" 2000 -- --expect 200-399 "http://127.0.0.1:$h2/ready"
expect "failing /ready, --expect 2xx,503" "0" "" 2000 -- --expect 2xx,503 "http://127.0.0.1:$h2/ready"
expect "failing service, /health" "0" "" 2000 -- "http://127.0.0.1:$h2/health"
kill -TERM "$failing" 2>/dev/null

# ---------------------------------------------------------------------------
# 5. Draining: after SIGTERM /ready fails at once, /health stays 200.
kill -TERM "$live"
i=0
until ! "$probe" --timeout 500 "http://127.0.0.1:$h1/ready" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 40 ] || { fail "/ready did not fail within 2 s of SIGTERM"; break; }
  sleep 0.05
done
expect "draining /ready" "1" "HTTP 503" 2000 -- "http://127.0.0.1:$h1/ready"
expect "draining /health" "0" "" 2000 -- "http://127.0.0.1:$h1/health"
kill -TERM "$live" 2>/dev/null # a second signal ends the drain; hooks still run

fi # services, sections 1-5

if [ "$part" != services ]; then
[ "$part" = all ] || closed=$(python3 "$srcdir/tests/free-ports.py" 1)
# ---------------------------------------------------------------------------
# 6. Closed port, misbehaving and hanging servers.
expect "closed port" "1" "connect failed" 2000 -- --timeout 2000 "http://127.0.0.1:$closed/health"
start_fake status:503
expect "503" "1" "HTTP 503" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake status:204
expect "204 is healthy" "0" "" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake status:301
expect "301 is not healthy" "1" "HTTP 301" 2000 -- "http://127.0.0.1:$fake_port/"
expect "301 with --expect 200-399 (as Kubernetes)" "0" "" 2000 -- --expect 200-399 "http://127.0.0.1:$fake_port/"
expect "301 with --expect=3xx" "0" "" 2000 -- --expect=3xx "http://127.0.0.1:$fake_port/"
start_fake garbage
expect "not HTTP (an SSH banner)" "1" "not an HTTP answer" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake close
expect "closed without an answer" "1" "closed" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake noaccept
expect "never accepted" "1" "timeout" 1300 -- --timeout 500 "http://127.0.0.1:$fake_port/health"
[ "$ms" -ge 450 ] || fail "never accepted: gave up after $ms ms, before its 500 ms timeout"
start_fake silent
expect "never answers" "1" "timeout" 1300 -- --timeout 500 "http://127.0.0.1:$fake_port/health"
[ "$ms" -ge 450 ] || fail "never answers: gave up after $ms ms, before its 500 ms timeout"
expect "never answers, default timeout 2000" "1" "timeout" 2800 -- "http://127.0.0.1:$fake_port/health"
[ "$ms" -ge 1900 ] || fail "default timeout: gave up after $ms ms"
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  start_fake status:200 ::1
  expect "IPv6 literal [::1]" "0" "" 2000 -- "http://[::1]:$fake_port/health"
else
  say "note: no IPv6 loopback here; the [::1] case is skipped"
fi
start_fake partial
expect "stalls mid status line" "1" "timeout after 500 ms (answer)" 1300 -- --timeout 500 "http://127.0.0.1:$fake_port/health"

# ---------------------------------------------------------------------------
# 7. Answers of every framing (one server, the kind of answer in the path).
start_fake bypath
b="http://127.0.0.1:$fake_port"
t2=$((2000 * scale))
expect "100 Continue, then 200" "0" "" $t2 -- "$b/interim100"
expect "100, 102, 103 Early Hints, then 200" "0" "" $t2 -- "$b/interim-many"
expect "103, then 503" "1" "HTTP 503 Service Unavailable" $t2 -- "$b/interim-503"
expect "slow answer within the timeout" "0" "" $t2 -- --timeout 1500 "$b/slowhead"
[ "$ms" -ge 350 ] || fail "slow answer: done after $ms ms, before the server finished"
expect "200 head, body too slow" "1" "timeout after 500 ms (body)" $((500 + 300 * scale)) -- --timeout 500 "$b/slowbody"
[ "$ms" -ge 450 ] || fail "slow body: gave up after $ms ms, before its 500 ms timeout"
expect "huge body (1 GiB announced): stops at the cap" "0" "" $t2 -- "$b/huge"
expect "huge close-delimited body: stops at the cap" "0" "" $t2 -- "$b/huge-close"
expect "chunked with extensions and trailers, connection kept" "0" "" $t2 -- --timeout 1500 "$b/chunked"
[ "$ms" -lt $((1000 * scale)) ] || fail "chunked: took $ms ms; the last chunk should end it"
expect "chunked, truncated" "1" "answer truncated" $t2 -- "$b/chunked-trunc"
expect "chunked, bad size" "1" "malformed chunk size" $t2 -- "$b/chunked-bad"
expect "close-delimited body" "0" "" $t2 -- "$b/close-delimited"
expect "Content-Length, truncated" "1" "answer truncated" $t2 -- "$b/length-trunc"
expect "Content-Length ends it though the server keeps the connection" "0" "" $t2 -- --timeout 1500 "$b/length-keepalive"
[ "$ms" -lt $((1000 * scale)) ] || fail "Content-Length: took $ms ms; the length should end it"
expect "conflicting Content-Length" "1" "conflicting Content-Length" $t2 -- "$b/length-conflict"
expect "HTTP/1.0 answer" "0" "" $t2 -- "$b/http10"
expect "bare LF line ends, 204" "0" "" $t2 -- "$b/bare-lf"
expect "503 without a reason phrase" "1" "HTTP 503 (expected 200-299)" $t2 -- "$b/no-phrase"
expect "reset after part of the body" "1" "" $t2 -- "$b/reset"
case $err in *"connection reset"*|*truncated*) ;; *) fail "reset: unclear reason '$err'" ;; esac
expect "header required, missing" "1" "HTTP 401 Unauthorized" $t2 -- "$b/token"
expect "header required, -H given" "0" "" $t2 -- -H "X-Token: s3cret" "$b/token"
expect "header required, --header=" "0" "" $t2 -- "--header=x-token: s3cret" "$b/token"

# ---------------------------------------------------------------------------
# 8. Names, each case in a mount namespace of its own with its own
#    /etc/resolv.conf and /etc/hosts (as the checkers' tests do): a resolver
#    that never answers, and a name whose first address hangs or refuses.
# ns_probe RESOLV_CONF HOSTS ARGS...: the probe with those files over
# /etc/resolv.conf and /etc/hosts; sets rc, err and ms (the probe alone).
ns_probe() {
  rm -f "$tmp/ns.rc" "$tmp/ns.err"
  conf=$1 hosts=$2
  shift 2
  unshare --mount --propagation private sh -c '
    mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts || exit 99
    out=$3; shift 3
    t0=$(date +%s%3N); "$@" 2>"$out.err"; rc=$?
    echo "$rc $(( $(date +%s%3N) - t0 ))" >"$out.rc"' sh "$conf" "$hosts" "$tmp/ns" "$probe" "$@" \
    2>"$tmp/ns.setup"
  read -r rc ms <"$tmp/ns.rc" 2>/dev/null || { rc=99; ms=0; }
  err=$(cat "$tmp/ns.err" 2>/dev/null)
  [ "$rc" != 99 ] || err="namespace setup failed: $(cat "$tmp/ns.setup")"
}
if [ "$(id -u)" != 0 ] || ! have unshare || ! unshare --mount --propagation private true 2>/dev/null; then
  [ "$require" = 1 ] && fail "names: needs root and unshare for private mounts (HEALTH_TEST_REQUIRE_SERVERS=1)"
  say "note: not root or no unshare: the hung-resolver and several-address cases are skipped"
else
  cat >"$tmp/dns.py" <<'EOF'
import os, socket, sys, threading
s = None
for i in range(53, 63):  # a loopback address with UDP port 53 free
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.%d" % i, 53))
        break
    except OSError:
        s = None
if s is None:
    sys.exit(1)
threading.Timer(90, lambda: os._exit(0)).start()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(s.getsockname()[0])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
n = 0
while True:  # reads every query, answers none
    s.recvfrom(4096)
    n += 1
    with open(sys.argv[2], "w") as f:
        f.write(str(n))
EOF
  python3 "$tmp/dns.py" "$tmp/dns.addr" "$tmp/dns.count" &
  pids="$pids $!"
  i=0
  while [ ! -s "$tmp/dns.addr" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  printf '127.0.0.1 localhost\n' >"$tmp/hosts.plain"
  if [ ! -s "$tmp/dns.addr" ]; then
    fail "hung resolver: no loopback address with UDP port 53 free"
  else
    printf 'nameserver %s\noptions timeout:30 attempts:1\n' "$(cat "$tmp/dns.addr")" >"$tmp/resolv.hung"
    checks=$((checks + 1))
    # What starting a probe that fails at once costs here (process start and
    # the clock reads): the timeout cannot cover the time before the process
    # runs, so the limit is timeout + 50 ms on top of that (the smallest of
    # three runs).
    base=""
    for i in 1 2 3; do
      ns_probe "$tmp/resolv.hung" "$tmp/hosts.plain" --timeout 300 "http://127.0.0.1:$closed/health"
      [ "$rc" = 1 ] || fail "baseline run: exit $rc: $err"
      [ -z "$base" ] || [ "$ms" -lt "$base" ] && base=$ms
    done
    ns_probe "$tmp/resolv.hung" "$tmp/hosts.plain" --timeout 300 "http://svc.hung-resolver.test:8081/health"
    limit=$((300 + 50 * scale + base))
    if [ "$rc" = 1 ] && [ "$ms" -le "$limit" ] && [ "$ms" -ge 300 ] &&
       [ "$err" = "health-probe: http://svc.hung-resolver.test:8081/health: timeout after 300 ms (dns)" ]; then
      say "ok   hung resolver: exit 1 after $ms ms (limit 300 + $((50 * scale)) + $base ms to start a probe): $err"
    else
      fail "hung resolver: exit $rc after $ms ms (want 1 within 300-$limit ms; a probe takes $base ms to start), stderr '$err'"
    fi
    [ -s "$tmp/dns.count" ] || fail "hung resolver: the black-hole name server received no query (premise)"
  fi

  # Several addresses: the first hangs (a full accept queue drops SYNs) or
  # refuses; each address gets an equal share of what is left.
  start_fake bypath 127.0.0.2
  live2=$fake_port
  start_fake saturated 127.0.0.3 "$live2"
  printf '127.0.0.3 svc.multi.test\n127.0.0.2 svc.multi.test\n127.0.0.4 svc.refused.test\n127.0.0.2 svc.refused.test\n' >"$tmp/hosts.multi"
  unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/hosts && getent ahostsv4 svc.multi.test' \
    "$tmp/hosts.multi" >"$tmp/order" 2>&1
  first=$(awk 'NR==1{print $1}' "$tmp/order")
  if [ "$first" != 127.0.0.3 ]; then
    fail "several addresses: getaddrinfo puts '$first' first, not 127.0.0.3 (premise): $(tr '\n' ' ' <"$tmp/order")"
  else
    checks=$((checks + 1))
    ns_probe /etc/resolv.conf "$tmp/hosts.multi" --timeout 1000 "http://svc.multi.test:$live2/status204"
    if [ "$rc" = 0 ] && [ "$ms" -ge 450 ] && [ "$ms" -le $((1000 + 50 * scale)) ]; then
      say "ok   first address hangs: half the budget, then the second answers (exit 0 after $ms ms)"
    else
      fail "first address hangs: exit $rc after $ms ms (want 0 after 450-1000 ms): $err"
    fi
    checks=$((checks + 1))
    ns_probe /etc/resolv.conf "$tmp/hosts.multi" --timeout 1000 "http://svc.refused.test:$live2/status204"
    if [ "$rc" = 0 ] && [ "$ms" -lt $((300 * scale)) ]; then
      say "ok   first address refuses: the second answers at once (exit 0 after $ms ms)"
    else
      fail "first address refuses: exit $rc after $ms ms (want 0 at once): $err"
    fi
  fi
  checks=$((checks + 1))
  ns_probe "$tmp/hosts.plain" "$tmp/hosts.plain" --timeout 1000 "http://svc.missing.test:$live2/"
  case "$rc $err" in
    "1 "*"cannot resolve the host name"*) say "ok   unknown name: exit 1 ($err)" ;;
    *) fail "unknown name: exit $rc, '$err'" ;;
  esac
fi

fi # servers, sections 6-8

if [ "$part" != servers ]; then
# The demo instances are gone (exit status of the drained one: 0).
i=0
while kill -0 "$live" 2>/dev/null && [ $i -lt 100 ]; do
  case $(sed 's/^.*) //' "/proc/$live/stat" 2>/dev/null | cut -c1) in Z) break ;; esac
  sleep 0.05
  i=$((i + 1))
done
wait "$live"
live_rc=$?
[ "$live_rc" = 0 ] || fail "the drained demo-service exited with $live_rc"

fi

if [ "$failures" -gt 0 ]; then
  say "$failures of $checks checks failed"
  exit 1
fi
say "all $checks checks passed"
exit 0
