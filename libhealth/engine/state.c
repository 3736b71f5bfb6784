/*
 * A check's published state (check engine): applying a run's result
 * (thresholds, output, counters for /metrics), the status it renders as
 * (stale results count as failed), its "check_status" log transitions, and
 * health_check_find().  Everything here runs with h->lock held.  The
 * engine tells the layers above through the observers of core/core.c, never
 * by calling them.
 */
#include "health_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the duration histogram in microseconds: 1 ms to 10 s,
 * about x4 apart (rendered by http/metrics.c).  Few on purpose: with 100 checks
 * every bucket is 100 lines (6.8 KB) of every scrape. */
static const uint64_t bucket_us[HEALTH__BUCKETS] = {1000,   5000,    25000,   100000,
                                                    500000, 2500000, 10000000};

health_status_t health__check_status_locked(const health_t *h, const health__check_t *c,
                                            uint64_t now, const char **why) {
  if (why) *why = NULL;
  /* A result's age is known only up to the scheduler's planned wake-up
   * plus the grace: after a pause of the whole process (SIGSTOP, a cgroup
   * freeze; CLOCK_MONOTONIC runs on) an answer may be rendered before the
   * scheduler has run again, and must not call results stale for the
   * pause.  The scheduler then takes the pause out of their ages. */
  uint64_t known = h->eng.sched_wake_ms;
  if (h->state == HEALTH__ST_STARTED && known && known != UINT64_MAX &&
      now > known + HEALTH__STALE_GRACE_MS)
    now = known + HEALTH__STALE_GRACE_MS;
  if (c->effective == HEALTH_PENDING) {
    if (why) *why = "pending: no result yet";
    return HEALTH_PENDING;
  }
  if (now > health__stale_after(c)) {
    /* A run stuck past its deadline: its timeout is the first cause and
     * says more than "stale". */
    if (why)
      *why = c->running && c->timed_out && c->output
                 ? c->output
                 : "stale: no fresh result within interval + timeout";
    return HEALTH_FAIL;
  }
  return c->effective;
}

void health__check_view_locked(const health_t *h, const health__check_t *c, uint64_t now,
                               health__check_view_t *v) {
  const char *why;
  v->key = c->key;
  v->component_type = c->component_type;
  v->component_id = c->component_id;
  v->critical = c->critical;
  v->status = health__check_status_locked(h, c, now, &why);
  v->shown = health__shown_status(v->status, c->critical);
  v->word = health__status_word(v->shown);
  v->output = why ? why : c->output;
  v->has_result = c->effective != HEALTH_PENDING;
  v->result_wall_ms = c->result_wall_ms;
  v->has_observed = v->has_result && c->has_observed && isfinite(c->observed_value);
  v->observed_value = c->observed_value;
  v->observed_unit = c->observed_unit;
}

void health__check_info_locked(health_t *h, const health__check_t *c, health_check_info_t *out) {
  memset(out, 0, sizeof *out);
  const char *why;
  out->status = health__check_status_locked(h, c, health__now_ms(), &why);
  out->last_status = c->last;
  out->runs = c->runs;
  out->consecutive_failures = c->consecutive_failures;
  out->consecutive_successes = c->consecutive_successes;
  out->running = c->running;
  out->has_observed = c->has_observed;
  out->observed_value = c->observed_value;
  memcpy(out->observed_unit, c->observed_unit, sizeof out->observed_unit);
  snprintf(out->output, sizeof out->output, "%s", why ? why : c->output ? c->output : "");
}

HEALTH_EXPORT int health_check_find(health_t *h, const char *name, health_check_info_t *out,
                                    health_error_t *err) {
  if (!h || !name || !out)
    return health__err(err, HEALTH_EINVAL, "%s is NULL", !h ? "handle" : !name ? "name" : "out");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  int rc = HEALTH_ENOENT;
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->eng.nchecks; i++) {
    const health__check_t *c = h->eng.checks[i];
    if (strcmp(c->name, name) != 0) continue;
    health__check_info_locked(h, c, out);
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&h->lock);
  if (rc) return health__err(err, rc, "no check named \"%s\"", name);
  return 0;
}

/* Two outputs tell the same news if they differ only in digits
 * ("backlog 10234" / "backlog 10301"). */
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int same_news(const char *a, const char *b) {
  if (!a || !b) return a == b;
  for (;;) {
    if (is_digit(*a) && is_digit(*b)) { /* a run of digits matches any run */
      while (is_digit(*a)) a++;
      while (is_digit(*b)) b++;
      continue;
    }
    if (*a != *b) return 0;
    if (!*a) return 1;
    a++, b++;
  }
}

/*
 * Transition detection: what the check reports (its status as /ready and
 * /health render it, and its output) changed since the last line logged:
 * one "check_status" line, through the check's repeat filter.  Called after
 * every publication (results and timeouts) and by the scheduler when a
 * result goes stale, with h->lock held.  Other observers of transitions
 * (metrics, listeners) belong beside this call.
 */
void health__check_report_locked(health_t *h, health__check_t *c, uint64_t now, const char *cause) {
  const char *why;
  health_status_t s = health__check_status_locked(h, c, now, &why);
  const char *out = why ? why : c->output ? c->output : "";
  if (c->reported_output && s == c->reported && same_news(out, c->reported_output)) return;
  char *copy = strdup(out);
  if (!copy) return; /* out of memory: the next change logs */
  health_status_t from = c->reported_output ? c->reported : HEALTH_PENDING;
  free(c->reported_output);
  c->reported_output = copy;
  c->reported = s;
  char fails[24], thr[24];
  snprintf(fails, sizeof fails, "%u", c->consecutive_failures);
  snprintf(thr, sizeof thr, "%u", c->failure_threshold);
  health_log_level_t level =
      (s == HEALTH_FAIL || c->last == HEALTH_FAIL) ? HEALTH_LOG_WARN : HEALTH_LOG_INFO;
  health__log_repeat(h, &c->repeat, c->name, level, "check_status", "check", c->name, "from",
                     health__status_word(from), "to", health__status_word(s), "output", copy,
                     "cause", cause, "last_run", health__status_word(c->last),
                     "#consecutive_failures", fails, "#failure_threshold", thr, "#critical",
                     c->critical ? "true" : "false", NULL);
}

/* The counters of /metrics (http/metrics.c renders them). */
static void count_run_locked(health__check_t *c, health_status_t raw) {
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
}

/* Apply a completed (or timed-out) run, with h->lock held. */
void health__publish_locked(health_t *h, health__check_t *c, health_status_t status,
                            const char *output, const health_result_t *r) {
  uint64_t now = health__now_ms();
  c->runs++;
  c->last = status;
  if (status == HEALTH_FAIL) {
    c->consecutive_failures++;
    c->consecutive_successes = 0;
  } else {
    c->consecutive_successes++;
    c->consecutive_failures = 0;
  }
  health_status_t prev = c->effective, eff;
  if (prev == HEALTH_PENDING)
    eff = status; /* the first result counts at once: never ready on a failure */
  else if (prev == HEALTH_FAIL)
    eff = (status != HEALTH_FAIL && c->consecutive_successes >= c->success_threshold) ? status
                                                                                      : HEALTH_FAIL;
  else
    eff = status != HEALTH_FAIL                             ? status
          : c->consecutive_failures >= c->failure_threshold ? HEALTH_FAIL
                                                            : prev;
  c->effective = eff;

  char *old = c->output;
  c->output = (output && *output) ? strdup(output) : NULL;
  if (c->output || !old || !output || !*output) free(old);
  else c->output = old; /* out of memory: keep the previous text */
  c->has_observed = r ? r->has_observed : 0;
  if (c->has_observed) {
    c->observed_value = r->observed_value;
    memcpy(c->observed_unit, r->observed_unit, sizeof c->observed_unit);
  }
  c->result_wall_ms = health__wall_ms();
  c->result_mono_ms = now;

  c->stale_reported = 0;
  health__check_report_locked(h, c, now, c->timed_out ? "timeout" : "result");
  count_run_locked(c, status);
  if (c->effective != prev) health__check_changed_locked(h, c, prev); /* listeners */
  health__state_changed_locked(h);
}
