#!/usr/bin/env python3
"""Table for bench/fleet.sh from the servers' own logs.

usage: fleet-report.py WORK N INTERVAL_MS

Reads WORK/pg/server.log (log_line_prefix '%m [%p] %a ', UTC),
WORK/monitor.log (redis-cli MONITOR) and WORK/modes.txt (one line per mode:
label jitter keep t_start steady_from steady_to cpu_from cpu_to held
restart_at sessions_after_restart sessions_after_stop).
"""
import bisect
import calendar
import re
import sys

work, N, I = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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

rows, ok = [], True
for raw in open(work + '/modes.txt'):
    f = raw.split()
    label, jitter, keep = f[0], f[1], f[2]
    t_start, s0, s1, c0, c1 = (float(x) for x in f[3:8])
    held, r0, after, left = int(f[8]), float(f[9]), int(f[10]), int(f[11])
    span = s1 - s0
    sel = between(selects, s0, s1)
    png = between(pings, s0, s1)
    pg_ratio = peak(sel) / (len(sel) / (span / WIN)) if sel else float('nan')
    rd_ratio = peak(png) / (len(png) / (span / WIN)) if png else float('nan')
    cpu_ms = (c1 - c0) * 1000 / len(sel) if sel else float('nan')
    # Sessions open at once, from connection authorized / disconnection.
    end = r0 + 2 * I / 1000 + 30 if r0 else s1 + 30
    opened, most = {}, 0
    for t, pid, app, msg in pg:
        if t < t_start - 1 or t > end:
            continue
        if 'ready to accept connections' in msg:
            opened = {}
        elif msg.startswith('connection authorized') and app_re.search(msg):
            opened[pid] = 1
        elif msg.startswith('disconnection') and pid in opened:
            del opened[pid]
        most = max(most, len(opened))
    row = dict(label=label, jitter=jitter, keep=keep, n_sel=len(sel), pg=pg_ratio, rd=rd_ratio,
               cpu=cpu_ms, held=held, most=most, after=after, left=left)
    if r0:
        t1 = min((t for t in ready if t > r0), default=None)
        first = {}
        for t, pid, app, msg in pg:
            if t1 is None or t < t1 or t > t1 + 30:
                continue
            m = app_re.search(msg) if msg.startswith('connection authorized') else None
            if m and m.group(1) not in first:
                first[m.group(1)] = t
        back = sorted(first.values())
        row['back'] = len(back)
        row['last_ms'] = (back[-1] - t1) * 1000 if back else float('nan')
        row['rs'] = peak(back) / (N * WIN * 1000 / I) if back else float('nan')
    rows.append(row)


def mark(good):
    global ok
    if good is None:
        return ''
    if not good:
        ok = False
    return ' ok' if good else ' MISS'


print()
print('Fleet: N=%d replicas, interval %d ms, one PostgreSQL and one Redis (from the servers\' logs)' % (N, I))
print()
hdr = ('mode', 'steady pg peak/mean', 'steady redis peak/mean', 'restart peak/rate',
       'back after restart', 'sessions max (log)', 'after restart', 'after stop',
       'server CPU ms/check', 'held')
print('| ' + ' | '.join(hdr) + ' |')
print('|' + '---|' * len(hdr))
for r in rows:
    on = r['jitter'] != 'off'
    label = 'jitter %s%s' % (r['jitter'], '' if r['keep'] == '1' else ', no kept connection')
    cells = [label,
             '%.2f%s' % (r['pg'], mark(r['pg'] <= 2) if on else ''),
             '%.2f%s' % (r['rd'], mark(r['rd'] <= 2) if on else '')]
    if 'back' in r:
        cells.append('%.2f%s' % (r['rs'], mark(r['rs'] <= 3) if on else ''))
        cells.append('%d/%d in %.0f ms%s' % (r['back'], N, r['last_ms'],
                                             mark(r['back'] == N and r['last_ms'] <= 2 * I)))
        cells.append('%d%s' % (r['most'], mark(r['most'] <= N)))
        cells.append('%d%s' % (r['after'], mark(r['after'] == N)))
    else:
        cells += ['-', '-', '%d%s' % (r['most'], mark(r['most'] <= N)), '-']
    cells.append('%d%s' % (r['left'], mark(r['left'] == 0)))
    cells.append('%.3f' % r['cpu'])
    cells.append('%d' % r['held'])
    print('| ' + ' | '.join(cells) + ' |')
print()
print('peak/mean: the most checks in any sliding 100 ms window over the mean per 100 ms of the')
print('steady window (target <= 2 with jitter).  restart peak/rate: the most first reconnections')
print('in any 100 ms window after "ready to accept connections" over the fleet\'s steady rate')
print('N x 100 / interval (target <= 3); back: replicas reconnected and when the last one was')
print('(target: all within 2 intervals).  sessions: fleet sessions open at once per the log')
print('(<= N), pg_stat_activity after the restart (= N) and after the fleet stopped (= 0).')
print('server CPU: postmaster and children per SELECT 1; held: fleet sessions mid-window.')
print('RESULT: %s' % ('PASS' if ok else 'MISS'))
sys.exit(0 if ok else 1)
