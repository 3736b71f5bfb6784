"""Drive the examples through a SIGTERM with a request in flight.

Usage: shapes.py libevent|prefork|cpp BUILDDIR SRCDIR TMPDIR
  libevent  examples/libevent-service: a /slow request in flight and the
            loop stalled (POST /stall) when SIGTERM comes: /ready 503 on the
            health port within 200 ms although the loop is busy, the slow
            request answered 200, exit 0, the recorded body flushed, the code
            after event_base_dispatch() ran.
  prefork   examples/prefork-service (2 workers): SIGTERM to a worker leaves
            the master ready (the worker is replaced); then a /slow request in
            flight in a worker when the master gets SIGTERM: /ready 503
            within 200 ms, the request answered, exit 0, the body a worker
            acknowledged is in FLUSH_FILE, no worker left, the health port
            refused.
  cpp       examples/minimal-cpp11 and -cpp17: ready, SIGTERM, exit 0, the
            hook ran.
HEALTH_TEST_TIME_SCALE widens the margins (not the 200 ms bound's meaning:
it is scaled like every other margin).  Exit 0 passed, 1 failed.
"""
import errno, http.client, json, os, signal, socket, subprocess, sys, threading, time

mode, builddir, srcdir, tmp = sys.argv[1:5]
scale = int(os.environ.get("HEALTH_TEST_TIME_SCALE", "1") or 1)
failures = []
procs = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("shapes.py %s: FAIL: %s" % (mode, what), flush=True)


def now():
    return time.monotonic() * 1000.0


def ports(n):
    out = subprocess.check_output([sys.executable, os.path.join(srcdir, "tests/free-ports.py"), str(n)])
    return [int(p) for p in out.split()]


def request(port, method, path, body=None, timeout=5.0):
    """(status, body) or (None, error)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)


def status(port, path):
    return request(port, "GET", path, timeout=1.0)[0]


def wait_for(cond, ms, what):
    end = now() + ms * scale
    while now() < end:
        if cond():
            return True
        time.sleep(0.01)
    check(False, what)
    return False


def start(binary, env_extra, log):
    for attempt in range(5):
        port, hport = ports(2)
        env = dict(os.environ)
        env.update({"PORT": str(port), "HEALTH_PORT": str(hport), "HEALTH_ADDRESS": "127.0.0.1"})
        env.update(env_extra)
        out = open(log, "w")
        p = subprocess.Popen([binary], env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(p)
        end = now() + 10000 * scale
        while now() < end and p.poll() is None:
            if status(hport, "/ready") == 200:
                return p, port, hport
            time.sleep(0.02)
        p.kill()
        p.wait()
        if "Address already in use" not in open(log).read():
            break
    print(open(log).read())
    check(False, "%s never became ready" % binary)
    raise SystemExit(1)


def in_thread(fn, *args):
    box = {}
    t = threading.Thread(target=lambda: box.update(r=fn(*args)))
    t.start()
    return t, box


def sigterm_503(p, hport):
    """SIGTERM; ms until the health port's /ready answers 503."""
    t0 = now()
    p.send_signal(signal.SIGTERM)
    end = t0 + 5000 * scale
    while now() < end:
        if status(hport, "/ready") == 503:
            return now() - t0
        time.sleep(0.005)
    return None


def exit_code(p, ms):
    try:
        return p.wait(timeout=ms * scale / 1000.0)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return "still running after %d ms" % (ms * scale)


def log_events(log):
    ev = []
    for line in open(log):
        try:
            ev.append(json.loads(line))
        except ValueError:
            pass
    return ev


def inflight(hport):
    code, body = request(hport, "GET", "/metrics", timeout=1.0)
    for line in (body.decode() if code == 200 else "").splitlines():
        if line.startswith("libhealth_requests_in_flight "):
            return int(line.split()[1])
    return -1


def run_libevent():
    binary = os.path.join(builddir, "examples/libevent-service")
    if not os.access(binary, os.X_OK):
        print("shapes.py libevent: not built (no libevent), skipping")
        raise SystemExit(77)
    log, flush = os.path.join(tmp, "libevent.log"), os.path.join(tmp, "libevent.flush")
    p, port, hport = start(binary, {"FLUSH_FILE": flush, "HEALTH_DRAIN_MS": "4000",
                                    "HEALTH_DRAIN_MIN_MS": "300"}, log)
    check(request(port, "POST", "/work", body=b"record-one")[0] == 200, "POST /work not recorded")
    slow, slow_r = in_thread(request, port, "GET", "/slow?ms=1500", None, 20.0)
    wait_for(lambda: inflight(hport) == 1, 3000, "the slow request never got in flight")
    stall, stall_r = in_thread(request, port, "POST", "/stall?ms=1000", None, 20.0)
    # The loop is stuck once a GET / gets no answer within 200 ms.
    wait_for(lambda: request(port, "GET", "/", timeout=0.2)[0] is None, 3000, "the loop never stalled")
    took = sigterm_503(p, hport)
    check(took is not None and took <= 200 * scale, "/ready 503 took %s ms (bound 200)" % took)
    slow.join(30)
    stall.join(30)
    check(slow_r.get("r", (None,))[0] == 200, "in-flight /slow not answered 200: %s" % (slow_r.get("r"),))
    check(stall_r.get("r", (None,))[0] == 200, "/stall not answered 200: %s" % (stall_r.get("r"),))
    rc = exit_code(p, 15000)
    check(rc == 0, "exit code %s" % rc)
    check(os.path.exists(flush) and "record-one" in open(flush).read(), "the recorded body was not flushed")
    names = [e.get("event") for e in log_events(log)]
    check("loop_ended" in names, "the code after event_base_dispatch() never ran")
    print("libevent: /ready 503 after %.1f ms with the loop stalled" % (took or -1))


def worker_pids(log):
    return [int(e["message"].split()[3]) for e in log_events(log) if e.get("event") == "worker_started"]


def run_prefork():
    binary = os.path.join(builddir, "examples/prefork-service")
    log, flush = os.path.join(tmp, "prefork.log"), os.path.join(tmp, "prefork.flush")
    p, port, hport = start(binary, {"FLUSH_FILE": flush, "WORKERS": "2", "HEALTH_DRAIN_MS": "1000",
                                    "WORKER_MAX_AGE_MS": "1000"}, log)
    first = worker_pids(log)
    check(len(first) == 2, "expected 2 workers before readiness, log names %s" % first)
    # SIGTERM to a worker: an orderly stop, replaced; the master stays ready.
    os.kill(first[0], signal.SIGTERM)
    wait_for(lambda: len(worker_pids(log)) == 3, 3000, "the stopped worker was not replaced")
    end = now() + 1000 * scale
    seen = set()
    while now() < end:
        seen.add(status(hport, "/ready"))
        time.sleep(0.02)
    check(seen == {200}, "/ready after SIGTERM to a worker: %s" % sorted(map(str, seen)))
    names = [e.get("event") for e in log_events(log)]
    check("shutdown_started" not in names, "SIGTERM to a worker started the master's shutdown")
    # The master's SIGTERM with a request in flight in a worker.
    check(request(port, "POST", "/work", body=b"record-two")[0] == 200, "POST /work not recorded")
    slow, slow_r = in_thread(request, port, "GET", "/slow?ms=1500", None, 20.0)
    time.sleep(0.2)  # sent before the signal; workers serve through the drain either way
    took = sigterm_503(p, hport)
    check(took is not None and took <= 200 * scale, "/ready 503 took %s ms (bound 200)" % took)
    slow.join(30)
    check(slow_r.get("r", (None,))[0] == 200, "in-flight /slow not answered 200: %s" % (slow_r.get("r"),))
    rc = exit_code(p, 20000)
    check(rc == 0, "exit code %s" % rc)
    check(os.path.exists(flush) and "record-two" in open(flush).read(), "the acknowledged body is not in FLUSH_FILE")
    for pid in worker_pids(log):
        try:
            os.kill(pid, 0)
            check(False, "worker %d outlived the master" % pid)
        except ProcessLookupError:
            pass
    s = socket.socket()
    s.settimeout(2)
    e = s.connect_ex(("127.0.0.1", hport))
    s.close()
    check(e == errno.ECONNREFUSED, "health port after exit: %s, want ECONNREFUSED" % errno.errorcode.get(e, e))
    print("prefork: /ready 503 after %.1f ms" % (took or -1))


def run_cpp():
    for name in ("minimal-cpp11", "minimal-cpp17"):
        binary = os.path.join(builddir, "examples", name)
        if not os.access(binary, os.X_OK):
            print("shapes.py cpp: %s not built (no C++ compiler), skipping" % name)
            raise SystemExit(77)
        log, flush = os.path.join(tmp, name + ".log"), os.path.join(tmp, name + ".flush")
        p, port, hport = start(binary, {"FLUSH_FILE": flush, "HEALTH_EXIT": "0", "HEALTH_DRAIN_MS": "100"}, log)
        took = sigterm_503(p, hport)
        check(took is not None, "%s: /ready never 503" % name)
        rc = exit_code(p, 10000)
        check(rc == 0, "%s: exit code %s" % (name, rc))
        check(os.path.exists(flush) and open(flush).read() == "flushed\n", "%s: the hook did not run" % name)


try:
    {"libevent": run_libevent, "prefork": run_prefork, "cpp": run_cpp}[mode]()
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
sys.exit(1 if failures else 0)
