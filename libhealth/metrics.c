/*
 * /metrics: the Prometheus text exposition format 0.0.4, or OpenMetrics 1.0
 * when the scraper asks for it.  Rendered with h->lock held, once per
 * change of state (serve.c caches the body), never once per request.
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
#include "obs.h"

#include <string.h>

/* Upper bounds of the duration histogram, in microseconds and as written
 * in the le label: Prometheus' default buckets. */
static const uint64_t bucket_us[HEALTH__BUCKETS] = {5000,   10000,   25000,   50000,
                                                    100000, 250000,  500000,  1000000,
                                                    2500000, 5000000, 10000000};
static const char *const bucket_le[HEALTH__BUCKETS] = {"0.005", "0.01", "0.025", "0.05",
                                                       "0.1",   "0.25", "0.5",   "1.0",
                                                       "2.5",   "5.0",  "10.0"};

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

void health__metrics_seconds(health__buf_t *b, uint64_t us) {
  char tmp[32];
  health__buf_add(b, tmp, put_fixed(tmp, us / 1000000u, us % 1000000u, 6));
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
 * [A-Za-z0-9._-] (checks.c), so they need no escaping in a label value. */
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

static void sample_us(out_t *o, const char *name, const char *check, const char *extra,
                      uint64_t us) {
  char num[32];
  sample(o, name, check, extra, num, put_fixed(num, us / 1000000u, us % 1000000u, 6));
}

/* ---- the body ---- */

static const char *const status_label[4] = {"status=\"pass\"", "status=\"warn\"",
                                            "status=\"fail\"", "status=\"pending\""};

static void process_families(health_t *h, out_t *o, uint64_t now) {
  family(o, "libhealth_build", "info", "Version of libhealth serving these metrics.");
  sample(o, "libhealth_build_info", NULL, "version=\"" HEALTH_VERSION_STRING "\"", "1", 1);

  family(o, "libhealth_endpoint_status", "gauge",
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

  family(o, "libhealth_draining", "gauge", "1 once the shutdown sequence has started (readiness fails).");
  sample(o, "libhealth_draining", NULL, NULL, atomic_load(&h->draining) ? "1" : "0", 1);

  family(o, "libhealth_shutdown_phase", "gauge",
         "Phase of the shutdown sequence: 1 for the current one.");
  static const char *const phases[4] = {"phase=\"running\"", "phase=\"draining\"",
                                        "phase=\"flushing\"", "phase=\"done\""};
  int ph = atomic_load(&h->obs->phase);
  if (ph == HEALTH__PHASE_RUNNING && atomic_load(&h->draining)) ph = HEALTH__PHASE_DRAINING;
  for (int i = 0; i < 4; i++) sample(o, "libhealth_shutdown_phase", NULL, phases[i], ph == i ? "1" : "0", 1);

  family(o, "libhealth_requests_in_flight", "gauge",
         "Application requests in flight, as reported by health_inflight_begin/end.");
  int infl = atomic_load(&h->inflight);
  char num[24];
  size_t n = 0;
  if (infl < 0) num[n++] = '-';
  n += put_u64(num + n, infl < 0 ? (uint64_t)(-(int64_t)infl) : (uint64_t)infl);
  sample(o, "libhealth_requests_in_flight", NULL, NULL, num, n);

  family(o, "libhealth_listener_events_dropped", "counter",
         "Status-listener events dropped because the listener queue was full.");
  sample_u64(o, "libhealth_listener_events_dropped_total", NULL, NULL,
             (uint64_t)atomic_load(&h->obs->dropped));
}

static void check_families(health_t *h, out_t *o, uint64_t now) {
  size_t nc = h->nchecks;
  health__check_t **cs = h->checks;

  family(o, "libhealth_check_status", "gauge",
         "Effective status of the check after thresholds (a stale result counts as fail): 1 for the current one.");
  for (size_t i = 0; i < nc; i++) {
    health_status_t s = health__check_status_locked(h, cs[i], now, NULL);
    for (int k = 0; k < 4; k++)
      sample(o, "libhealth_check_status", cs[i]->name, status_label[k], (int)s == k ? "1" : "0", 1);
  }
  family(o, "libhealth_check_critical", "gauge", "1 if a failure of the check fails the endpoint (503), 0 if it only warns.");
  for (size_t i = 0; i < nc; i++)
    sample(o, "libhealth_check_critical", cs[i]->name, NULL, cs[i]->critical ? "1" : "0", 1);
  family(o, "libhealth_check_consecutive_failures", "gauge", "Failed runs in a row.");
  for (size_t i = 0; i < nc; i++)
    sample_u64(o, "libhealth_check_consecutive_failures", cs[i]->name, NULL, cs[i]->consecutive_failures);
  family(o, "libhealth_check_runs", "counter", "Completed runs, timed-out ones included.");
  for (size_t i = 0; i < nc; i++) sample_u64(o, "libhealth_check_runs_total", cs[i]->name, NULL, cs[i]->runs);
  family(o, "libhealth_check_failures", "counter", "Runs that failed, timed-out ones included.");
  for (size_t i = 0; i < nc; i++)
    sample_u64(o, "libhealth_check_failures_total", cs[i]->name, NULL, cs[i]->obs.failures);
  family(o, "libhealth_check_timeouts", "counter", "Runs cut off at their deadline.");
  for (size_t i = 0; i < nc; i++)
    sample_u64(o, "libhealth_check_timeouts_total", cs[i]->name, NULL, cs[i]->obs.timeouts);
  family(o, "libhealth_check_last_duration_seconds", "gauge",
         "Duration of the last run (the timeout for a run cut off at its deadline).");
  for (size_t i = 0; i < nc; i++)
    sample_us(o, "libhealth_check_last_duration_seconds", cs[i]->name, NULL, cs[i]->obs.last_duration_us);
  family(o, "libhealth_check_last_success_timestamp_seconds", "gauge",
         "When the last run that passed or warned completed, seconds since the epoch (absent before the first).");
  for (size_t i = 0; i < nc; i++) {
    int64_t ms = cs[i]->obs.last_success_wall_ms;
    if (ms <= 0) continue;
    char num[32];
    sample(o, "libhealth_check_last_success_timestamp_seconds", cs[i]->name, NULL, num,
           put_fixed(num, (uint64_t)ms / 1000u, (uint64_t)ms % 1000u, 3));
  }
  family(o, "libhealth_check_duration_seconds", "histogram", "Durations of the runs.");
  for (size_t i = 0; i < nc; i++) {
    const health__check_obs_t *ob = &cs[i]->obs;
    uint64_t cum = 0;
    char le[24];
    for (int k = 0; k < HEALTH__BUCKETS; k++) {
      cum += ob->bucket[k];
      size_t n = strlen(bucket_le[k]);
      memcpy(le, "le=\"", 4);
      memcpy(le + 4, bucket_le[k], n);
      le[4 + n] = '"';
      le[5 + n] = 0;
      sample_u64(o, "libhealth_check_duration_seconds_bucket", cs[i]->name, le, cum);
    }
    sample_u64(o, "libhealth_check_duration_seconds_bucket", cs[i]->name, "le=\"+Inf\"", ob->count);
    sample_us(o, "libhealth_check_duration_seconds_sum", cs[i]->name, NULL, ob->sum_us);
    sample_u64(o, "libhealth_check_duration_seconds_count", cs[i]->name, NULL, ob->count);
  }
}

void health__metrics_render_locked(health_t *h, int openmetrics, int status_only,
                                   uint64_t now, health__buf_t *b) {
  out_t o = {b, openmetrics};
  process_families(h, &o, now);
  if (!status_only) check_families(h, &o, now);
  if (openmetrics) health__buf_adds(b, "# EOF\n");
}

/* ---- counters, kept by the engine's hooks ---- */

void health__obs_dispatch_locked(health__check_t *c) { c->obs.started_us = health__now_us(); }

void health__obs_publish_locked(health_t *h, health__check_t *c, health_status_t prev,
                                health_status_t raw) {
  health__check_obs_t *o = &c->obs;
  /* A run that never started (no worker thread, out of memory) has no
   * duration; c->running is cleared before those are published. */
  if (c->running && o->started_us) {
    uint64_t d = health__now_us() - o->started_us;
    int k = 0;
    while (k < HEALTH__BUCKETS && d > bucket_us[k]) k++;
    o->bucket[k]++;
    o->sum_us += d;
    o->count++;
    o->last_duration_us = d;
  }
  if (raw == HEALTH_FAIL) {
    o->failures++;
    if (c->running && c->timed_out) o->timeouts++;
  } else {
    o->last_success_wall_ms = c->result_wall_ms;
  }
  if (c->effective != prev && h->obs->nlisteners) health__listeners_check_locked(h, c, prev);
}

void health__obs_phase(health_t *h, int phase) {
  if (!h->obs) return;
  atomic_store(&h->obs->phase, phase);
  atomic_fetch_add(&h->version, 1);
}
