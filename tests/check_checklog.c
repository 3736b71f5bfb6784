/* What the log tells an operator, and the inputs refused before anything
 * runs: a hung check produces a check_status line naming the check and the
 * timeout within interval + timeout + 100 ms, and keeps that first cause
 * when its result goes stale; a flapping check is logged once, then
 * summarised; the shutdown plan is logged at start with a warning for each
 * hook the deadline may cut, and an impossible one is refused by
 * health_start(); health_wait() before start returns at once; names,
 * booleans and duplicates are checked. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health_int.h"
#include "testhelp.h"

/* The log, also kept here so that a test can read it while library
 * threads write (th_log_text() is for after the fact). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_text;
static size_t g_len;

static void capture(health_log_level_t level, const char *line, void *arg) {
  th_capture_log(level, line, arg);
  size_t n = strlen(line);
  pthread_mutex_lock(&g_lock);
  char *p = realloc(g_text, g_len + n + 2);
  if (p) {
    memcpy(p + g_len, line, n);
    p[g_len + n] = '\n';
    p[g_len + n + 1] = 0;
    g_text = p;
    g_len += n + 1;
  }
  pthread_mutex_unlock(&g_lock);
}

static health_t *new_handle(health_log_level_t level) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = capture;
  o.log_level = level;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  th_log_clear();
  return h;
}

/* mono_ms of the first captured line containing all of a, b (b may be
 * NULL); -1 if none. */
static double line_ms_locked(const char *a, const char *b);

static double line_ms(const char *a, const char *b) {
  pthread_mutex_lock(&g_lock);
  double ms = line_ms_locked(a, b);
  pthread_mutex_unlock(&g_lock);
  return ms;
}

static double line_ms_locked(const char *a, const char *b) {
  const char *text = g_text;
  if (!text) return -1;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = strndup(p, n);
    int hit = line && strstr(line, a) && (!b || strstr(line, b));
    double ms = -1;
    if (hit) {
      const char *m = strstr(line, "\"mono_ms\":");
      if (m) ms = strtod(m + 10, NULL);
    }
    free(line);
    if (hit) return ms;
    p += n + (nl ? 1 : 0);
  }
  return -1;
}

/* ---- a hung check ---- */

static int g_release[2] = {-1, -1};
static _Atomic uint64_t g_hang_began;
static atomic_int g_runs;

/* Passes once, then hangs (30 s at most, or until released). */
static void hang_after_first(health_result_t *r, void *arg) {
  (void)arg;
  if (atomic_fetch_add(&g_runs, 1) > 0) {
    atomic_store(&g_hang_began, th_now_ms());
    struct pollfd p = {g_release[0], POLLIN, 0};
    while (poll(&p, 1, 30000) < 0 && errno == EINTR) {}
  }
  health_result_set(r, HEALTH_PASS, NULL);
}

static int line_seen(void *arg) { return line_ms((const char *)arg, NULL) >= 0; }

static int is_failed(void *arg) { return health_status(arg, HEALTH_READINESS) == HEALTH_FAIL; }

START_TEST(test_hung_check_logged_with_first_cause) {
  ck_assert_int_eq(pipe2(g_release, O_CLOEXEC), 0);
  health_t *h = new_handle(HEALTH_LOG_INFO);
  health_check_options_t co;
  health_check_options_init(&co);
  /* 1 s and 500 ms; scaled under valgrind, where a first run may take
   * longer than 500 ms by itself. */
  const unsigned iv = TS(1000), to = TS(500);
  char msg[64];
  snprintf(msg, sizeof msg, "timeout after %u ms", to);
  co.interval_ms = iv;
  co.timeout_ms = to; /* failure threshold: the default 2 */
  health_error_t err = {0};
  ck_assert_int_eq(health_check_add(h, "hung", hang_after_first, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);

  /* The timeout: a line naming the check and the timeout, within
   * interval + timeout + 100 ms of the hang starting (here: its timeout). */
  ck_assert(th_wait_until(line_seen, msg, TS(5000)));
  double t_line = line_ms("\"event\":\"check_status\",\"check\":\"hung\"", msg);
  double began = (double)atomic_load(&g_hang_began);
  ck_assert_msg(t_line > 0 && began > 0, "%s", th_log_text());
  ck_assert_msg(t_line - began <= iv + to + TS(100), "check_status %.1f ms after the hang began",
                t_line - began);
  /* (No lower bound from here: the deadline runs from dispatch, a little
   * before the callback noted the time.) */

  /* One failure of two: still reported passing, but not silently.  Then
   * staleness takes readiness down, logged, and the output keeps the
   * first cause instead of "stale". */
  ck_assert(th_wait_until(is_failed, h, iv + 2 * to + TS(3000)));
  /* The line that takes it to fail.  Its cause is "stale" when the
   * scheduler notices the result aged past interval + timeout, or
   * "timeout" when it is the stuck run's own deadline bookkeeping that
   * counts the second failure (seen under valgrind); either way it is
   * logged, and it keeps the first cause as its output. */
  if (!th_wait_until(line_seen, "\"to\":\"fail\"", TS(2000))) {
    fprintf(stderr, "%s\n", th_log_text());
    ck_abort_msg("no check_status line to fail (log above)");
  }
  char out_field[96];
  snprintf(out_field, sizeof out_field, "\"output\":\"%s\"", msg);
  ck_assert_msg(line_ms("\"to\":\"fail\"", out_field) > 0,
                "the line to fail lost the first cause: %s", th_log_text());
  ck_assert_msg(line_ms("\"to\":\"fail\"", "\"cause\":\"stale\"") > 0 ||
                    line_ms("\"to\":\"fail\"", "\"cause\":\"timeout\"") > 0,
                "the line to fail names no cause: %s", th_log_text());
  health_check_info_t info;
  ck_assert_int_eq(health_check_find(h, "hung", &info, NULL), 0);
  ck_assert_int_eq(info.status, HEALTH_FAIL);
  ck_assert_str_eq(info.output, msg);
  /* The endpoint renders with the coarse clock: one tick behind at most. */
  th_want_t w = {health_port(h), "/ready", 503};
  ck_assert(th_wait_until(th_status_is, &w, TS(200)));
  th_response_t r;
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &r), 0);
  ck_assert_msg(r.status == 503, "/ready %d: %s", r.status, r.body);
  ck_assert_ptr_nonnull(strstr(r.body, msg));
  ck_assert_ptr_null(strstr(r.body, "stale"));
  th_response_free(&r);

  ck_assert_int_eq(write(g_release[1], "x", 1), 1);
  health_free(h);
}
END_TEST

/* ---- a flapping check ---- */

static atomic_int g_flap;

static void flap(health_result_t *r, void *arg) {
  (void)arg;
  if (atomic_fetch_add(&g_flap, 1) % 2)
    health_result_set(r, HEALTH_FAIL, "refused by 10.0.0.%d", g_flap % 250);
  else health_result_set(r, HEALTH_PASS, NULL);
}

static int enough_flaps(void *arg) {
  (void)arg;
  return atomic_load(&g_flap) >= 30;
}

START_TEST(test_flapping_logged_once_then_summarized) {
  health_t *h = new_handle(HEALTH_LOG_INFO);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 20;
  co.timeout_ms = TS(1000) < 10000 ? TS(1000) : 10000;
  co.failure_threshold = 1;
  co.success_threshold = 1;
  health_error_t err = {0};
  ck_assert_int_eq(health_check_add(h, "flappy", flap, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert(th_wait_until(enough_flaps, NULL, TS(10000)));
  health_stop(h);
  /* Each distinct transition once at info/warn (digits aside), the rest
   * summarised when the handle stopped. */
  ck_assert_int_eq(
      th_log_count("\"event\":\"check_status\",\"check\":\"flappy\",\"from\":\"pending\""), 1);
  ck_assert_msg(th_log_count("\"check\":\"flappy\",\"from\":\"pass\",\"to\":\"fail\"") == 1, "%s",
                th_log_text());
  ck_assert_int_eq(th_log_count("\"check\":\"flappy\",\"from\":\"fail\",\"to\":\"pass\""), 1);
  ck_assert_msg(
      th_log_contains("\"event\":\"log_repeated\",\"of\":\"check_status\",\"subject\":\"flappy\""),
      "no summary: %s", th_log_text());
  health_free(h);
}
END_TEST

/* Under debug, the repeats are there, marked. */
START_TEST(test_repeats_visible_at_debug) {
  atomic_store(&g_flap, 0);
  health_t *h = new_handle(HEALTH_LOG_DEBUG);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 20;
  co.timeout_ms = TS(1000) < 10000 ? TS(1000) : 10000;
  co.failure_threshold = 1;
  health_error_t err = {0};
  ck_assert_int_eq(health_check_add(h, "flappy", flap, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert(th_wait_until(enough_flaps, NULL, TS(10000)));
  health_stop(h);
  ck_assert_int_ge(
      th_log_count("\"level\":\"debug\",\"lib\":\"libhealth\",\"event\":\"check_status\""), 5);
  ck_assert_int_ge(th_log_count("\"repeat\":true"), 5);
  health_free(h);
}
END_TEST

/* ---- the shutdown plan ---- */

static int noop_hook(void *arg, unsigned budget) {
  (void)arg, (void)budget;
  return 0;
}

START_TEST(test_plan_logged_with_risks) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = th_capture_log;
  o.drain_ms = 1000;
  o.shutdown_deadline_ms = 3000;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  th_log_clear();
  ck_assert_int_eq(health_hook_add(h, "late", 20, 500, noop_hook, NULL, &err), 0);
  ck_assert_int_eq(health_hook_add(h, "second", 10, 1000, noop_hook, NULL, &err), 0);
  ck_assert_int_eq(health_hook_add(h, "first", 0, 1500, noop_hook, NULL, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert_int_eq(th_log_count("\"event\":\"shutdown_plan\""), 1);
  ck_assert(th_log_contains(
      "\"drain_ms\":1000,\"drain_min_ms\":1000,\"drain_early_end\":\"never\",\"deadline_ms\":3000"));
  ck_assert(th_log_contains(
      "{\"name\":\"first\",\"order\":0,\"timeout_ms\":1500,\"budget_ms\":1500,\"latest_start_ms\":1000}"));
  ck_assert(th_log_contains(
      "{\"name\":\"second\",\"order\":10,\"timeout_ms\":1000,\"budget_ms\":500,\"latest_start_ms\":2500}"));
  ck_assert(th_log_contains(
      "{\"name\":\"late\",\"order\":20,\"timeout_ms\":500,\"budget_ms\":0,\"latest_start_ms\":3000}"));
  /* "second" may be cut by 500 ms; "late" may not run at all. */
  ck_assert(th_log_contains(
      "\"level\":\"warn\",\"lib\":\"libhealth\",\"event\":\"shutdown_plan_risk\",\"hook\":\"second\",\"timeout_ms\":1000,\"budget_ms\":500,\"cut_ms\":500,\"deadline_needed_ms\":3500"));
  ck_assert(th_log_contains("\"event\":\"shutdown_plan_risk\",\"hook\":\"late\""));
  ck_assert(th_log_contains("may not run at all"));
  ck_assert(!th_log_contains("\"shutdown_plan_risk\",\"hook\":\"first\""));
  /* At the signal, again with absolute times; hook_started logs the real
   * budget. */
  health_shutdown(h);
  ck_assert_int_eq(health_wait(h), 0);
  ck_assert(th_log_contains("\"event\":\"shutdown_plan\",\"at\":\"signal\",\"signal_mono_ms\":"));
  ck_assert(th_log_contains("\"deadline_at\":\""));
  ck_assert(th_log_contains("\"event\":\"hook_started\",\"hook\":\"first\",\"budget_ms\":"));
  health_free(h);
}
END_TEST

START_TEST(test_impossible_plan_refused_by_start) {
  health_t *h = new_handle(HEALTH_LOG_INFO);
  health_error_t err = {0};
  /* health_new() refuses this already; options changed behind its back
   * (the test reaches inside) show that health_start() checks too. */
  h->opt.drain_ms = h->opt.shutdown_deadline_ms;
  ck_assert_int_eq(health_start(h, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MS"));
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_SHUTDOWN_DEADLINE_MS"));
  h->opt.drain_ms = 100;
  h->opt.drain_min_ms = 200;
  ck_assert_int_eq(health_start(h, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MIN_MS"));
  /* Nothing changed: fixed, the same handle starts. */
  h->opt.drain_min_ms = 100;
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
  health_free(h);
}
END_TEST

/* ---- strict inputs ---- */

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

START_TEST(test_wait_before_start) {
  health_t *h = new_handle(HEALTH_LOG_OFF);
  uint64_t t = th_now_ms();
  ck_assert_int_eq(health_wait(h), HEALTH_ESTATE);
  ck_assert_uint_lt(th_now_ms() - t, TS(100));
  ck_assert_int_eq(health_wait(NULL), HEALTH_EINVAL);
  health_free(h);
}
END_TEST

START_TEST(test_names_and_booleans) {
  health_t *h = new_handle(HEALTH_LOG_WARN);
  health_error_t err = {0};
  health_check_options_t co;
  /* Measurement names follow the key grammar: no ':' */
  static const char *bad_measurements[] = {"a:b", ":", "", "has space", "x\ny", "é"};
  for (size_t i = 0; i < sizeof bad_measurements / sizeof *bad_measurements; i++) {
    health_check_options_init(&co);
    co.measurement = bad_measurements[i];
    ck_assert_msg(health_check_add(h, "m", pass_check, NULL, NULL, &co, &err) == HEALTH_EINVAL,
                  "measurement '%s' accepted", bad_measurements[i]);
    ck_assert_ptr_nonnull(strstr(err.text, "measurement"));
  }
  ck_assert_int_eq(health_check_add(h, "a:b", pass_check, NULL, NULL, NULL, &err), HEALTH_EINVAL);
  /* critical is a boolean. */
  static const int bad_critical[] = {7, -1, 2};
  for (size_t i = 0; i < 3; i++) {
    health_check_options_init(&co);
    co.critical = bad_critical[i];
    ck_assert_int_eq(health_check_add(h, "c", pass_check, NULL, NULL, &co, &err), HEALTH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "critical must be 0 or 1"));
  }
  ck_assert_uint_eq(h->eng.nchecks, 0); /* nothing was registered */
  health_check_options_init(&co);
  co.measurement = "queue.depth_1-x";
  ck_assert_int_eq(health_check_add(h, "ok", pass_check, NULL, NULL, &co, &err), 0);
  ck_assert_str_eq(h->eng.checks[0]->key, "ok:queue.depth_1-x");

  /* A timeout not below the interval: kept, with a warning saying so. */
  health_check_options_init(&co);
  co.interval_ms = 1000;
  co.timeout_ms = 1000;
  ck_assert_int_eq(health_check_add(h, "slowish", pass_check, NULL, NULL, &co, &err), 0);
  ck_assert(th_log_contains(
      "\"event\":\"check_timeout_not_below_interval\",\"check\":\"slowish\",\"timeout_ms\":1000,\"interval_ms\":1000"));

  /* Hooks: the check-name grammar, unique. */
  static const char *bad_hooks[] = {"", "a:b", "with space", "x/y"};
  for (size_t i = 0; i < sizeof bad_hooks / sizeof *bad_hooks; i++)
    ck_assert_msg(health_hook_add(h, bad_hooks[i], 0, 0, noop_hook, NULL, &err) == HEALTH_EINVAL,
                  "hook name '%s' accepted", bad_hooks[i]);
  char longname[70];
  memset(longname, 'k', 65);
  longname[65] = 0;
  ck_assert_int_eq(health_hook_add(h, longname, 0, 0, noop_hook, NULL, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_hook_add(h, "flush", 0, 0, noop_hook, NULL, &err), 0);
  ck_assert_int_eq(health_hook_add(h, "flush", 5, 100, noop_hook, NULL, &err), HEALTH_EEXIST);
  ck_assert_int_eq(err.code, HEALTH_EEXIST);
  ck_assert_ptr_nonnull(strstr(err.text, "flush"));
  ck_assert_uint_eq(h->sd.nhooks, 1);
  health_free(h);

  /* Option booleans are 0 or 1 (handle_signals 0, 1 or 2). */
  health_options_t o;
  health_options_init(&o);
  o.handle_signals = 3;
  ck_assert_int_eq(health_new(&h, &o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_HANDLE_SIGNALS"));
  health_options_init(&o);
  o.exit_on_shutdown = -1;
  ck_assert_int_eq(health_new(&h, &o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_EXIT"));

  /* The checkers' booleans too. */
  h = new_handle(HEALTH_LOG_OFF);
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  pg.require_writable = 3;
  int rc = health_postgres_add(h, "db", "postgres://u:p@127.0.0.1/x", &pg, NULL, &err);
  ck_assert_msg(rc == HEALTH_EINVAL || rc == HEALTH_ENOTSUP, "rc %d", rc);
  health_redis_options_t ro;
  health_redis_options_init(&ro);
  ro.require_master = 5;
  rc = health_redis_add(h, "cache", "redis://127.0.0.1:6379", &ro, NULL, &err);
  ck_assert_msg(rc == HEALTH_EINVAL || rc == HEALTH_ENOTSUP, "rc %d", rc);
  ck_assert_uint_eq(h->eng.nchecks, 0);
  health_free(h);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("checklog");
  TCase *t = tcase_create("log");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_hung_check_logged_with_first_cause);
  tcase_add_test(t, test_flapping_logged_once_then_summarized);
  tcase_add_test(t, test_repeats_visible_at_debug);
  tcase_add_test(t, test_plan_logged_with_risks);
  tcase_add_test(t, test_impossible_plan_refused_by_start);
  suite_add_tcase(s, t);
  t = tcase_create("strict");
  tcase_set_timeout(t, 20);
  tcase_add_test(t, test_wait_before_start);
  tcase_add_test(t, test_names_and_booleans);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
