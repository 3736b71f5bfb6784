/* health_config_from_env(): every family of HEALTH_* variables in one call
 * (options, fleet, paths, controls, checks, HEALTH_NOFILE_MAX), all or
 * nothing, unknown names logged by name, nothing read implicitly. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"
#include "testhelp.h"

extern char **environ;

/* Start from an environment without HEALTH_* settings (the runner's own
 * HEALTH_TEST_* stay). */
static void clean_env(void) {
  char names[64][128];
  size_t n = 0;
  for (char **e = environ; e && *e && n < 64; e++) {
    size_t len = strcspn(*e, "=");
    if (strncmp(*e, "HEALTH_", 7) || len >= 128 || !strncmp(*e, "HEALTH_TEST_", 12)) continue;
    memcpy(names[n], *e, len);
    names[n++][len] = 0;
  }
  for (size_t i = 0; i < n; i++) unsetenv(names[i]);
}

/* "env_unknown" lines, but for the runner's own HEALTH_TEST_* variables. */
static int unknown_logged(void) {
  int n = 0;
  for (const char *l = th_log_text(); l && *l;) {
    size_t len = strcspn(l, "\n");
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)len, l);
    if (strstr(line, "env_unknown") && !strstr(line, "HEALTH_TEST_")) n++;
    l += len + (l[len] != 0);
  }
  return n;
}

static health_t *new_handle(void) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.service_id = "program";
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  health_t *h = NULL;
  health_error_t err;
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  return h;
}

/* One valid variable of each family. */
static void set_valid(void) {
  setenv("HEALTH_DRAIN_MS", "5000", 1);
  setenv("HEALTH_SERVICE_ID", "from-env", 1);
  setenv("HEALTH_CHECK_INTERVAL_MS", "700", 1);
  setenv("HEALTH_JITTER", "off", 1);
  setenv("HEALTH_KEEP_CONNECTIONS", "0", 1);
  setenv("HEALTH_READY_PATH", "/r", 1);
  setenv("HEALTH_STARTUP_DEADLINE_MS", "1234", 1);
  setenv("HEALTH_AGENT_PORT", "0", 1);
  setenv("HEALTH_AGENT_WEIGHT", "50", 1);
  setenv("HEALTH_NOFILE_MAX", "600", 1);
  setenv("HEALTH_CHECK_MEM", "memory:", 1);
}

/* The handle as health_new() left it. */
static void assert_untouched(health_t *h) {
  ck_assert_uint_eq(h->opt.drain_ms, 15000);
  ck_assert_uint_eq(h->opt.drain_min_ms, 15000);
  ck_assert_str_eq(h->opt.service_id, "program");
  ck_assert_uint_eq(h->opt.check_interval_ms, 5000);
  ck_assert_int_eq(h->fleet.initial_offset, 1);
  ck_assert_int_eq(h->fleet.keep_connections, 1);
  ck_assert_uint_eq(health__route(h, "/ready"), HEALTH_READINESS);
  ck_assert_uint_eq(health__route(h, "/r"), 0);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 0);
  ck_assert_int_eq(h->ctl->agent_enabled, 0);
  ck_assert_int_eq(h->http.nofile_set, 0);
  ck_assert_uint_eq(health__checks_count(h), 0);
}

START_TEST(test_every_family_applied) {
  clean_env();
  set_valid();
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_msg(health_config_from_env(h, &err) == 0, "%s", err.text);
  unsetenv("HEALTH_SERVICE_ID"); /* copied, not pointed to */
  ck_assert_uint_eq(h->opt.drain_ms, 5000);
  ck_assert_uint_eq(h->opt.drain_min_ms, 5000); /* unset: follows the drain */
  ck_assert_str_eq(h->opt.service_id, "from-env");
  ck_assert_int_eq(h->fleet.initial_offset, 0);
  ck_assert_uint_eq(h->fleet.run_percent, 0);
  ck_assert_int_eq(h->fleet.keep_connections, 0);
  ck_assert_uint_eq(health__route(h, "/r"), HEALTH_READINESS);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 1234);
  ck_assert_int_eq(h->ctl->agent_enabled, 1);
  ck_assert_int_eq(h->http.nofile_set, 1);
  ck_assert_uint_eq(h->http.nofile_max, 600);
  ck_assert_uint_eq(health__checks_count(h), 1);
  /* The check from the environment takes the new default interval. */
  ck_assert_uint_eq(h->eng.checks[0]->interval_ms, 700);
  ck_assert(th_log_contains("check_from_env"));
  ck_assert_int_eq(unknown_logged(), 0);
  health_free(h);
}
END_TEST

/* A bad variable of each family, beside valid ones of every family: the
 * call fails naming it, and nothing at all changes. */
START_TEST(test_all_or_nothing) {
  static const char *bad[][2] = {
      {"HEALTH_DRAIN_MS", "5s"},                      /* options */
      {"HEALTH_SHUTDOWN_DEADLINE_MS", "4000"},        /* options: below the drain */
      {"HEALTH_JITTER", "51"},                        /* fleet */
      {"HEALTH_KEEP_CONNECTIONS", "maybe"},           /* fleet */
      {"HEALTH_READY_PATH", "ready"},                 /* paths */
      {"HEALTH_AGENT_WEIGHT", "+5"},                  /* controls */
      {"HEALTH_AGENT_ADDRESS", "localhost"},          /* controls */
      {"HEALTH_CHECK_BROKEN", "ftp://x"},             /* checks: parse */
      {"HEALTH_CHECK_BROKEN", "http://127.0.0.1:0/"}, /* checks: registration */
      {"HEALTH_NOFILE_MAX", "+5"},                    /* nofile */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    clean_env();
    set_valid();
    setenv(bad[i][0], bad[i][1], 1);
    health_t *h = new_handle();
    health_error_t err;
    int rc = health_config_from_env(h, &err);
    ck_assert_msg(rc != 0, "%s=%s accepted", bad[i][0], bad[i][1]);
    ck_assert_msg(strstr(err.text, bad[i][0]) != NULL, "%s: '%s' does not name it", bad[i][0],
                  err.text);
    assert_untouched(h);
    health_free(h);
  }
}
END_TEST

START_TEST(test_unknown_logged) {
  clean_env();
  setenv("HEALTH_DRAIN_MSS", "5000", 1); /* a typo */
  setenv("HEALTH_DRAIN_MIN_MS", "1000", 1);
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_msg(health_config_from_env(h, &err) == 0, "%s", err.text);
  ck_assert(th_log_contains("env_unknown"));
  ck_assert(th_log_contains("HEALTH_DRAIN_MSS"));
  ck_assert_int_eq(unknown_logged(), 1);
  ck_assert(!th_log_contains("HEALTH_DRAIN_MIN_MS"));
  ck_assert_uint_eq(h->opt.drain_ms, 15000);
  ck_assert_uint_eq(h->opt.drain_min_ms, 1000);
  health_free(h);
}
END_TEST

/* health_start() reads nothing: a malformed HEALTH_NOFILE_MAX is not seen
 * without the call, and the call refuses it. */
START_TEST(test_nothing_implicit) {
  clean_env();
  setenv("HEALTH_NOFILE_MAX", "lots", 1);
  setenv("HEALTH_JITTER", "51", 1);
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
  ck_assert_int_eq(h->http.nofile_set, 0);
  ck_assert_int_eq(health_config_from_env(h, &err), HEALTH_ESTATE);
  health_free(h);
  h = new_handle();
  ck_assert_int_eq(health_config_from_env(h, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_"));
  health_free(h);
  ck_assert_int_eq(health_config_from_env(NULL, &err), HEALTH_EINVAL);
}
END_TEST

/* Applied twice, the second call starts from the first's result: a drain
 * minimum that followed the drain keeps following it. */
START_TEST(test_drain_min_follows) {
  clean_env();
  setenv("HEALTH_DRAIN_MS", "3000", 1);
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_msg(health_config_from_env(h, &err) == 0, "%s", err.text);
  setenv("HEALTH_DRAIN_MS", "2000", 1);
  ck_assert_msg(health_config_from_env(h, &err) == 0, "%s", err.text);
  ck_assert_uint_eq(h->opt.drain_ms, 2000);
  ck_assert_uint_eq(h->opt.drain_min_ms, 2000);
  health_free(h);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("config");
  TCase *t = tcase_create("config");
  tcase_set_timeout(t, 30);
  tcase_add_test(t, test_every_family_applied);
  tcase_add_test(t, test_all_or_nothing);
  tcase_add_test(t, test_unknown_logged);
  tcase_add_test(t, test_nothing_implicit);
  tcase_add_test(t, test_drain_min_follows);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
