/* The check engine: pending until the first result, failure and success
 * thresholds, deadlines for hanging callbacks (no overlap, no delay for the
 * other checks), criticality, liveness vs readiness, stale results and the
 * registration rules.  Callbacks are scripted by the tests: a gate lets the
 * test release one run at a time, so every step is observed exactly. */
#define _GNU_SOURCE
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"
#include "testhelp.h"

#define MAX_RUNS 64

/* A scripted check.  Run i reports st[i] (the last entry repeats) once
 * the gate lets it: it waits while `allowed <= i` or while `hang` is set. */
typedef struct script {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  health_status_t st[MAX_RUNS];
  unsigned nst;
  unsigned allowed;
  int hang;
  int no_status;
  int observe;
  double obs_value;
  const char *obs_unit;
  unsigned started, finished;
  uint64_t start_ms[MAX_RUNS];
  unsigned remaining_ms[MAX_RUNS];
} script_t;

static void script_init(script_t *s, const health_status_t *st, unsigned nst) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  for (unsigned i = 0; i < nst && i < MAX_RUNS; i++) s->st[i] = st[i];
  s->nst = nst;
  s->allowed = UINT_MAX;
}

static void script_set(script_t *s, unsigned allowed, int hang) {
  pthread_mutex_lock(&s->mu);
  s->allowed = allowed;
  s->hang = hang;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void script_release(script_t *s) { script_set(s, UINT_MAX, 0); }

static unsigned script_started(script_t *s) {
  pthread_mutex_lock(&s->mu);
  unsigned n = s->started;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static void scripted(health_result_t *r, void *arg) {
  script_t *s = arg;
  unsigned rem = health_result_remaining_ms(r);
  pthread_mutex_lock(&s->mu);
  unsigned idx = s->started++;
  if (idx < MAX_RUNS) {
    s->start_ms[idx] = health__now_ms();
    s->remaining_ms[idx] = rem;
  }
  pthread_cond_broadcast(&s->cv);
  while (s->allowed <= idx || s->hang) pthread_cond_wait(&s->cv, &s->mu);
  health_status_t st = s->st[idx < s->nst ? idx : s->nst - 1];
  int no_status = s->no_status, observe = s->observe;
  double v = s->obs_value;
  const char *unit = s->obs_unit;
  s->finished++;
  pthread_mutex_unlock(&s->mu);
  if (observe) health_result_observe(r, v, unit);
  if (!no_status) health_result_set(r, st, "run %u", idx);
}

/* ---- waiting on conditions ---- */

typedef struct {
  health_t *h;
  const char *name;
  uint64_t runs;
  script_t *s;
  unsigned started;
} wait_t;

static int cond_runs(void *p) {
  wait_t *w = p;
  health_check_info_t i;
  return health_check_find(w->h, w->name, &i, NULL) == 0 && i.runs >= w->runs;
}

static int cond_started(void *p) {
  wait_t *w = p;
  return script_started(w->s) >= w->started;
}

static void wait_runs(health_t *h, const char *name, uint64_t runs) {
  wait_t w = {h, name, runs, NULL, 0};
  ck_assert_msg(th_wait_until(cond_runs, &w, TS(10000)), "check '%s' never reached %llu runs", name,
                (unsigned long long)runs);
}

static void wait_started(script_t *s, unsigned n) {
  wait_t w = {NULL, NULL, 0, s, n};
  ck_assert_msg(th_wait_until(cond_started, &w, TS(10000)), "callback never started %u times", n);
}

static health_check_info_t info_of(health_t *h, const char *name) {
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, name, &i, NULL), 0);
  return i;
}

/* ---- handles ---- */

static health_t *new_handle(void) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_OFF;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  return h;
}

static void add(health_t *h, const char *name, script_t *s, unsigned interval, unsigned timeout,
                unsigned ft, unsigned st, int critical, unsigned endpoints) {
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval;
  co.timeout_ms = timeout;
  co.failure_threshold = ft;
  co.success_threshold = st;
  co.critical = critical;
  co.endpoints = endpoints;
  health_error_t err = {0};
  ck_assert_msg(health_check_add(h, name, scripted, s, NULL, &co, &err) == 0, "%s", err.text);
}

static void start(health_t *h) {
  health_error_t err = {0};
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
}

static int http_status(health_t *h, const char *path, char *body, size_t len) {
  th_response_t r;
  ck_assert_int_eq(th_http(health_port(h), "GET", path, &r), 0);
  int st = r.status;
  if (body) snprintf(body, len, "%s", r.body);
  th_response_free(&r);
  return st;
}

/* ------------------------------------------------------------------ */

/* Atomics read through a function keep Check's messages readable. */
static int aload(atomic_int *a) { return atomic_load(a); }

START_TEST(test_pending_until_first_result) {
  health_status_t seq[] = {HEALTH_PASS};
  script_t s;
  script_init(&s, seq, 1);
  s.allowed = 0; /* the first run blocks until the test lets it go */
  health_t *h = new_handle();
  add(h, "gated", &s, 20, 10000, 0, 0, 1, HEALTH_READINESS);

  /* Before start: pending, not ready. */
  health_check_info_t i = info_of(h, "gated");
  ck_assert_int_eq(i.status, HEALTH_PENDING);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);

  start(h);
  wait_started(&s, 1);
  i = info_of(h, "gated");
  ck_assert_int_eq(i.status, HEALTH_PENDING);
  ck_assert_int_eq(i.last_status, HEALTH_PENDING);
  ck_assert_uint_eq(i.runs, 0);
  ck_assert_int_eq(i.running, 1);
  ck_assert_ptr_nonnull(strstr(i.output, "pending"));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_PASS); /* not a liveness check */
  char body[2048];
  ck_assert_int_eq(http_status(h, "/ready", body, sizeof body), 503);
  ck_assert_ptr_nonnull(strstr(body, "pending"));
  ck_assert_int_eq(http_status(h, "/health", NULL, 0), 200);

  script_set(&s, 1, 0);
  wait_runs(h, "gated", 1);
  i = info_of(h, "gated");
  ck_assert_int_eq(i.status, HEALTH_PASS);
  ck_assert_str_eq(i.output, "run 0");
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  ck_assert_int_eq(http_status(h, "/ready", NULL, 0), 200);

  script_release(&s);
  health_free(h);
}
END_TEST

/* The documented threshold rules, written independently of engine/registry.c:
 * the first result counts at once; a passing check fails after `ft`
 * consecutive failures; a failed one recovers after `st` consecutive
 * non-failures; WARN is a non-failure. */
typedef struct {
  health_status_t eff;
  unsigned cf, cs;
} model_t;

static void model_step(model_t *m, health_status_t r, unsigned ft, unsigned st) {
  int fail = r == HEALTH_FAIL;
  m->cf = fail ? m->cf + 1 : 0;
  m->cs = fail ? 0 : m->cs + 1;
  if (m->eff == HEALTH_PENDING) m->eff = r;
  else if (m->eff == HEALTH_FAIL) {
    if (!fail && m->cs >= st) m->eff = r;
  } else if (fail) {
    if (m->cf >= ft) m->eff = HEALTH_FAIL;
  } else m->eff = r;
}

static void run_threshold_script(const health_status_t *seq, unsigned n, unsigned ft, unsigned st,
                                 unsigned *first_fail, unsigned *first_recover) {
  script_t s;
  script_init(&s, seq, n);
  s.allowed = 0;
  health_t *h = new_handle();
  add(h, "flaky", &s, 10, 10000, ft, st, 1, HEALTH_READINESS);
  start(h);
  model_t m = {HEALTH_PENDING, 0, 0};
  *first_fail = *first_recover = UINT_MAX;
  for (unsigned k = 0; k < n; k++) {
    script_set(&s, k + 1, 0);
    wait_runs(h, "flaky", k + 1);
    health_status_t before = m.eff;
    model_step(&m, seq[k], ft, st);
    if (m.eff == HEALTH_FAIL && before != HEALTH_FAIL && *first_fail == UINT_MAX) *first_fail = k;
    if (before == HEALTH_FAIL && m.eff != HEALTH_FAIL && *first_recover == UINT_MAX)
      *first_recover = k;
    health_check_info_t i = info_of(h, "flaky");
    ck_assert_uint_eq(i.runs, k + 1);
    ck_assert_int_eq(i.last_status, seq[k]);
    ck_assert_msg(i.status == m.eff, "run %u (%d) with thresholds %u/%u: status %d, want %d", k,
                  seq[k], ft, st, i.status, m.eff);
    ck_assert_uint_eq(i.consecutive_failures, m.cf);
    ck_assert_uint_eq(i.consecutive_successes, m.cs);
    health_status_t agg = health_status(h, HEALTH_READINESS);
    ck_assert_int_eq(agg, m.eff == HEALTH_FAIL ? HEALTH_FAIL : m.eff);
  }
  script_release(&s);
  health_free(h);
}

START_TEST(test_failure_threshold) {
  const health_status_t P = HEALTH_PASS, F = HEALTH_FAIL, W = HEALTH_WARN;
  /* Failure threshold 3: two failures (even repeated, interrupted by a
   * pass) are absorbed; the third in a row fails. */
  health_status_t seq[] = {P, F, F, P, F, F, W, F, F, F, F, P};
  unsigned ff, fr;
  run_threshold_script(seq, sizeof seq / sizeof seq[0], 3, 1, &ff, &fr);
  ck_assert_uint_eq(ff, 9);  /* the model agrees with the obvious reading */
  ck_assert_uint_eq(fr, 11); /* success threshold 1: one pass recovers */
}
END_TEST

START_TEST(test_success_threshold) {
  const health_status_t P = HEALTH_PASS, F = HEALTH_FAIL, W = HEALTH_WARN;
  /* The first result counts at once, even a failure; recovery then needs
   * 3 consecutive non-failures. */
  health_status_t seq[] = {F, P, P, F, P, W, F, P, P, P, F, P};
  unsigned ff, fr;
  run_threshold_script(seq, sizeof seq / sizeof seq[0], 2, 3, &ff, &fr);
  ck_assert_uint_eq(ff, 0);
  ck_assert_uint_eq(fr, 9);
  /* Thresholds of 1: every result counts at once, both ways. */
  health_status_t seq1[] = {P, F, P, F, F, P};
  run_threshold_script(seq1, sizeof seq1 / sizeof seq1[0], 1, 1, &ff, &fr);
  ck_assert_uint_eq(ff, 1);
  ck_assert_uint_eq(fr, 2);
}
END_TEST

START_TEST(test_hanging_check_times_out) {
  const unsigned timeout = TS(150), interval = 30;
  health_status_t pass[] = {HEALTH_PASS};
  script_t hang, other;
  script_init(&hang, pass, 1);
  script_init(&other, pass, 1);
  hang.hang = 1;
  hang.allowed = 1; /* after the hang ends, run 0 may finish; run 1 waits */
  health_t *h = new_handle();
  add(h, "hang", &hang, interval, timeout, 1, 1, 1, HEALTH_READINESS);
  add(h, "other", &other, interval, 1000, 1, 1, 1, HEALTH_READINESS);
  start(h);

  wait_started(&hang, 1);
  pthread_mutex_lock(&h->lock);
  uint64_t dispatched = h->eng.checks[0]->started_ms; /* stable while the run hangs */
  pthread_mutex_unlock(&h->lock);
  wait_runs(h, "hang", 1); /* the timeout is published */
  uint64_t published = health__now_ms();
  pthread_mutex_lock(&hang.mu);
  uint64_t began = hang.start_ms[0];
  unsigned rem = hang.remaining_ms[0];
  pthread_mutex_unlock(&hang.mu);
  ck_assert_msg(published >= dispatched + timeout, "timeout published early: %llu ms",
                (unsigned long long)(published - dispatched));
  ck_assert_msg(published <= began + timeout + TS(50),
                "timeout published late: %llu ms after the start",
                (unsigned long long)(published - began));
  ck_assert_uint_le(rem, timeout);
  ck_assert_uint_gt(rem, timeout / 2);

  health_check_info_t i = info_of(h, "hang");
  ck_assert_int_eq(i.status, HEALTH_FAIL);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  char want[64];
  snprintf(want, sizeof want, "timeout after %u ms", timeout);
  ck_assert_str_eq(i.output, want);
  ck_assert_int_eq(i.running, 1);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);

  /* While it hangs for many intervals: never started again, no second
   * timeout for the same run, and the other check keeps running. */
  uint64_t other_runs = info_of(h, "other").runs;
  wait_runs(h, "other", other_runs + 8);
  ck_assert_uint_eq(script_started(&hang), 1);
  i = info_of(h, "hang");
  ck_assert_uint_eq(i.runs, 1);
  ck_assert_int_eq(i.running, 1);
  ck_assert_int_eq(i.status, HEALTH_FAIL);
  ck_assert_int_eq(info_of(h, "other").status, HEALTH_PASS);

  /* The stuck run returns: its late result is not published, and the
   * check is dispatched again. */
  script_set(&hang, 1, 0);
  wait_started(&hang, 2);
  i = info_of(h, "hang");
  ck_assert_uint_eq(i.runs, 1);
  ck_assert_str_eq(i.output, want);
  script_release(&hang);
  wait_runs(h, "hang", 2);
  i = info_of(h, "hang");
  ck_assert_int_eq(i.status, HEALTH_PASS);
  ck_assert_str_eq(i.output, "run 1");
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  health_free(h);
}
END_TEST

START_TEST(test_noncritical_warns) {
  health_status_t pass[] = {HEALTH_PASS}, fail[] = {HEALTH_FAIL};
  script_t ok, bad;
  script_init(&ok, pass, 1);
  script_init(&bad, fail, 1);
  health_t *h = new_handle();
  add(h, "critical-ok", &ok, 50, 1000, 1, 1, 1, HEALTH_READINESS);
  add(h, "optional-bad", &bad, 50, 1000, 1, 1, 0, HEALTH_READINESS);
  start(h);
  wait_runs(h, "critical-ok", 1);
  wait_runs(h, "optional-bad", 1);
  ck_assert_int_eq(info_of(h, "optional-bad").status, HEALTH_FAIL);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_WARN);
  char body[2048];
  ck_assert_int_eq(http_status(h, "/ready", body, sizeof body), 200);
  ck_assert_msg(strncmp(body, "{\"status\":\"warn\"", 16) == 0, "%s", body);
  health_free(h);
}
END_TEST

START_TEST(test_liveness_vs_readiness) {
  health_status_t pass[] = {HEALTH_PASS}, fail[] = {HEALTH_FAIL};
  script_t ready_bad, live_ok, live_bad;
  script_init(&ready_bad, fail, 1);
  script_init(&live_ok, pass, 1);
  script_init(&live_bad, fail, 1);

  /* A failing readiness-only check does not fail /health. */
  health_t *h = new_handle();
  add(h, "db", &ready_bad, 50, 1000, 1, 1, 1, HEALTH_READINESS);
  add(h, "loop", &live_ok, 50, 1000, 1, 1, 1, HEALTH_LIVENESS);
  start(h);
  wait_runs(h, "db", 1);
  wait_runs(h, "loop", 1);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_PASS);
  char body[2048];
  ck_assert_int_eq(http_status(h, "/ready", body, sizeof body), 503);
  ck_assert_ptr_nonnull(strstr(body, "db:responseTime"));
  ck_assert_ptr_null(strstr(body, "loop:responseTime"));
  ck_assert_int_eq(http_status(h, "/health", body, sizeof body), 200);
  ck_assert_ptr_nonnull(strstr(body, "loop:responseTime"));
  ck_assert_ptr_null(strstr(body, "db:responseTime"));
  health_free(h);

  /* A failing liveness check does; readiness ignores a liveness-only check. */
  h = new_handle();
  add(h, "deadlock", &live_bad, 50, 1000, 1, 1, 1, HEALTH_LIVENESS);
  start(h);
  wait_runs(h, "deadlock", 1);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_FAIL);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  ck_assert_int_eq(http_status(h, "/health", NULL, 0), 503);
  ck_assert_int_eq(http_status(h, "/ready", NULL, 0), 200);
  health_free(h);

  /* Both endpoints: fails both. */
  h = new_handle();
  add(h, "both", &live_bad, 50, 1000, 1, 1, 1, HEALTH_LIVENESS | HEALTH_READINESS);
  start(h);
  wait_runs(h, "both", 1);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_FAIL);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  health_free(h);
  ck_assert_int_eq(health_status(NULL, HEALTH_READINESS), HEALTH_FAIL);
}
END_TEST

START_TEST(test_no_status_fails_and_observed) {
  health_status_t pass[] = {HEALTH_PASS};
  script_t silent, obs, plain;
  script_init(&silent, pass, 1);
  script_init(&obs, pass, 1);
  script_init(&plain, pass, 1);
  silent.no_status = 1;
  silent.observe = 1;
  silent.obs_value = 1.5;
  silent.obs_unit = "ms";
  obs.observe = 1;
  obs.obs_value = 42.125;
  obs.obs_unit = "connections";
  health_t *h = new_handle();
  add(h, "silent", &silent, 50, 1000, 1, 1, 1, HEALTH_READINESS);
  add(h, "obs", &obs, 50, 1000, 1, 1, 1, HEALTH_READINESS);
  add(h, "plain", &plain, 50, 1000, 1, 1, 1, HEALTH_READINESS);
  start(h);
  wait_runs(h, "silent", 1);
  wait_runs(h, "obs", 1);
  wait_runs(h, "plain", 1);

  health_check_info_t i = info_of(h, "silent");
  ck_assert_int_eq(i.status, HEALTH_FAIL);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_ptr_nonnull(strstr(i.output, "without a status"));

  i = info_of(h, "obs");
  ck_assert_int_eq(i.status, HEALTH_PASS);
  ck_assert_int_eq(i.has_observed, 1);
  ck_assert(i.observed_value == obs.obs_value);
  ck_assert_str_eq(i.observed_unit, obs.obs_unit);

  i = info_of(h, "plain");
  ck_assert_int_eq(i.has_observed, 0);

  ck_assert_int_eq(health_check_find(h, "nope", &i, NULL), HEALTH_ENOENT);
  ck_assert_int_eq(health_check_find(h, NULL, &i, NULL), HEALTH_EINVAL);
  ck_assert_int_eq(health_check_find(h, "obs", NULL, NULL), HEALTH_EINVAL);
  health_free(h);
}
END_TEST

START_TEST(test_stale_result_fails) {
  health_status_t pass[] = {HEALTH_PASS};
  script_t s;
  script_init(&s, pass, 1);
  s.allowed = 1; /* run 0 passes; run 1 stays in the callback */
  health_t *h = new_handle();
  add(h, "slow", &s, 100, 60000, 1, 1, 1, HEALTH_READINESS);
  start(h);
  wait_runs(h, "slow", 1);
  wait_started(&s, 2);
  ck_assert_int_eq(info_of(h, "slow").status, HEALTH_PASS);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);

  /* The scheduler stalls: the last result ages past interval + timeout. */
  pthread_mutex_lock(&h->lock);
  health__check_t *c = h->eng.checks[0];
  uint64_t age = (uint64_t)c->interval_ms + c->timeout_ms + 1000;
  uint64_t now = health__now_ms();
  ck_assert_uint_gt(now, age);
  c->result_mono_ms = now - age;
  pthread_mutex_unlock(&h->lock);
  health_check_info_t i = info_of(h, "slow");
  ck_assert_int_eq(i.status, HEALTH_FAIL);
  ck_assert_ptr_nonnull(strstr(i.output, "stale"));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  ck_assert_int_eq(http_status(h, "/ready", NULL, 0), 503);

  /* Just inside the window it is still fresh. */
  pthread_mutex_lock(&h->lock);
  c->result_mono_ms = health__now_ms() - (c->interval_ms + c->timeout_ms) / 2;
  pthread_mutex_unlock(&h->lock);
  ck_assert_int_eq(info_of(h, "slow").status, HEALTH_PASS);

  /* A fresh result restores it. */
  pthread_mutex_lock(&h->lock);
  c->result_mono_ms = health__now_ms() - age;
  pthread_mutex_unlock(&h->lock);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  script_release(&s);
  wait_runs(h, "slow", 2);
  ck_assert_int_eq(info_of(h, "slow").status, HEALTH_PASS);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  health_free(h);
}
END_TEST

/* ---- registration ---- */

static atomic_int never_calls, never_frees, ok_frees;

static void never_cb(health_result_t *r, void *arg) {
  (void)arg;
  atomic_fetch_add(&never_calls, 1);
  health_result_set(r, HEALTH_PASS, NULL);
}
static void never_free(void *arg) {
  (void)arg;
  atomic_fetch_add(&never_frees, 1);
}
static void ok_free(void *arg) {
  (void)arg;
  atomic_fetch_add(&ok_frees, 1);
}

static void expect_add(health_t *h, const char *name, health_check_fn fn,
                       const health_check_options_t *co, int want) {
  health_error_t err = {0};
  int rc = health_check_add(h, name, fn, NULL, never_free, co, &err);
  ck_assert_msg(rc == want, "add '%s': %s (%d), want %d", name ? name : "(null)",
                health_err_name(rc), rc, want);
  ck_assert_int_eq(err.code, want);
  ck_assert(strlen(err.text) > 0);
}

START_TEST(test_registration_rules) {
  health_status_t pass[] = {HEALTH_PASS};
  script_t s;
  script_init(&s, pass, 1);
  health_t *h = new_handle();
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 20;
  health_error_t err = {0};
  ck_assert_int_eq(health_check_add(h, "ok", scripted, &s, ok_free, &co, &err), 0);

  /* Duplicate names. */
  expect_add(h, "ok", never_cb, NULL, HEALTH_EEXIST);

  /* Invalid names. */
  char longname[HEALTH__NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  const char *bad_names[] = {"",        "has space",   "slash/name", "colon:name",
                             "quote\"", "caf\xC3\xA9", "tab\t",      longname};
  for (size_t k = 0; k < sizeof bad_names / sizeof bad_names[0]; k++)
    expect_add(h, bad_names[k], never_cb, NULL, HEALTH_EINVAL);
  expect_add(h, NULL, never_cb, NULL, HEALTH_EINVAL);
  expect_add(h, "nofn", NULL, NULL, HEALTH_EINVAL);
  /* The longest valid name, and every allowed character. */
  longname[HEALTH__NAME_MAX] = 0;
  ck_assert_int_eq(health_check_add(h, longname, scripted, &s, NULL, &co, &err), 0);
  ck_assert_int_eq(health_check_add(h, "Az09._-", scripted, &s, NULL, &co, &err), 0);

  /* Invalid options. */
  char toolong[HEALTH__NAME_MAX + 2];
  memset(toolong, 'm', sizeof toolong - 1);
  toolong[sizeof toolong - 1] = 0;
  size_t nbad = 0;
#define BAD(label, stmt)                               \
  do {                                                 \
    health_check_options_t o;                          \
    health_check_options_init(&o);                     \
    health_check_options_t *op = &o;                   \
    stmt;                                              \
    expect_add(h, label, never_cb, op, HEALTH_EINVAL); \
    nbad++;                                            \
  } while (0)
  BAD("ep0", op->endpoints = 0);
  BAD("ep4", op->endpoints = 4);
  BAD("ep7", op->endpoints = HEALTH_READINESS | HEALTH_LIVENESS | 4);
  BAD("interval-small", op->interval_ms = 5);
  BAD("interval-big", op->interval_ms = 86400001u);
  BAD("timeout-big", op->timeout_ms = 600001u);
  BAD("ft-big", op->failure_threshold = 101);
  BAD("st-big", op->success_threshold = 101);
  BAD("measure-empty", op->measurement = "");
  BAD("measure-long", op->measurement = toolong);
#undef BAD
  ck_assert_uint_eq(nbad, 10);
  ck_assert_int_eq(health_check_add(NULL, "x", never_cb, NULL, NULL, NULL, &err), HEALTH_EINVAL);

  start(h);
  expect_add(h, "late", never_cb, NULL, HEALTH_ESTATE);
  wait_runs(h, "ok", 3);
  health_stop(h);
  expect_add(h, "later", never_cb, NULL, HEALTH_ESTATE);
  health_free(h);

  /* A registration that failed never ran its callback nor freed its arg;
   * the one that succeeded had its free_arg called once, at free. */
  ck_assert_int_eq(aload(&never_calls), 0);
  ck_assert_int_eq(aload(&never_frees), 0);
  ck_assert_int_eq(aload(&ok_frees), 1);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("engine");
  TCase *t = tcase_create("engine");
  tcase_set_timeout(t, 30);
  tcase_add_test(t, test_pending_until_first_result);
  tcase_add_test(t, test_failure_threshold);
  tcase_add_test(t, test_success_threshold);
  tcase_add_test(t, test_hanging_check_times_out);
  tcase_add_test(t, test_noncritical_warns);
  tcase_add_test(t, test_liveness_vs_readiness);
  tcase_add_test(t, test_no_status_fails_and_observed);
  tcase_add_test(t, test_stale_result_fails);
  tcase_add_test(t, test_registration_rules);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
