#!/bin/sh
# The HAProxy agent-check responder against a real HAProxy.
#
# HAProxy health-checks GET /health on the demo's health port (liveness, 200
# while draining) and asks the agent (HEALTH_AGENT_PORT) every 200 ms.  A
# watcher polls its runtime API (`show stat`, `show servers state`) every
# 10 ms and records every change of the server's status, which must be:
#   - UP with weight 50 of 100 (HEALTH_AGENT_WEIGHT=50) once the demo is ready;
#   - DOWN with the reason in the agent's last reply after
#     POST /admin/not-ready?reason=maintenance, UP again after /admin/ready;
#   - DRAIN within a second of SIGTERM, while /health still answers 200 and
#     the drain window lasts, then the process exits 0;
#   - UP again when a new instance starts on the same ports (the agent's
#     "ready" clears the DRAIN state the old one left).
# HEALTH_TEST_REQUIRE_SERVERS=1 turns a missing haproxy/python3 into a failure.
set -u

srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${top_builddir:-.}
require=${HEALTH_TEST_REQUIRE_SERVERS:-0}

say() { echo "agent-check: $*"; }
skip() {
  if [ "$require" = 1 ]; then say "FAIL: $* (HEALTH_TEST_REQUIRE_SERVERS=1)"; exit 1; fi
  say "SKIP: $*"
  exit 77
}
have() { command -v "$1" >/dev/null 2>&1; }

HAPROXY=${HAPROXY:-}
if [ -z "$HAPROXY" ]; then
  for h in haproxy /usr/sbin/haproxy /usr/local/sbin/haproxy; do
    if have "$h"; then HAPROXY=$(command -v "$h"); break; fi
  done
fi
[ -n "$HAPROXY" ] && have "$HAPROXY" || skip "haproxy not found (Debian package haproxy)"
have python3 || skip "python3 not found (used to talk to HAProxy's stats socket)"
demo=$builddir/examples/demo-service
[ -x "$demo" ] || { say "FAIL: $demo not built (make check builds it)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-agent.XXXXXX") || exit 1
rc=1
cleanup() {
  if [ "$rc" -ne 0 ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

cat >"$tmp/agent.py" <<'PYEOF'
import http.client, os, signal, socket, subprocess, sys, threading, time
haproxy, demo, srcdir, tmp = sys.argv[1:5]
scale = int(os.environ.get("HEALTH_TEST_TIME_SCALE", "1") or 1)
failures = []
def check(cond, what):
    if not cond:
        failures.append(what)
        print("agent-check: FAIL: " + what, flush=True)
def now():
    return time.monotonic() * 1000.0

sock = os.path.join(tmp, "haproxy.sock")
def hactl(cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall((cmd + "\n").encode())
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.decode()
def server_stat():
    lines = hactl("show stat").splitlines()
    if not lines:
        return {}
    head = lines[0].lstrip("# ").split(",")
    for l in lines[1:]:
        f = l.split(",")
        if len(f) > 1 and f[0] == "be" and f[1] == "A":
            return dict(zip(head, f))
    return {}
def admin_state():
    """srv_admin_state of be/A in `show servers state` (0x08: forced DRAIN)."""
    for l in hactl("show servers state be").splitlines():
        f = l.split()
        if len(f) > 6 and f[3] == "A":
            return int(f[6])
    return -1

# The watcher: every change of A's (status, weight) with its time.
history = []
def watch():
    last = None
    while True:
        try:
            st = server_stat()
        except OSError:
            time.sleep(0.02)
            continue
        cur = (st.get("status", ""), st.get("weight", ""))
        if cur != last:
            history.append((now(), cur[0], cur[1], st.get("last_agt", "")))
            last = cur
        time.sleep(0.01)

def wait_status(want, timeout_ms, since=0.0):
    """When the watcher first saw `want` ("DOWN (agent)" counts as DOWN) after `since`."""
    until = now() + timeout_ms * scale
    while now() < until:
        for t, st, w, agt in list(history):
            if t >= since and st.split(" ")[0] == want:
                return t
        time.sleep(0.01)
    return None
def recent(since):
    return [(round(t - since), st, w) for t, st, w, _ in history if t >= since - 1000]

def http_status(port, method, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        c.request(method, path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0

out = subprocess.check_output([sys.executable, os.path.join(srcdir, "tests/free-ports.py"), "4"])
app, health, agent, fe = [int(p) for p in out.split()]
cfg = os.path.join(tmp, "haproxy.cfg")
with open(cfg, "w") as f:
    f.write("""global
  nbthread 1
  stats socket %s mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  timeout check 1s
frontend fe
  bind 127.0.0.1:%d
  default_backend be
backend be
  option httpchk GET /health
  http-check expect status 200
  server A 127.0.0.1:%d weight 100 check port %d inter 200 fall 2 rise 1 agent-check agent-port %d agent-inter 200
""" % (sock, fe, app, health, agent))
if subprocess.call([haproxy, "-c", "-q", "-f", cfg]) != 0:
    print("agent-check: FAIL: haproxy rejects its configuration")
    sys.exit(1)
hp = subprocess.Popen([haproxy, "-db", "-f", cfg], stdout=open(os.path.join(tmp, "haproxy.log"), "w"),
                      stderr=subprocess.STDOUT)
procs = [hp]

def start_demo(name):
    env = dict(os.environ, PORT=str(app), HEALTH_PORT=str(health), HEALTH_ADDRESS="127.0.0.1",
               HEALTH_AGENT_PORT=str(agent), HEALTH_AGENT_WEIGHT="50", HEALTH_DRAIN_MS="3000",
               HEALTH_SHUTDOWN_DEADLINE_MS="8000", FLUSH_FILE=os.path.join(tmp, "flush-%s.log" % name))
    p = subprocess.Popen([demo], env=env, stderr=open(os.path.join(tmp, "demo-%s.log" % name), "w"))
    procs.append(p)
    return p

try:
    until = now() + 10000 * scale
    while now() < until:
        try:
            hactl("show info")
            break
        except OSError:
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()

    # ---- A comes up: UP, weight 50% of 100 ----
    a = start_demo("A")
    check(wait_status("UP", 15000) is not None, "A never UP: %s" % history[-3:])
    until = now() + 5000 * scale
    while now() < until and server_stat().get("weight") != "50":
        time.sleep(0.02)
    check(server_stat().get("weight") == "50",
          "weight %s, expected 50 (HEALTH_AGENT_WEIGHT=50 of 100)" % server_stat().get("weight"))
    check(http_status(fe, "GET", "/") == 200, "no traffic through HAProxy to A")

    # ---- manual not-ready: DOWN with the reason, then UP ----
    t0 = now()
    check(http_status(app, "POST", "/admin/not-ready?reason=maintenance") == 200, "POST /admin/not-ready")
    check(wait_status("DOWN", 5000, t0) is not None, "A not DOWN after /admin/not-ready: %s" % recent(t0))
    agt = server_stat().get("last_agt", "")
    check("not ready: maintenance" in agt, "the agent's reason is not in HAProxy: last_agt=%r" % agt)
    t0 = now()
    check(http_status(app, "POST", "/admin/ready") == 200, "POST /admin/ready")
    check(wait_status("UP", 5000, t0) is not None, "A not UP after /admin/ready: %s" % recent(t0))

    # ---- SIGTERM: DRAIN while liveness passes and the drain lasts ----
    t0 = now()
    a.send_signal(signal.SIGTERM)
    t = wait_status("DRAIN", 3000, t0)
    check(t is not None, "A never DRAIN after SIGTERM: %s" % recent(t0))
    if t is not None:
        print("agent-check: DRAIN %.0f ms after SIGTERM (agent-inter 200 ms)" % (t - t0), flush=True)
        check(t - t0 <= 1000 * scale, "DRAIN only %.0f ms after SIGTERM" % (t - t0))
        if now() - t0 < 2500:  # still well inside the 3 s drain window
            check(http_status(health, "GET", "/health") == 200, "/health not 200 while draining")
            check(http_status(health, "GET", "/ready") == 503, "/ready not 503 while draining")
            adm = admin_state()
            check(adm >= 0 and adm & 8, "show servers state: admin state %d has no DRAIN bit" % adm)
            check(a.poll() is None, "A exited during its drain window")
    try:
        rc = a.wait(10 * scale)
    except subprocess.TimeoutExpired:
        a.kill()
        rc = "hung"
    check(rc == 0, "A exited with %s" % rc)
    print("agent-check: A after SIGTERM (ms, status, weight): %s" % recent(t0), flush=True)

    # ---- a new instance in the same slot: UP again ----
    t0 = now()
    b = start_demo("B")
    check(wait_status("UP", 15000, t0) is not None, "B never UP: %s" % recent(t0))
    adm = admin_state()
    check(adm >= 0 and not adm & 8, "show servers state: still DRAIN (%d) with the new instance" % adm)
    check(http_status(fe, "GET", "/") == 200, "no traffic through HAProxy to B")
    t0 = now()
    b.send_signal(signal.SIGTERM)
    check(wait_status("DRAIN", 3000, t0) is not None, "B never DRAIN after SIGTERM: %s" % recent(t0))
    b.wait(10 * scale)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
if failures:
    sys.stdout.write(open(os.path.join(tmp, "haproxy.log")).read()[-2000:])
sys.exit(1 if failures else 0)
PYEOF

python3 "$tmp/agent.py" "$HAPROXY" "$demo" "$srcdir" "$tmp"
rc=$?
[ $rc -eq 0 ] && say "ok"
exit $rc
