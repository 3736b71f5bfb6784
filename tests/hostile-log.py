#!/usr/bin/env python3
"""The hostile-environment battery for logging (run by tests/hostile-log.sh).

examples/demo-service with its stdout and stderr in places that do not keep
up, each case failing on a library that writes its log lines on the
caller's thread (issue 23, items 1, 4 and 5):

  stuck     both into a pipe filled with 64 KiB that nobody reads: /ready
            and /health answer within 1 s while a check, readiness and
            liveness change; an acknowledged POST /work; when the pipe is read
            again, a log_dropped line and libhealth_log_lines_dropped_total
            > 0 on /metrics; pipe stuck again, SIGTERM: exit 0 before the
            deadline with the record in FLUSH_FILE.
  slow      the pipe read at 1 KiB/s while readiness changes, next to the
            same demo with a file sink (requests alternate between the two,
            so both see the same machine): /ready's p99 with the slow pipe
            within 2x + 1 ms of the file sink's; both figures printed.
  gone      the reader exits after start-up: no death by SIGPIPE (141)
            while lines keep coming; SIGTERM: exit 0, record flushed.
  closed    started with <&- >&- 2>&-: fds 0-2 hold no pipe, eventfd or
            socket of the library (the demo itself plugs 0-2 with /dev/null
            before its own server); SIGTERM: exit 0, record flushed.

Usage: hostile-log.py DEMO [CASE...]   (default: every case)
Exit 0 pass, 1 fail.  Bounded: every wait has a count and a time limit.
"""
import errno
import fcntl
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SCALE = int(os.environ.get("HEALTH_TEST_TIME_SCALE", "1") or "1")
DEMO = sys.argv[1]
CASES = sys.argv[2:] or ["stuck", "slow", "gone", "closed"]
TMP = tempfile.mkdtemp(prefix="libhealth-hostile-log-")
DEADLINE_MS = 8000
DRAIN_MS = 600
procs = []


def log(msg):
    print("hostile-log: " + msg, flush=True)


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    """Below the ephemeral range, as tests/free-ports.py: a port the kernel
    picks may be taken as a client's source port before the demo binds it."""
    while True:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randint(20000, 32767)))
        except OSError:
            continue
        finally:
            p = s.getsockname()[1]
            s.close()
        return p


def request(port, method, path, timeout=1.0, body=None):
    """(status, body, seconds) or raises on no answer within timeout."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, data, time.monotonic() - t0
    finally:
        c.close()


def filled_pipe():
    """A pipe whose buffer (64 KiB) is full; both ends blocking again."""
    r, w = os.pipe()
    fl = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    n = 0
    try:
        while n < 1 << 20:
            n += os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(w, fcntl.F_SETFL, fl)
    check(n >= 65536, "could not fill the pipe (%d bytes)" % n)
    return r, w


class Demo:
    def __init__(self, name, stdout, stderr, stdin=subprocess.DEVNULL, close_stdio=False, extra=None):
        self.name = name
        self.port = free_port()
        self.hport = free_port()
        while self.hport == self.port:
            self.hport = free_port()
        # The flush file in a directory of its own: the demo's "flush-file"
        # check fails while the directory is renamed away (flip_check()).
        self.flushdir = os.path.join(TMP, name + "-dir")
        os.mkdir(self.flushdir)
        self.flush = os.path.join(self.flushdir, "flush")
        env = dict(os.environ)
        env.update(PORT=str(self.port), HEALTH_PORT=str(self.hport), HEALTH_ADDRESS="127.0.0.1",
                   FLUSH_FILE=self.flush, HEALTH_DRAIN_MS=str(DRAIN_MS),
                   HEALTH_SHUTDOWN_DEADLINE_MS=str(DEADLINE_MS), WORK_MAX_AGE_MS="300",
                   HEALTH_LOG_LEVEL="debug", HEALTH_CHECK_INTERVAL_MS="100",
                   HEALTH_FAILURE_THRESHOLD="1")
        env.pop("HEALTH_DRAIN_MIN_MS", None)
        env.update(extra or {})
        pre = None
        if close_stdio:
            def pre():
                for fd in (0, 1, 2):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            stdin = stdout = stderr = None
        self.p = subprocess.Popen([DEMO], stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                                  preexec_fn=pre, close_fds=True)
        procs.append(self.p)

    def wait_ready(self, seconds=10):
        end = time.monotonic() + seconds * SCALE
        while time.monotonic() < end:
            check(self.p.poll() is None, "%s exited early, status %s" % (self.name, self.p.returncode))
            try:
                if request(self.hport, "GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise Fail("%s never became ready" % self.name)

    def post(self, path, body=None):
        try:
            return request(self.port, "POST", path, timeout=2.0 * SCALE, body=body)[0]
        except OSError as e:
            rc = self.p.poll()
            raise Fail("%s: POST %s: %s (%s)" % (self.name, path, e, "still running" if rc is None else
                                                  "exited, status %d (-13: killed by SIGPIPE)" % rc))

    def toggle(self, n, probe_limit=None):
        """Readiness off and on n times; after each, /ready and /health must
        answer within probe_limit seconds."""
        for i in range(n):
            check(self.post("/admin/not-ready?reason=t%d" % i) == 200, "not-ready refused")
            check(self.post("/admin/ready") == 200, "ready refused")
            if probe_limit:
                for path in ("/ready", "/health"):
                    try:
                        st, _, dt = request(self.hport, "GET", path, timeout=probe_limit)
                    except OSError as e:
                        raise Fail("%s: GET %s gave no answer within %.1f s (%s)" % (self.name, path, probe_limit, e))
                    check(st in (200, 503), "GET %s: %d" % (path, st))

    def flip_check(self, n, probe_limit):
        """The flush-file check fails and passes again n times (its lines
        are logged by the library's check threads); /ready must follow
        within 5 s, and every probe answer within probe_limit seconds."""
        for i in range(n):
            for want, src, dst in ((503, self.flushdir, self.flushdir + ".away"),
                                   (200, self.flushdir + ".away", self.flushdir)):
                os.rename(src, dst)
                end = time.monotonic() + 5 * SCALE
                while True:
                    try:
                        st, _, dt = request(self.hport, "GET", "/ready", timeout=probe_limit)
                        request(self.hport, "GET", "/health", timeout=probe_limit)
                    except OSError as e:
                        raise Fail("%s: a probe gave no answer within %.1f s while the check changed (%s)" %
                                   (self.name, probe_limit, e))
                    if st == want:
                        break
                    check(time.monotonic() < end, "%s: /ready never became %d with the check flipped" % (self.name, want))
                    time.sleep(0.02)

    def work(self, body):
        st = self.post("/work", body.encode())
        check(st == 200, "POST /work answered %d" % st)

    def sigterm_and_check(self, record):
        t0 = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=DEADLINE_MS / 1000.0 + 3 * SCALE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Fail("%s still alive %.1f s after SIGTERM (deadline %d ms)" %
                       (self.name, time.monotonic() - t0, DEADLINE_MS))
        el = time.monotonic() - t0
        check(rc == 0, "%s exit status %d after SIGTERM (141 = SIGPIPE as 128+13, -13 = killed by it)" % (self.name, rc))
        check(el * 1000 < DEADLINE_MS, "%s exited after %.0f ms, past the %d ms deadline" % (self.name, el * 1000, DEADLINE_MS))
        try:
            text = open(self.flush).read()
        except OSError:
            text = ""
        check(record in text.split("\n"), "%s: the acknowledged record is not in FLUSH_FILE" % self.name)
        return el


def reader(fd, rate, stop, got):
    """Read fd at `rate` bytes/s (0: as fast as possible) until stop."""
    os.set_blocking(fd, False)
    while not stop.is_set():
        try:
            b = os.read(fd, rate // 10 if rate else 65536)
            if not b:
                return
            got.append(b)
        except BlockingIOError:
            pass
        time.sleep(0.1 if rate else 0.01)


def case_stuck():
    r, w = filled_pipe()
    d = Demo("stuck", w, w)
    os.close(w)
    d.wait_ready()
    # Readiness and liveness change while nobody reads: every line the
    # library or the demo writes meets a full pipe.
    d.toggle(20, probe_limit=1.0)
    d.flip_check(3, probe_limit=1.0)
    check(d.post("/stall?ms=700") == 202, "stall refused")
    end = time.monotonic() + 1.5 * SCALE
    while time.monotonic() < end:
        try:
            st, _, dt = request(d.hport, "GET", "/health", timeout=1.0)
        except OSError as e:
            raise Fail("GET /health gave no answer within 1 s while the work loop stalled (%s)" % e)
        time.sleep(0.05)
    d.toggle(600)  # more lines than the library's queue holds: some are dropped
    d.work("stuck-record")
    # The sink recovers: a log_dropped line, and the counter.
    stop, got = threading.Event(), []
    t = threading.Thread(target=reader, args=(r, 0, stop, got))
    t.start()
    end = time.monotonic() + 10 * SCALE
    found = False
    while time.monotonic() < end and not found:
        d.toggle(1)
        found = b'"event":"log_dropped"' in b"".join(got)
        time.sleep(0.1)
    check(found, "no log_dropped line after the pipe was read again")
    st, body, _ = request(d.hport, "GET", "/metrics", timeout=2.0)
    m = re.search(rb"\nlibhealth_log_lines_dropped_total (\d+)", body)
    check(m and int(m.group(1)) > 0, "libhealth_log_lines_dropped_total missing or 0 on /metrics")
    log("stuck: dropped lines counted: %s" % m.group(1).decode())
    # Stuck again for the shutdown: the pipe fills while nobody reads.
    stop.set()
    t.join()
    d.toggle(300)
    el = d.sigterm_and_check("stuck-record")
    log("stuck: SIGTERM to exit 0 in %.0f ms with the pipe full" % (el * 1000))
    os.close(r)


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * 0.99))]


def case_slow():
    r, w = filled_pipe()
    slow = Demo("slow", w, w)
    os.close(w)
    f = open(os.path.join(TMP, "file-sink.log"), "wb")
    filed = Demo("file", f, f)
    slow.wait_ready()
    filed.wait_ready()
    stop, got = threading.Event(), []
    t = threading.Thread(target=reader, args=(r, 1024, stop, got))
    t.start()
    # Readiness changes on both, every 50 ms, from another thread.
    quit_toggle = threading.Event()
    errors = []

    def toggler():
        try:
            while not quit_toggle.is_set():
                for d in (slow, filed):
                    d.toggle(1)
                time.sleep(0.05)
        except Exception as e:  # reported below
            errors.append(str(e))

    tt = threading.Thread(target=toggler)
    tt.start()
    lat = {"slow": [], "file": []}
    conns = {d.name: http.client.HTTPConnection("127.0.0.1", d.hport, timeout=5.0) for d in (slow, filed)}
    n = 1500 // SCALE
    try:
        for i in range(n):
            for d in ((slow, filed) if i % 2 else (filed, slow)):
                c = conns[d.name]
                t0 = time.monotonic()
                c.request("GET", "/ready")
                resp = c.getresponse()
                resp.read()
                lat[d.name].append(time.monotonic() - t0)
                check(resp.status in (200, 503), "GET /ready: %d" % resp.status)
    finally:
        quit_toggle.set()
        tt.join()
        stop.set()
        t.join()
        for c in conns.values():
            c.close()
    check(not errors, "toggling readiness failed: %s" % errors[:1])
    ps, pf = p99(lat["slow"]) * 1000, p99(lat["file"]) * 1000
    log("slow: /ready p99 %.3f ms with the pipe read at 1 KiB/s, %.3f ms with a file sink (%d requests each)" % (ps, pf, n))
    check(ps <= 2 * pf + 1.0, "/ready p99 %.3f ms with the slow pipe, above 2 x %.3f + 1 ms" % (ps, pf))
    for d in (slow, filed):
        d.p.send_signal(signal.SIGTERM)
    for d in (slow, filed):
        try:
            d.p.wait(timeout=DEADLINE_MS / 1000.0 + 3 * SCALE)
        except subprocess.TimeoutExpired:
            raise Fail("%s did not exit after SIGTERM" % d.name)
    os.close(r)
    f.close()


def case_gone():
    r, w = os.pipe()
    # The warm-up gate opens 1.5 s after start, on the demo's work loop
    # thread, which logs the library's gate_open line: after the reader
    # has gone (issue 23: rc 141 within 0.3 s).
    d = Demo("gone", w, w, extra={"STARTUP_DELAY_MS": str(1500 * SCALE)})
    os.close(w)
    stop, got = threading.Event(), []
    t = threading.Thread(target=reader, args=(r, 0, stop, got))
    t.start()
    end = time.monotonic() + 10 * SCALE
    while True:
        check(d.p.poll() is None, "the demo exited early, status %s" % d.p.returncode)
        try:
            if request(d.hport, "GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        check(time.monotonic() < end, "the demo's health port never answered")
        time.sleep(0.05)
    stop.set()
    t.join()
    os.close(r)  # the reader is gone: every write now meets EPIPE
    check(request(d.hport, "GET", "/ready")[0] == 503, "ready before the warm-up gate opened")
    d.wait_ready()  # the gate opened, its line written into the broken pipe
    d.toggle(30)
    check(d.post("/stall?ms=500") == 202, "stall refused")
    time.sleep(0.3)  # not synchronisation: lines keep coming meanwhile
    d.toggle(30)
    check(d.p.poll() is None, "the demo died after its log reader went away: status %s" % d.p.returncode)
    d.work("gone-record")
    el = d.sigterm_and_check("gone-record")
    log("gone: reader gone, SIGTERM to exit 0 in %.0f ms" % (el * 1000))


def fd_kind(pid, fd):
    try:
        return os.readlink("/proc/%d/fd/%d" % (pid, fd))
    except OSError as e:
        return None if e.errno == errno.ENOENT else "?"


def case_closed():
    d = Demo("closed", None, None, close_stdio=True)
    d.wait_ready()
    d.toggle(10)
    bad = []
    for fd in (0, 1, 2):
        k = fd_kind(d.p.pid, fd)
        if k is not None and k != "/dev/null":
            bad.append("%d -> %s" % (fd, k))
    check(not bad, "started with stdio closed, fds 0-2 hold: %s" % ", ".join(bad))
    st = request(d.hport, "GET", "/ready")[0]
    check(st == 200, "/ready %d before any SIGTERM (the drain pipe readable?)" % st)
    d.work("closed-record")
    el = d.sigterm_and_check("closed-record")
    log("closed: stdio closed, SIGTERM to exit 0 in %.0f ms" % (el * 1000))


def main():
    failed = 0
    for c in CASES:
        try:
            globals()["case_" + c]()
            log("%s: ok" % c)
        except Fail as e:
            log("FAIL: %s: %s" % (c, e))
            failed += 1
        except Exception as e:  # a refused connection, a timeout: the demo is gone or stuck
            log("FAIL: %s: %s: %s" % (c, type(e).__name__, e))
            failed += 1
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            procs.clear()
    subprocess.call(["rm", "-rf", TMP])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
