#!/usr/bin/env python3
"""Table for bench/fleet.sh from the servers' own logs.

usage: fleet-report.py WORK

Reads WORK/pg/server.log (log_line_prefix '%m [%p] %a ', UTC),
WORK/monitor.log (redis-cli MONITOR) and WORK/modes.txt (one line per run:
label jitter keep n interval kind up t_start steady_from steady_to cpu_from
cpu_to held restart_at sessions_after_restart sessions_after_stop).
"""
import bisect
import calendar
import re
import sys

work = sys.argv[1]
WIN = 0.1  # seconds

line_re = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) UTC \[(\d+)\] (\S*) ?(\w+):  (.*)$')
pg = []  # (t, pid, app, msg)
for raw in open(work + '/pg/server.log', errors='replace'):
    m = line_re.match(raw.rstrip('\n'))
    if not m:
        continue
    t = calendar.timegm(tuple(int(x) for x in re.split('[- :]', m.group(1))) + (0, 0, 0)) + int(m.group(2)) / 1000
    pg.append((t, int(m.group(3)), m.group(4), m.group(6)))
pings = []
for raw in open(work + '/monitor.log', errors='replace'):
    p = raw.split(' ', 1)
    if len(p) == 2 and p[1].rstrip().endswith('"PING"'):
        try:
            pings.append(float(p[0]))
        except ValueError:
            pass
pings.sort()


def peak(ts):
    """Largest number of events in any sliding window of WIN seconds."""
    best = 0
    for k, t in enumerate(ts):
        best = max(best, bisect.bisect_left(ts, t + WIN - 1e-9) - k)
    return best


def between(ts, a, b):
    return ts[bisect.bisect_left(ts, a):bisect.bisect_left(ts, b)]


ready = [t for t, _, _, msg in pg if 'ready to accept connections' in msg]
selects = sorted(t for t, _, app, msg in pg if app.startswith('fleet-') and msg == 'statement: SELECT 1')
app_re = re.compile(r'application_name=(fleet-\d+)')

runs = {}
for raw in open(work + '/modes.txt'):
    f = raw.split()
    r = dict(label=f[0], jitter=f[1], keep=f[2], n=int(f[3]), iv=int(f[4]), kind=f[5], up=f[6] == '1')
    r['t_start'], r['s0'], r['s1'], r['c0'], r['c1'] = (float(x) for x in f[7:12])
    r['held'], r['r0'], r['after'], r['left'] = int(f[12]), float(f[13]), int(f[14]), int(f[15])
    runs[r['label']] = r


def sessions_max(r, until):
    """Fleet sessions open at once according to the log."""
    opened, most = {}, 0
    for t, pid, app, msg in pg:
        if t < r['t_start'] - 1 or t > until:
            continue
        if 'ready to accept connections' in msg:
            opened = {}
        elif msg.startswith('connection authorized') and app_re.search(msg):
            opened[pid] = 1
        elif msg.startswith('disconnection') and pid in opened:
            del opened[pid]
        most = max(most, len(opened))
    return most


def steady(r):
    span = r['s1'] - r['s0']
    sel, png = between(selects, r['s0'], r['s1']), between(pings, r['s0'], r['s1'])
    r['pg'] = peak(sel) / (len(sel) / (span / WIN)) if sel else float('nan')
    r['rd'] = peak(png) / (len(png) / (span / WIN)) if png else float('nan')
    r['cpu'] = (r['c1'] - r['c0']) * 1000 / len(sel) if sel else float('nan')
    r['rate'] = len(sel) / span if span else float('nan')
    r['most'] = sessions_max(r, r['s1'] + 60)


def restart(r):
    t1 = min((t for t in ready if t > r['r0']), default=None)
    first, tries = {}, []
    for t, pid, app, msg in pg:
        if t1 is None or t < t1 or t > t1 + 60:
            continue
        if msg.startswith('connection received'):
            tries.append(t)
        m = app_re.search(msg) if msg.startswith('connection authorized') else None
        if m and m.group(1) not in first:
            first[m.group(1)] = t
    back = sorted(first.values())
    r['back'] = len(back)
    r['last_ms'] = (back[-1] - t1) * 1000 if back else float('nan')
    r['rs'] = peak(back) / (r['n'] * WIN * 1000 / r['iv']) if back else float('nan')
    r['tries'] = len([t for t in tries if t <= t1 + 2 * r['iv'] / 1000])
    r['most'] = sessions_max(r, r['r0'] + 2 * r['iv'] / 1000 + 30)


ok = True


def mark(good):
    global ok
    if not good:
        ok = False
    return ' ok' if good else ' MISS'


def fmt(x, d=2):
    return 'n/a' if x != x else '%.*f' % (d, x)


print()
print('Fleet simulation, from the servers\' logs (PostgreSQL log_statement/log_connections, Redis MONITOR)')
print()
hdr = ('HEALTH_JITTER', 'steady: pg peak/mean', 'steady: redis peak/mean', 'restart: peak/rate',
       'restart: back (last after ready)', 'sessions max (log)', 'after restart', 'after stop')
print('| ' + ' | '.join(hdr) + ' |')
print('|' + '---|' * len(hdr))
for j in ('off', 'on'):
    st, rs = runs.get('steady-' + j), runs.get('restart-' + j)
    if not st or not rs:
        continue
    target = j == 'on'
    cells = ['%s (N=%d, interval %d ms steady / %d ms restart)' % (j, st['n'], st['iv'], rs['iv'])]
    if st['up']:
        steady(st)
        cells.append(fmt(st['pg']) + (mark(st['pg'] <= 2) if target else ''))
        cells.append(fmt(st['rd']) + (mark(st['rd'] <= 2) if target else ''))
    else:
        cells += ['not all up' + (mark(False) if target else '')] * 2
    if rs['up']:
        restart(rs)
        cells.append(fmt(rs['rs']) + (mark(rs['rs'] <= 3) if target else ''))
        good = rs['back'] == rs['n'] and rs['last_ms'] <= 2 * rs['iv']
        cells.append('%d/%d in %s ms%s' % (rs['back'], rs['n'], fmt(rs['last_ms'], 0),
                                          mark(good) if target else ''))
        most = max(st.get('most', 0), rs['most'])
        cells.append('%d%s' % (most, mark(most <= rs['n'])))
        cells.append('%d%s' % (rs['after'], mark(rs['after'] == rs['n'])))
    else:
        cells += ['not all up' + (mark(False) if target else ''), '-', '-', '-']
    cells.append('%d%s' % (max(st['left'], rs['left']), mark(max(st['left'], rs['left']) == 0)))
    print('| ' + ' | '.join(cells) + ' |')

nk, kp = runs.get('steady-on-nokeep'), runs.get('steady-on-keep')
if nk and kp:
    steady(nk)
    steady(kp)
    print()
    print('Cost of the connection modes (N=%d, interval %d ms, jitter on):' % (nk['n'], nk['iv']))
    print()
    print('| mode | fleet sessions held | server CPU ms per check | checks/s | sessions max (log) | after stop |')
    print('|---|---|---|---|---|---|')
    for name, r in (('kept connection (default)', kp), ('connect, check, close', nk)):
        print('| %s | %d | %s | %s | %d | %d%s |' % (name, r['held'], fmt(r['cpu'], 3), fmt(r['rate'], 1),
                                                  r['most'], r['left'], mark(r['left'] == 0)))
print()
print('peak/mean: the most checks (SELECT 1 / PING) in any sliding 100 ms window over the mean per')
print('100 ms of the steady window (target <= 2 with jitter).  restart: pg-server.sh restart (fast')
print('shutdown, start); peak/rate is the most first reconnections in any 100 ms window after')
print('"ready to accept connections" over the fleet\'s check rate N x 100 ms / interval (target <= 3);')
print('back: replicas reconnected and when the last one was (target: all within 2 intervals).')
print('sessions max: fleet sessions open at once per the log (target <= N); after restart / after')
print('stop: pg_stat_activity (targets N and 0).  Server CPU: postmaster and children, /proc.')
print('RESULT: %s' % ('PASS' if ok else 'MISS'))
sys.exit(0 if ok else 1)
