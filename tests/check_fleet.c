/* Fleet scale: the random phase spreads the runs of many checks over the
 * interval, the per-run jitter stays inside its documented bounds, the
 * reconnect backoff never exceeds its cap, and the options (function and
 * environment) reject bad input without changing anything.  The recovery
 * bound against a real restarted PostgreSQL is in check_postgres. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"
#include "testhelp.h"

#define NCHECKS 100
#define MAX_STARTS 16

typedef struct {
  pthread_mutex_t *mu;
  unsigned n;
  uint64_t start[MAX_STARTS];
} rec_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static void record(health_result_t *r, void *arg) {
  rec_t *c = arg;
  pthread_mutex_lock(c->mu);
  if (c->n < MAX_STARTS) c->start[c->n] = health__now_ms();
  c->n++;
  pthread_mutex_unlock(c->mu);
  health_result_set(r, HEALTH_PASS, NULL);
}

static health_t *new_handle(const health_fleet_options_t *fo) {
  health_options_t o;
  health_options_init(&o);
  o.port = 0;
  o.address = "127.0.0.1";
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_OFF;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "health_new: %s", err.text);
  if (fo) ck_assert_msg(health_fleet_set(h, fo, &err) == 0, "health_fleet_set: %s", err.text);
  return h;
}

static void add(health_t *h, const char *name, rec_t *c, unsigned interval) {
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval;
  co.timeout_ms = interval / 2;
  c->mu = &g_mu;
  health_error_t err = {0};
  ck_assert_msg(health_check_add(h, name, record, c, NULL, &co, &err) == 0, "%s", err.text);
}

typedef struct {
  rec_t *c;
  size_t n;
  unsigned runs;
} all_t;

static int all_ran(void *arg) {
  all_t *a = arg;
  pthread_mutex_lock(&g_mu);
  int ok = 1;
  for (size_t i = 0; i < a->n && ok; i++) ok = a->c[i].n >= a->runs;
  pthread_mutex_unlock(&g_mu);
  return ok;
}

static void run_all(health_t *h, rec_t *c, size_t n, unsigned runs, unsigned timeout) {
  health_error_t err = {0};
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
  all_t a = {c, n, runs};
  ck_assert_msg(th_wait_until(all_ran, &a, timeout), "not every check ran %u times", runs);
  health_stop(h);
  health_free(h);
}

/* The schedule itself, deterministic (a seeded handle, one thread): the
 * second run comes at a random point of (0, I] after the first, evenly
 * spread; later ones I - U[0, I p/100] after the previous; a retry when a
 * checker asked for one; never before the run ended. */
START_TEST(test_schedule_draws) {
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.seed = 42;
  health_t *h = new_handle(&fo);
  health__check_t c;
  memset(&c, 0, sizeof c);
  c.interval_ms = 1000;
  c.started_ms = 10000;
  c.runs = 1;
  unsigned quarter[4] = {0};
  for (unsigned k = 0; k < 1000; k++) {
    uint64_t d = health__next_due_locked(h, &c, NULL, 10000) - 10000;
    ck_assert_msg(d >= 1 && d <= 1000, "second run %llu ms after the first", (unsigned long long)d);
    quarter[(d - 1) * 4 / 1000]++;
  }
  /* 250 expected in each; the seed makes the draws fixed, and 200 would
   * be 3.6 standard deviations away for any seed. */
  for (unsigned q = 0; q < 4; q++)
    ck_assert_msg(quarter[q] >= 200, "quarter %u holds %u of 1000 second runs", q, quarter[q]);
  c.runs = 5;
  unsigned shortened = 0;
  for (unsigned k = 0; k < 1000; k++) {
    uint64_t d = health__next_due_locked(h, &c, NULL, 10000) - 10000;
    ck_assert_msg(d >= 900 && d <= 1000, "run after %llu ms (10 %% jitter)", (unsigned long long)d);
    shortened += d < 950;
  }
  ck_assert_uint_gt(shortened, 300); /* about half */
  /* a run that ended late: due at once, never in the past */
  ck_assert_uint_eq(health__next_due_locked(h, &c, NULL, 12000), 12000);
  /* a checker's retry wins, capped at the interval */
  health_result_t *r = calloc(1, sizeof *r);
  ck_assert_ptr_nonnull(r);
  r->retry_set = 1;
  r->retry_ms = 123;
  ck_assert_uint_eq(health__next_due_locked(h, &c, r, 10050), 10123);
  r->retry_ms = 5000;
  ck_assert_uint_eq(health__next_due_locked(h, &c, r, 10050), 11000);
  health_free(h);

  /* HEALTH_JITTER=off: exactly the interval, retries ignored. */
  fo.initial_offset = 0;
  fo.run_jitter_percent = 0;
  fo.backoff = 0;
  h = new_handle(&fo);
  c.runs = 1;
  ck_assert_uint_eq(health__next_due_locked(h, &c, NULL, 10000), 11000);
  c.runs = 5;
  ck_assert_uint_eq(health__next_due_locked(h, &c, NULL, 10000), 11000);
  ck_assert_uint_eq(health__next_due_locked(h, &c, r, 10000), 11000);
  ck_assert_uint_eq(health__first_due_locked(h, &c, 777), 777);
  free(r);
  health_free(h);
}
END_TEST

/* The same, live: many checks of one handle started together.  With the
 * random phase their second runs spread over the first interval; without
 * it they all come one interval after the first. */
START_TEST(test_phase_spreads_runs) {
  /* Scaled for slow builds, but not by valgrind's 20: two intervals each
   * for two handles must fit the test's timeout. */
  const unsigned I = 1000 * (th_time_scale() < 4 ? th_time_scale() : 4), n = 40;
  static rec_t c[NCHECKS];
  memset(c, 0, sizeof c);
  health_t *h = new_handle(NULL);
  for (unsigned i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%u", i);
    add(h, name, &c[i], I);
  }
  uint64_t t0 = health__now_ms();
  run_all(h, c, n, 2, 3 * I + TS(5000));
  uint64_t lo = UINT64_MAX, hi = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t at = c[i].start[1] - t0;
    lo = at < lo ? at : lo;
    hi = at > hi ? at : hi;
  }
  /* 40 uniform draws span about 95 % of the interval; under a quarter has
   * a probability below 1e-20 (slow first runs only push early ones later). */
  /* Under valgrind the first runs of 40 checks end after the whole
   * interval, so every second run is due at once: the spread is left to
   * test_schedule_draws there. */
  if (!th_under_valgrind())
    ck_assert_msg(hi - lo >= I / 4, "second runs within %llu ms of each other (interval %u)",
                  (unsigned long long)(hi - lo), I);

  /* HEALTH_JITTER=off (what replicas did before): every second run one
   * full interval after the first. */
  memset(c, 0, sizeof c);
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.initial_offset = 0;
  fo.run_jitter_percent = 0;
  fo.backoff = 0;
  h = new_handle(&fo);
  for (unsigned i = 0; i < 20; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%u", i);
    add(h, name, &c[i], I);
  }
  t0 = health__now_ms();
  run_all(h, c, 20, 2, 3 * I + TS(5000));
  /* Dispatched at start, due again one interval later: never earlier
   * (the callback can start late, never early). */
  for (unsigned i = 0; i < 20; i++)
    ck_assert_msg(c[i].start[1] >= t0 + I, "jitter off: check %u ran again %llu ms after start", i,
                  (unsigned long long)(c[i].start[1] - t0));
}
END_TEST

/* From the third run on, each interval is I - U[0, I x p / 100]: never
 * longer than I, never shorter than I (1 - p/100). */
START_TEST(test_run_jitter_bounds) {
  const unsigned I = 100 * (th_time_scale() < 4 ? th_time_scale() : 4), runs = 12;
  static rec_t c[1];
  memset(c, 0, sizeof c);
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.run_jitter_percent = 50;
  health_t *h = new_handle(&fo);
  add(h, "j", &c[0], I);
  run_all(h, c, 1, runs, runs * I + TS(5000));
  unsigned shorter = 0;
  for (unsigned k = 2; k + 1 < runs; k++) {
    uint64_t gap = c[0].start[k + 1] - c[0].start[k];
    ck_assert_msg(gap + TS(20) >= I / 2, "run %u came %llu ms after the previous one (interval %u)",
                  k + 1, (unsigned long long)gap, I);
    /* Late by scheduling only: the planned gap is at most I. */
    ck_assert_msg(gap <= I + TS(100), "run %u came %llu ms after the previous one", k + 1,
                  (unsigned long long)gap);
    shorter += gap < I * 95 / 100;
  }
  /* Each gap is below 0.95 I with probability 0.9: all 9 at or above it
   * has a probability of 1e-9. */
  ck_assert_msg(shorter > 0, "no interval was shortened by the jitter");
}
END_TEST

/* The bound grows as I/4 x 2^k and is capped at I; the draws stay within
 * it and are spread over it (full jitter), and nothing is drawn when the
 * backoff is off. */
START_TEST(test_backoff_cap) {
  const unsigned I = 1000;
  ck_assert_uint_eq(health__backoff_cap(I, 0), 250);
  ck_assert_uint_eq(health__backoff_cap(I, 1), 500);
  ck_assert_uint_eq(health__backoff_cap(I, 2), 1000);
  unsigned prev = 0;
  for (unsigned k = 0; k < 200; k++) {
    unsigned cap = health__backoff_cap(I, k);
    ck_assert_uint_le(cap, I);
    ck_assert_uint_ge(cap, prev);
    prev = cap;
  }
  ck_assert_uint_eq(health__backoff_cap(3, 0), 1); /* tiny intervals */
  ck_assert_uint_eq(health__backoff_cap(86400000u, 40), 86400000u);

  health_t *h = new_handle(NULL);
  health__backoff_t b = {0};
  health_result_t *r = calloc(1, sizeof *r);
  ck_assert_ptr_nonnull(r);
  double sum = 0;
  unsigned n = 0, low = 0, high = 0;
  for (unsigned k = 0; k < 20000; k++) {
    memset(r, 0, sizeof *r);
    r->h = h;
    r->interval_ms = I;
    unsigned cap = health__backoff_cap(I, b.failures);
    health__backoff_failed(&b, r);
    ck_assert(r->retry_set);
    ck_assert_uint_le(r->retry_ms, cap);
    ck_assert_uint_le(r->retry_ms, I);
    if (cap == I) {
      sum += r->retry_ms;
      n++;
      low += r->retry_ms < I / 10;
      high += r->retry_ms > I * 9 / 10;
    }
    if (k % 10 == 9) health__backoff_reset(&b);
  }
  /* Full jitter: uniform over [0, cap] (mean I/2, sd of the mean < 1 % here). */
  ck_assert_msg(sum / n > I * 0.45 && sum / n < I * 0.55, "mean retry %.0f ms", sum / n);
  ck_assert_msg(low > n / 20 && high > n / 20, "draws not spread: %u low, %u high of %u", low, high,
                n);
  health_free(h);

  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.backoff = 0;
  h = new_handle(&fo);
  memset(r, 0, sizeof *r);
  r->h = h;
  r->interval_ms = I;
  health__backoff_failed(&b, r);
  ck_assert(!r->retry_set);
  health_free(h);
  free(r);
}
END_TEST

/* A seed makes the schedule reproducible. */
START_TEST(test_seeded_sequence) {
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.seed = 7;
  health_t *a = new_handle(&fo), *b = new_handle(&fo), *c = new_handle(NULL);
  unsigned same_c = 0;
  for (unsigned i = 0; i < 100; i++) {
    uint64_t x = health__rand_below(a, 1000000), y = health__rand_below(b, 1000000);
    ck_assert_uint_eq(x, y);
    ck_assert_uint_lt(x, 1000000);
    same_c += health__rand_below(c, 1000000) == x;
  }
  ck_assert_uint_lt(same_c, 5); /* an unseeded handle draws its own */
  ck_assert_uint_eq(health__rand_below(a, 0), 0);
  health_free(a);
  health_free(b);
  health_free(c);
}
END_TEST

static int fleet_eq(const health_fleet_options_t *a, const health_fleet_options_t *b) {
  return a->initial_offset == b->initial_offset && a->run_jitter_percent == b->run_jitter_percent &&
         a->backoff == b->backoff && a->keep_connections == b->keep_connections &&
         a->seed == b->seed;
}

START_TEST(test_options_and_env) {
  health_fleet_options_t o, d;
  health_fleet_options_init(&d);
  ck_assert_int_eq(d.initial_offset, 1);
  ck_assert_uint_eq(d.run_jitter_percent, 10);
  ck_assert_int_eq(d.backoff, 1);
  ck_assert_int_eq(d.keep_connections, 1);
  health_error_t err = {0};

  health_fleet_options_init(&o);
  setenv("HEALTH_JITTER", "off", 1);
  setenv("HEALTH_KEEP_CONNECTIONS", "no", 1);
  ck_assert_int_eq(health_fleet_options_from_env(&o, &err), 0);
  ck_assert(o.initial_offset == 0 && o.run_jitter_percent == 0 && o.backoff == 0);
  ck_assert_int_eq(o.keep_connections, 0);
  setenv("HEALTH_JITTER", "25", 1);
  unsetenv("HEALTH_KEEP_CONNECTIONS");
  ck_assert_int_eq(health_fleet_options_from_env(&o, &err), 0);
  ck_assert(o.initial_offset == 1 && o.run_jitter_percent == 25 && o.backoff == 1);
  ck_assert_int_eq(o.keep_connections, 0); /* unset: unchanged */
  setenv("HEALTH_JITTER", "ON", 1);
  ck_assert_int_eq(health_fleet_options_from_env(&o, &err), 0);
  ck_assert_uint_eq(o.run_jitter_percent, 10);

  /* Bad values: an error naming the variable, options untouched. */
  const char *bad_jitter[] = {"51", "-1", "10%", "maybe", " 5", "100"};
  for (size_t i = 0; i < sizeof bad_jitter / sizeof *bad_jitter; i++) {
    health_fleet_options_t before = o;
    setenv("HEALTH_JITTER", bad_jitter[i], 1);
    ck_assert_int_eq(health_fleet_options_from_env(&o, &err), HEALTH_EINVAL);
    ck_assert_msg(strstr(err.text, "HEALTH_JITTER"), "%s", err.text);
    ck_assert(fleet_eq(&before, &o));
  }
  unsetenv("HEALTH_JITTER");
  setenv("HEALTH_KEEP_CONNECTIONS", "sometimes", 1);
  health_fleet_options_t before = o;
  ck_assert_int_eq(health_fleet_options_from_env(&o, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "HEALTH_KEEP_CONNECTIONS"), "%s", err.text);
  ck_assert(fleet_eq(&before, &o));
  unsetenv("HEALTH_KEEP_CONNECTIONS");
  ck_assert_int_eq(health_fleet_options_from_env(NULL, &err), HEALTH_EINVAL);

  /* health_fleet_set: range, reserved space, before start only. */
  health_t *h = new_handle(NULL);
  health_fleet_options_init(&o);
  o.run_jitter_percent = 51;
  ck_assert_int_eq(health_fleet_set(h, &o, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "run_jitter_percent"), "%s", err.text);
  ck_assert_uint_eq(h->fleet.run_percent, 10); /* unchanged */
  health_fleet_options_init(&o);
  o.reserved[2] = &o;
  ck_assert_int_eq(health_fleet_set(h, &o, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_fleet_set(NULL, NULL, &err), HEALTH_EINVAL);
  health_fleet_options_init(&o);
  o.keep_connections = 0;
  ck_assert_int_eq(health_fleet_set(h, &o, &err), 0);
  ck_assert_int_eq(h->fleet.keep_connections, 0);
  ck_assert_int_eq(health_fleet_set(h, NULL, &err), 0); /* back to defaults */
  ck_assert_int_eq(h->fleet.keep_connections, 1);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert_int_eq(health_fleet_set(h, &o, &err), HEALTH_ESTATE);
  ck_assert_int_eq(h->fleet.keep_connections, 1);
  health_stop(h);
  health_free(h);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("fleet");
  TCase *t = tcase_create("fleet");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_schedule_draws);
  tcase_add_test(t, test_phase_spreads_runs);
  tcase_add_test(t, test_run_jitter_bounds);
  tcase_add_test(t, test_backoff_cap);
  tcase_add_test(t, test_seeded_sequence);
  tcase_add_test(t, test_options_and_env);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
