/*
 * /metrics: the Prometheus text exposition format 0.0.4, or OpenMetrics 1.0
 * when the scraper asks for it.  Rendered with h->lock held, once per
 * change of state (http/answer_cache.c caches the body), never once per request.
 *
 * Every number is formatted here from integers (counts, microseconds,
 * milliseconds), never with printf's %f/%g: the output is exact and does
 * not depend on LC_NUMERIC, and a 100-check body renders in microseconds.
 *
 * Names follow the Prometheus conventions: base units (seconds), counters
 * ending in _total, a state as one series per possible value with 1 on the
 * current one (the "enum" idiom), so `libhealth_check_status{status="fail"}
 * == 1` selects failing checks.
 */
#include "http/obs.h"

#include <stdlib.h>
#include <string.h>

/* ---- numbers, whatever the locale ---- */

static size_t put_u64(char *p, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

/* `whole` "." `frac` (frac < 10^digits), trailing zeros of the fraction
 * dropped, no point at all for a whole number. */
static size_t put_fixed(char *p, uint64_t whole, uint64_t frac, int digits) {
  size_t n = put_u64(p, whole);
  if (frac == 0) return n;
  char f[8];
  for (int i = digits - 1; i >= 0; i--, frac /= 10) f[i] = (char)('0' + frac % 10);
  int len = digits;
  while (len > 0 && f[len - 1] == '0') len--;
  p[n++] = '.';
  memcpy(p + n, f, (size_t)len);
  return n + (size_t)len;
}

/* ---- lines ---- */

typedef struct {
  health__buf_t *b;
  int om; /* OpenMetrics */
} out_t;

/* # HELP / # TYPE (and # UNIT in OpenMetrics) of a family.  For counters
 * `name` is the family name without _total: OpenMetrics names the family
 * so and its sample with _total, the 0.0.4 format names both with _total. */
static void family(out_t *o, const char *name, const char *type, const char *help) {
  int counter = strcmp(type, "counter") == 0;
  int info = strcmp(type, "info") == 0;
  const char *suffix = "";
  if (!o->om && counter) suffix = "_total";
  if (!o->om && info) suffix = "_info", type = "gauge";
  health__buf_adds(o->b, "# HELP ");
  health__buf_adds(o->b, name);
  health__buf_adds(o->b, suffix);
  health__buf_adds(o->b, " ");
  health__buf_adds(o->b, help);
  health__buf_adds(o->b, "\n# TYPE ");
  health__buf_adds(o->b, name);
  health__buf_adds(o->b, suffix);
  health__buf_adds(o->b, " ");
  health__buf_adds(o->b, type);
  health__buf_adds(o->b, "\n");
  size_t n = strlen(name);
  if (o->om && n > 8 && strcmp(name + n - 8, "_seconds") == 0) {
    health__buf_adds(o->b, "# UNIT ");
    health__buf_adds(o->b, name);
    health__buf_adds(o->b, " seconds\n");
  }
}

/* name{check="C"<extra>} value\n, built in one piece.  Check names are
 * [A-Za-z0-9._-] (engine/registry.c), so they need no escaping in a label value. */
static void sample(out_t *o, const char *name, const char *check, const char *extra,
                   const char *value, size_t vlen) {
  char line[320];
  size_t n = strlen(name), k;
  memcpy(line, name, n);
  if (check || extra) {
    line[n++] = '{';
    if (check) {
      memcpy(line + n, "check=\"", 7), n += 7;
      k = strlen(check);
      memcpy(line + n, check, k), n += k;
      line[n++] = '"';
    }
    if (extra) {
      if (check) line[n++] = ',';
      k = strlen(extra);
      memcpy(line + n, extra, k), n += k;
    }
    line[n++] = '}';
  }
  line[n++] = ' ';
  memcpy(line + n, value, vlen), n += vlen;
  line[n++] = '\n';
  health__buf_add(o->b, line, n);
}

static void sample_u64(out_t *o, const char *name, const char *check, const char *extra,
                       uint64_t v) {
  char num[24];
  sample(o, name, check, extra, num, put_u64(num, v));
}

/* ---- the body ---- */

static void process_families(health_t *h, out_t *o, uint64_t now) {
  family(o, "libhealth_build", "info", "Version of libhealth serving these metrics.");
  sample(o, "libhealth_build_info", NULL, "version=\"" HEALTH_VERSION_STRING "\"", "1", 1);

  family(
      o, "libhealth_endpoint_status", "gauge",
      "Status the endpoint answers: 1 for the current status (pass and warn answer 200, fail 503).");
  static const char *const ep_label[2][3] = {
      {"endpoint=\"readiness\",status=\"pass\"", "endpoint=\"readiness\",status=\"warn\"",
       "endpoint=\"readiness\",status=\"fail\""},
      {"endpoint=\"liveness\",status=\"pass\"", "endpoint=\"liveness\",status=\"warn\"",
       "endpoint=\"liveness\",status=\"fail\""}};
  for (int e = 0; e < 2; e++) {
    health_status_t st =
        health__aggregate_locked(h, e == 0 ? HEALTH_READINESS : HEALTH_LIVENESS, now, NULL);
    for (int s = 0; s < 3; s++)
      sample(o, "libhealth_endpoint_status", NULL, ep_label[e][s], (int)st == s ? "1" : "0", 1);
  }

  family(o, "libhealth_draining", "gauge",
         "1 once the shutdown sequence has started (readiness fails).");
  sample(o, "libhealth_draining", NULL, NULL, health__draining(h) ? "1" : "0", 1);

  family(
      o, "libhealth_signal_handler_replaced", "gauge",
      "1 while a handler installed after start has replaced the library's (the signal starts no shutdown).");
  int lost = health__signals_lost(h);
  sample(o, "libhealth_signal_handler_replaced", NULL, "signal=\"SIGTERM\"", lost & 1 ? "1" : "0",
         1);
  sample(o, "libhealth_signal_handler_replaced", NULL, "signal=\"SIGINT\"", lost & 2 ? "1" : "0",
         1);

  family(o, "libhealth_shutdown_phase", "gauge",
         "Phase of the shutdown sequence: 1 for the current one.");
  static const char *const phases[4] = {"phase=\"running\"", "phase=\"draining\"",
                                        "phase=\"flushing\"", "phase=\"done\""};
  int ph = atomic_load(&h->obs->phase);
  if (ph == HEALTH__PHASE_RUNNING && health__draining(h)) ph = HEALTH__PHASE_DRAINING;
  for (int i = 0; i < 4; i++)
    sample(o, "libhealth_shutdown_phase", NULL, phases[i], ph == i ? "1" : "0", 1);

  family(o, "libhealth_requests_in_flight", "gauge",
         "Application requests in flight, as reported by health_inflight_begin/end.");
  int infl = health__inflight(h);
  char num[24];
  size_t n = 0;
  if (infl < 0) num[n++] = '-';
  n += put_u64(num + n, infl < 0 ? (uint64_t)(-(int64_t)infl) : (uint64_t)infl);
  sample(o, "libhealth_requests_in_flight", NULL, NULL, num, n);

  family(o, "libhealth_listener_events_dropped", "counter",
         "Status-listener events dropped because the listener queue was full.");
  sample_u64(o, "libhealth_listener_events_dropped_total", NULL, NULL,
             (uint64_t)atomic_load(&h->obs->dropped));
  family(
      o, "libhealth_log_lines_dropped", "counter",
      "Log lines dropped because the log sink did not keep up (queue full, sink stuck or gone).");
  sample_u64(o, "libhealth_log_lines_dropped_total", NULL, NULL, health__log_dropped(h));

  /* The health port guard's published counters (http/http_int.h); zero when the
   * port is off. */
  const health__guard_counts_t *gc = &h->http.guard_counts;
  unsigned long evicted = atomic_load(&gc->evicted), reaped = atomic_load(&gc->reaped),
                emfile = atomic_load(&gc->emfile);
  family(o, "libhealth_http_connections_evicted", "counter",
         "Health-port connections closed to make room at the connection cap.");
  sample_u64(o, "libhealth_http_connections_evicted_total", NULL, NULL, evicted);
  family(o, "libhealth_http_connections_reaped", "counter",
         "Health-port connections closed for not sending a complete request head in time.");
  sample_u64(o, "libhealth_http_connections_reaped_total", NULL, NULL, reaped);
  family(o, "libhealth_http_accept_emfile", "counter",
         "Times the health port ran out of file descriptors while accepting.");
  sample_u64(o, "libhealth_http_accept_emfile_total", NULL, NULL, emfile);
}

/*
 * Per-check series: 100 checks make about 2,400 lines, so these are
 * written straight into the buffer (room reserved once per family) from
 * pieces whose lengths are known, without a strlen or a bounds check per
 * piece: about 10 ns a line instead of 50.
 */
#define NAME_ROOM (HEALTH__NAME_MAX + 96) /* a line's check name, labels and value */

/* Room for n more bytes; NULL once an allocation failed. */
static char *reserve(health__buf_t *b, size_t n) {
  if (b->failed) return NULL;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      b->failed = 1;
      return NULL;
    }
    b->data = d;
    b->cap = cap;
  }
  return b->data + b->len;
}

typedef struct {
  const char *s;
  size_t n;
} piece_t;
#define PIECE(lit) \
  { lit, sizeof lit - 1 }

/* `prefix` NAME `mid` VALUE "\n": prefix ends in `check="`, mid starts with
 * the closing quote and ends with "} ". */
static inline char *line(char *p, piece_t prefix, const char *name, size_t nlen, piece_t mid) {
  memcpy(p, prefix.s, prefix.n);
  p += prefix.n;
  memcpy(p, name, nlen);
  p += nlen;
  memcpy(p, mid.s, mid.n);
  return p + mid.n;
}

/* The check's name length, measured once (names never change). */
static inline size_t name_len(const health__check_t *c) {
  health__check_obs_t *o = (health__check_obs_t *)&c->obs;
  if (!o->name_len) o->name_len = strlen(c->name);
  return o->name_len;
}

static inline char *end_u64(char *p, uint64_t v) {
  p += put_u64(p, v);
  *p++ = '\n';
  return p;
}

static inline char *end_us(char *p, uint64_t us) {
  p += put_fixed(p, us / 1000000u, us % 1000000u, 6);
  *p++ = '\n';
  return p;
}

/* A simple family: one series per check, value from `get`. */
typedef enum { V_CRITICAL, V_CONSEC, V_RUNS, V_FAILURES, V_TIMEOUTS, V_LAST_DURATION } val_t;

static void per_check(health_t *h, out_t *o, const char *fam, const char *type, const char *help,
                      piece_t prefix, val_t what) {
  family(o, fam, type, help);
  health__buf_t *b = o->b;
  char *p0 = reserve(b, health__checks_count_locked(h) * (prefix.n + NAME_ROOM)), *p = p0;
  if (!p) return;
  static const piece_t close = PIECE("\"} ");
  const health__check_t *c;
  for (size_t i = 0; (c = health__check_at_locked(h, i)); i++) {
    p = line(p, prefix, c->name, name_len(c), close);
    switch (what) {
      case V_CRITICAL: p = end_u64(p, c->critical ? 1 : 0); break;
      case V_CONSEC: p = end_u64(p, c->consecutive_failures); break;
      case V_RUNS: p = end_u64(p, c->runs); break;
      case V_FAILURES: p = end_u64(p, c->obs.failures); break;
      case V_TIMEOUTS: p = end_u64(p, c->obs.timeouts); break;
      case V_LAST_DURATION: p = end_us(p, c->obs.last_duration_us); break;
    }
  }
  b->len += (size_t)(p - p0);
  b->data[b->len] = 0;
}

static void check_families(health_t *h, out_t *o, uint64_t now) {
  size_t nc = health__checks_count_locked(h);
  health__buf_t *b = o->b;
  char *p0, *p;

  family(
      o, "libhealth_check_status", "gauge",
      "Effective status of the check after thresholds (a stale result counts as fail): 1 for the current one.");
  static const piece_t st_prefix = PIECE("libhealth_check_status{check=\"");
  static const piece_t st_mid[4] = {PIECE("\",status=\"pass\"} "), PIECE("\",status=\"warn\"} "),
                                    PIECE("\",status=\"fail\"} "),
                                    PIECE("\",status=\"pending\"} ")};
  if ((p0 = p = reserve(b, nc * 4 * (st_prefix.n + NAME_ROOM)))) {
    for (size_t i = 0; i < nc; i++) {
      const health__check_t *c = health__check_at_locked(h, i);
      size_t nl = name_len(c);
      health_status_t s = health__check_status_locked(h, c, now, NULL);
      for (int k = 0; k < 4; k++) {
        p = line(p, st_prefix, c->name, nl, st_mid[k]);
        *p++ = (int)s == k ? '1' : '0';
        *p++ = '\n';
      }
    }
    b->len += (size_t)(p - p0);
    b->data[b->len] = 0;
  }
  per_check(h, o, "libhealth_check_critical", "gauge",
            "1 if a failure of the check fails the endpoint (503), 0 if it only warns.",
            (piece_t)PIECE("libhealth_check_critical{check=\""), V_CRITICAL);
  per_check(h, o, "libhealth_check_consecutive_failures", "gauge", "Failed runs in a row.",
            (piece_t)PIECE("libhealth_check_consecutive_failures{check=\""), V_CONSEC);
  per_check(h, o, "libhealth_check_runs", "counter", "Completed runs, timed-out ones included.",
            (piece_t)PIECE("libhealth_check_runs_total{check=\""), V_RUNS);
  per_check(h, o, "libhealth_check_failures", "counter",
            "Runs that failed, timed-out ones included.",
            (piece_t)PIECE("libhealth_check_failures_total{check=\""), V_FAILURES);
  per_check(h, o, "libhealth_check_timeouts", "counter", "Runs cut off at their deadline.",
            (piece_t)PIECE("libhealth_check_timeouts_total{check=\""), V_TIMEOUTS);
  per_check(h, o, "libhealth_check_last_duration_seconds", "gauge",
            "Duration of the last run (the timeout for a run cut off at its deadline).",
            (piece_t)PIECE("libhealth_check_last_duration_seconds{check=\""), V_LAST_DURATION);

  family(
      o, "libhealth_check_last_success_timestamp_seconds", "gauge",
      "When the last run that passed or warned completed, seconds since the epoch (absent before the first).");
  static const piece_t ls_prefix = PIECE("libhealth_check_last_success_timestamp_seconds{check=\"");
  static const piece_t close = PIECE("\"} ");
  if ((p0 = p = reserve(b, nc * (ls_prefix.n + NAME_ROOM)))) {
    for (size_t i = 0; i < nc; i++) {
      const health__check_t *c = health__check_at_locked(h, i);
      int64_t ms = c->obs.last_success_wall_ms;
      if (ms <= 0) continue;
      p = line(p, ls_prefix, c->name, name_len(c), close);
      p += put_fixed(p, (uint64_t)ms / 1000u, (uint64_t)ms % 1000u, 3);
      *p++ = '\n';
    }
    b->len += (size_t)(p - p0);
    b->data[b->len] = 0;
  }

  family(o, "libhealth_check_duration_seconds", "histogram", "Durations of the runs.");
  static const piece_t bk_prefix = PIECE("libhealth_check_duration_seconds_bucket{check=\"");
  static const piece_t sum_prefix = PIECE("libhealth_check_duration_seconds_sum{check=\"");
  static const piece_t cnt_prefix = PIECE("libhealth_check_duration_seconds_count{check=\"");
  static const piece_t le[HEALTH__BUCKETS + 1] = {
      PIECE("\",le=\"0.001\"} "), PIECE("\",le=\"0.005\"} "), PIECE("\",le=\"0.025\"} "),
      PIECE("\",le=\"0.1\"} "),   PIECE("\",le=\"0.5\"} "),   PIECE("\",le=\"2.5\"} "),
      PIECE("\",le=\"10.0\"} "),  PIECE("\",le=\"+Inf\"} ")};
  if ((p0 = p = reserve(b, nc * (HEALTH__BUCKETS + 3) * (bk_prefix.n + NAME_ROOM)))) {
    for (size_t i = 0; i < nc; i++) {
      const health__check_t *c = health__check_at_locked(h, i);
      const health__check_obs_t *ob = &c->obs;
      size_t nl = name_len(c);
      uint64_t cum = 0;
      for (int k = 0; k < HEALTH__BUCKETS; k++) {
        cum += ob->bucket[k];
        p = end_u64(line(p, bk_prefix, c->name, nl, le[k]), cum);
      }
      p = end_u64(line(p, bk_prefix, c->name, nl, le[HEALTH__BUCKETS]), ob->count);
      p = end_us(line(p, sum_prefix, c->name, nl, close), ob->sum_us);
      p = end_u64(line(p, cnt_prefix, c->name, nl, close), ob->count);
    }
    b->len += (size_t)(p - p0);
    b->data[b->len] = 0;
  }
}

void health__metrics_render_locked(health_t *h, int openmetrics, int status_only, uint64_t now,
                                   health__buf_t *b) {
  out_t o = {b, openmetrics};
  process_families(h, &o, now);
  if (!status_only) check_families(h, &o, now);
  if (openmetrics) health__buf_adds(b, "# EOF\n");
}

/* ---- the shutdown phase ---- */

void health__obs_phase(health_t *h, int phase) {
  if (!h->obs) return;
  atomic_store(&h->obs->phase, phase);
  health__version_bump(h); /* the phase shows in /metrics */
}
