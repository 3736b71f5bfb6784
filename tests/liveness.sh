#!/bin/sh
# The demo service's liveness, end to end (python3 does the timing; skips
# without it):
#   stall    POST /stall?ms=1500 blocks the work loop: /health answers 503
#            (naming the heartbeat and its age) within max age (500 ms)
#            + 100 ms of the stall, never before max age, and 200 again
#            after the stall; the systemd WATCHDOG=1 pings (a fake
#            NOTIFY_SOCKET, WATCHDOG_USEC=200000) stop during the stall and
#            resume after it.
#   toggle   POST /admin/not-ready makes /ready 503 with the reason for the
#            very next request (median over 10 toggles under 10 ms from the
#            call's answer), POST /admin/ready puts it back; /health stays 200.
#   gate     STARTUP_DELAY_MS=400: /ready 503 ("warm-up:startup") until the
#            gate opens; a gate that never opens keeps /ready 503 and fails
#            /health after HEALTH_STARTUP_DEADLINE_MS, within 100 ms.
#   input    /stall and /admin/* validate what they are given.
# Every body must parse as JSON.  HEALTH_TEST_TIME_SCALE widens margins.
set -u

: "${top_builddir:=.}"
: "${top_srcdir:=.}"
DEMO="$top_builddir/examples/demo-service"
[ -x "$DEMO" ] || { echo "liveness.sh: $DEMO not built" >&2; exit 1; }
if ! command -v python3 >/dev/null 2>&1; then
  [ "${HEALTH_TEST_REQUIRE_SERVERS:-0}" = 1 ] && { echo "liveness.sh: FAIL: python3 not found" >&2; exit 1; }
  echo "liveness.sh: python3 not found, skipping" >&2
  exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libhealth-liveness-XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM HUP

cat >"$TMP/liveness.py" <<'EOF'
import http.client, json, os, signal, socket, subprocess, sys, threading, time

demo, srcdir, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
scale = int(os.environ.get("HEALTH_TEST_TIME_SCALE", "1") or 1)
failures = []
def check(cond, what):
    if not cond:
        failures.append(what)
        print("liveness.sh: FAIL: " + what, flush=True)
def now():
    return time.monotonic() * 1000.0  # CLOCK_MONOTONIC, as the demo's mono_ms

def ports(n):
    out = subprocess.check_output([sys.executable, os.path.join(srcdir, "tests/free-ports.py"), str(n)])
    return [int(p) for p in out.split()]

class Conn:
    """One keep-alive connection: no connect cost in the timed requests."""
    def __init__(self, port):
        self.port = port
        self.c = None
    def req(self, method, path):
        for _ in range(2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
                self.c.request(method, path)
                r = self.c.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.c.close(); self.c = None
                return r.status, body.decode()
            except (OSError, http.client.HTTPException):
                if self.c: self.c.close()
                self.c = None
        return -1, ""

class Demo:
    def __init__(self, name, env):
        self.port, self.hport = ports(2)
        self.log = os.path.join(tmp, name + ".log")
        e = dict(os.environ, PORT=str(self.port), HEALTH_PORT=str(self.hport),
                 HEALTH_ADDRESS="127.0.0.1", FLUSH_FILE=os.path.join(tmp, name + ".flush"),
                 HEALTH_DRAIN_MS="0", HEALTH_SHUTDOWN_DEADLINE_MS="5000")
        e.pop("NOTIFY_SOCKET", None); e.pop("WATCHDOG_USEC", None)
        e.update(env)
        self.spawned = now()
        self.p = subprocess.Popen([demo], env=e, stderr=open(self.log, "w"))
        self.app, self.health = Conn(self.port), Conn(self.hport)
        until = now() + 10000 * scale
        while now() < until and self.health.req("GET", "/health")[0] < 0:
            time.sleep(0.01)
        check(self.health.req("GET", "/health")[0] > 0, name + ": the demo never answered")
    def logged_mono(self, event):
        for line in open(self.log):
            if '"event":"%s"' % event in line:
                return float(line.split('"mono_ms":')[1].split(",")[0])
        return None
    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill(); rc = -9
        check(rc == 0, "demo exited with %s" % rc)
        if failures:
            sys.stdout.write(open(self.log).read()[-3000:])

def get_json(conn, path):
    st, body = conn.req("GET", path)
    try:
        doc = json.loads(body)
    except ValueError:
        check(False, "%s is not JSON: %r" % (path, body[:200])); doc = {}
    return st, body, doc

def first(conn, path, want, timeout_ms):
    """Poll until path answers want: (time of that answer, body) or (None, body)."""
    until = now() + timeout_ms
    body = ""
    while now() < until:
        st, body, _ = get_json(conn, path)
        t = now()
        if st == want:
            return t, body
        time.sleep(0.002)
    return None, body

# ---- stall + watchdog ----
sock_path = os.path.join(tmp, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(sock_path)
pings = []
def reader():
    while True:
        try:
            msg = ns.recv(4096)
        except OSError:
            return
        if b"WATCHDOG=1" in msg:
            pings.append(now())
threading.Thread(target=reader, daemon=True).start()

d = Demo("stall", {"WORK_MAX_AGE_MS": "500", "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "200000"})
t, _ = first(d.health, "/ready", 200, 10000 * scale)
check(t is not None, "stall: never ready")
time.sleep(0.6)
n = len([p for p in pings if p > now() - 500])
check(n >= 3, "stall: %d WATCHDOG=1 in 500 ms before the stall (one per 100 ms expected)" % n)
st, body, _ = get_json(d.health, "/health")
check(st == 200 and '"work-loop:heartbeat"' in body, "stall: /health before: %d %s" % (st, body))

t_post = now()
st, _ = d.app.req("POST", "/stall?ms=1500")
t_posted = now()
check(st == 202, "stall: POST /stall answered %d" % st)
t503, body = first(d.health, "/health", 503, 5000 * scale)
check(t503 is not None, "stall: /health never failed")
if t503 is not None:
    print("liveness.sh: stall: /health 503 %.0f ms after POST /stall (max age 500)" % (t503 - t_post), flush=True)
    # The loop beats at the top of the iteration that takes the stall: the
    # last beat is within a 10 ms tick of the POST.
    check(t503 - t_post >= 500 - 15, "stall: 503 after %.0f ms, before the max age" % (t503 - t_post))
    check(t503 - t_post <= 500 + 100 * scale, "stall: 503 after %.0f ms, more than max age + 100 ms" % (t503 - t_post))
    check("heartbeat 'work-loop': no beat for " in body and "(max 500 ms)" in body,
          "stall: the body does not name the heartbeat and its age: " + body)
    check(get_json(d.health, "/ready")[0] == 503, "stall: /ready not 503 while the loop is stuck")
t200, body = first(d.health, "/health", 200, 5000 * scale)
check(t200 is not None, "stall: /health never recovered")
if t200 is not None:
    print("liveness.sh: stall: /health 200 again %.0f ms after POST /stall (stall 1500)" % (t200 - t_post), flush=True)
    check(t200 - t_posted >= 1500 - 15, "stall: recovered after %.0f ms, before the stall ended" % (t200 - t_posted))
    check(t200 - t_post <= 1500 + 10 + 50 + 100 * scale, "stall: recovered %.0f ms after the stall began" % (t200 - t_post))
    quiet = [p for p in pings if t_post + 500 + 50 + 100 + 50 * scale < p < t_post + 1500 - 15]
    check(not quiet, "stall: %d WATCHDOG=1 while the loop was stuck" % len(quiet))
    time.sleep(0.4 * scale)
    after = [p for p in pings if p > t200]
    check(len(after) >= 2, "stall: %d WATCHDOG=1 after the loop recovered" % len(after))
    print("liveness.sh: stall: %d pings in total, none between %.0f and %.0f ms after the stall began"
          % (len(pings), 500 + 150 + 50 * scale, 1500 - 15), flush=True)
d.stop()
ns.close()

# ---- manual toggle ----
d = Demo("toggle", {})
check(first(d.health, "/ready", 200, 10000 * scale)[0] is not None, "toggle: never ready")
took = []
for i in range(10):
    st, _ = d.app.req("POST", "/admin/not-ready?reason=deploy%20freeze")
    t0 = now()
    check(st == 200, "toggle: POST /admin/not-ready answered %d" % st)
    st, body, doc = get_json(d.health, "/ready")
    took.append(now() - t0)
    check(st == 503 and doc.get("output") == "not ready: deploy freeze",
          "toggle: the next /ready after not-ready: %d %s" % (st, body))
    check(get_json(d.health, "/health")[0] == 200, "toggle: /health failed with manual not-ready")
    st, _ = d.app.req("POST", "/admin/ready")
    t0 = now()
    st, body, _ = get_json(d.health, "/ready")
    took.append(now() - t0)
    check(st == 200, "toggle: the next /ready after ready: %d %s" % (st, body))
took.sort()
print("liveness.sh: toggle: call answered -> /ready changed: median %.2f ms, max %.2f ms" % (took[len(took) // 2], took[-1]), flush=True)
check(took[len(took) // 2] <= 10 * scale, "toggle: median %.2f ms > 10 ms" % took[len(took) // 2])

# ---- input validation ----
for method, path, want in [("POST", "/stall?ms=60001", 400), ("POST", "/stall?ms=-1", 400),
                           ("POST", "/stall?ms=abc", 400), ("POST", "/stall", 400),
                           ("POST", "/stall?ms=1e3", 400), ("GET", "/stall?ms=10", 405),
                           ("GET", "/admin/ready", 405), ("POST", "/admin/not-ready?reason=a%0Ab", 400)]:
    st, _ = d.app.req(method, path)
    check(st == want, "input: %s %s answered %d, expected %d" % (method, path, st, want))
check(get_json(d.health, "/ready")[0] == 200, "input: a refused request changed readiness")
check(get_json(d.health, "/health")[0] == 200, "input: a refused request stalled the loop")
d.stop()

# ---- startup gate that opens ----
d = Demo("gate", {"STARTUP_DELAY_MS": "400"})
st, body, _ = get_json(d.health, "/ready")
check(st == 503 and "startup gate 'warm-up' not open yet" in body, "gate: /ready at start: %d %s" % (st, body))
t, body = first(d.health, "/ready", 200, 10000 * scale)
check(t is not None and t - d.spawned >= 400,
      "gate: ready %s ms after the process started, before STARTUP_DELAY_MS=400"
      % (None if t is None else round(t - d.spawned)))
d.stop()

# ---- startup gate that never opens, with a deadline ----
# The process starts (spawned) before the library does, and the library logs
# "startup_gates" just after it took its start time.
d = Demo("deadline", {"STARTUP_DELAY_MS": "3600000", "HEALTH_STARTUP_DEADLINE_MS": "800"})
st, body, _ = get_json(d.health, "/health")
check(st == 200 or now() - d.spawned >= 800, "deadline: /health %d before the deadline: %s" % (st, body))
t, body = first(d.health, "/health", 503, 10000 * scale)
started = d.logged_mono("startup_gates")
check(t is not None and started is not None, "deadline: /health never failed")
if t is not None and started is not None:
    print("liveness.sh: deadline: /health 503 %.0f ms after start (deadline 800)" % (t - started), flush=True)
    check(t - d.spawned >= 800, "deadline: liveness failed %.0f ms after the process started, before the deadline" % (t - d.spawned))
    check(t - started <= 800 + 100 * scale, "deadline: liveness failed %.0f ms after start" % (t - started))
    check("startup gate 'warm-up' still closed after the 800 ms startup deadline" in body, "deadline: body " + body)
check(get_json(d.health, "/ready")[0] == 503, "deadline: /ready not 503")
d.stop()

sys.exit(1 if failures else 0)
EOF

python3 "$TMP/liveness.py" "$DEMO" "$top_srcdir" "$TMP"
rc=$?
[ $rc -eq 0 ] && echo "liveness.sh: ok"
exit $rc
