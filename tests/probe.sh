#!/bin/sh
# health-probe, the HEALTHCHECK command for images without curl, against
# live, failing, draining, closed and hanging endpoints, malformed URLs and
# bad options; and it must depend on nothing beyond libc.
#
#   exit 0  the URL answered 2xx            exit 1  anything else, one-line reason
#   exit 2 (or 1) for a usage error, with a message saying what is wrong
#
# Environment: top_srcdir, top_builddir (set by `make check`).  Needs python3
# for the misbehaving test servers (skips without it, unless
# HEALTH_TEST_REQUIRE_SERVERS=1).
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
  # A failure's reason is one line (usage errors may print the usage text).
  if [ "$rc" = 1 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    fail "$what: the reason is not exactly one line on stderr"
  fi
}


# Misbehaving servers on 127.0.0.1: fake.py MODE PORTFILE [ADDRESS].  Each exits on its
# own after 60 s.
#   noaccept    listens, never accepts (the kernel completes the handshake)
#   silent      accepts, reads, never answers
#   partial     answers "HTTP/1.1 20" and stalls
#   status:N    answers every request with status N
#   garbage     answers something that is not HTTP
#   close       reads the request and closes without answering
cat >"$tmp/fake.py" <<'EOF'
import socket, sys, threading, time
mode, portfile = sys.argv[1], sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
ls.bind((host, 0))
ls.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
import os
os.rename(portfile + ".tmp", portfile)
threading.Timer(60, lambda: os._exit(0)).start()
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
if mode == "noaccept":
    while True:
        time.sleep(1)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

# start_fake MODE [ADDRESS]: sets fake_port
start_fake() {
  rm -f "$tmp/port.$1"
  python3 "$tmp/fake.py" "$1" "$tmp/port.$1" ${2:+"$2"} &
  pids="$pids $!"
  i=0
  while [ ! -s "$tmp/port.$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  fake_port=$(cat "$tmp/port.$1" 2>/dev/null)
  [ -n "$fake_port" ] || { fail "fake server $1 did not start"; fake_port=1; }
}

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
# 2. Usage errors: exit 2 (or 1) with a message naming the problem.
expect "no URL" "2" "usage" 2000 -- 
expect "--timeout without a value" "2" "usage" 2000 -- --timeout
expect "--timeout abc" "2 1" "--timeout" 2000 -- --timeout abc http://127.0.0.1:1/
expect "--timeout 0" "2 1" "--timeout" 2000 -- --timeout 0 http://127.0.0.1:1/
expect "--timeout -5" "2 1" "--timeout" 2000 -- --timeout -5 http://127.0.0.1:1/
expect "--timeout 600001" "2 1" "--timeout" 2000 -- --timeout 600001 http://127.0.0.1:1/
expect "--timeout 5ms" "2 1" "--timeout" 2000 -- --timeout 5ms http://127.0.0.1:1/
expect "unknown option" "2" "usage" 2000 -- --bogus http://127.0.0.1:1/
expect "two URLs" "2" "usage" 2000 -- http://127.0.0.1:1/ http://127.0.0.1:2/
for u in "ftp://127.0.0.1/" "https://127.0.0.1:1/" "127.0.0.1:8081/health" "http://" \
         "http://:8081/" "http://127.0.0.1:/x" "http://127.0.0.1:0/" "http://127.0.0.1:65536/" \
         "http://127.0.0.1:80x/" "http://[::1/" "http://127.0.0.1/a b"; do
  expect "malformed URL '$u'" "2 1" "malformed URL" 2000 -- "$u"
done
expect "--help" "0" "usage" 2000 -- --help

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
expect "failing /ready" "1" "HTTP 503" 2000 -- "http://127.0.0.1:$h2/ready"
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

# ---------------------------------------------------------------------------
# 6. Closed port, misbehaving and hanging servers.
expect "closed port" "1" "connect failed" 2000 -- --timeout 2000 "http://127.0.0.1:$closed/health"
start_fake status:503
expect "503" "1" "HTTP 503" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake status:204
expect "204 is healthy" "0" "" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake status:301
expect "301 is not healthy" "1" "HTTP 301" 2000 -- "http://127.0.0.1:$fake_port/"
start_fake garbage
expect "not HTTP" "1" "not an HTTP answer" 2000 -- "http://127.0.0.1:$fake_port/"
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
expect "stalls mid status line" "1" "timeout" 1300 -- --timeout 500 "http://127.0.0.1:$fake_port/health"

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

if [ "$failures" -gt 0 ]; then
  say "$failures of $checks checks failed"
  exit 1
fi
say "all $checks checks passed"
exit 0
