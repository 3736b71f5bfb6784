/* Checks configured from HEALTH_CHECK_<NAME> variables: every checker
 * through the environment form, option variables, and malformed values
 * that are refused naming the variable, without echoing a password, and
 * without registering anything (all or nothing). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health_int.h" /* health__env_amount */
#include "httpd.h"
#include "testhelp.h"

#define SECRET "Env-pw-Secret-77x"

extern char **environ;

static const char *fmt(const char *f, ...) {
  static char buf[8][1024];
  static int k;
  va_list ap;
  char *b = buf[k++ % 8];
  va_start(ap, f);
  vsnprintf(b, sizeof buf[0], f, ap);
  va_end(ap);
  return b;
}

static health_t *new_handle(void) {
  health_options_t o;
  health_error_t err;
  health_t *h = NULL;
  health_options_init(&o);
  o.port = 0;
  o.address = "127.0.0.1";
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  return h;
}

/* Remove every HEALTH_CHECK_* variable. */
static void clear_env(void) {
  for (;;) {
    char name[256] = "";
    for (char **e = environ; *e; e++)
      if (strncmp(*e, "HEALTH_CHECK_", 13) == 0) {
        snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
        break;
      }
    if (!name[0]) return;
    unsetenv(name);
  }
}

/* Which optional checkers this build has. */
static int have(const char *url) {
  health_t *h = new_handle();
  int rc = strncmp(url, "redis", 5) == 0   ? health_redis_add(h, "p", url, NULL, NULL, NULL)
           : strncmp(url, "https", 5) == 0 ? health_http_add(h, "p", url, NULL, NULL, NULL)
                                           : health_postgres_add(h, "p", url, NULL, NULL, NULL);
  health_free(h);
  return rc != HEALTH_ENOTSUP;
}

typedef struct w {
  health_t *h;
  const char *name;
  health_status_t st;
} w_t;

static int cond(void *arg) {
  w_t *w = arg;
  health_check_info_t i;
  return health_check_find(w->h, w->name, &i, NULL) == 0 && i.runs > 0 && i.last_status == w->st;
}

static health_check_info_t wait_for(health_t *h, const char *name, health_status_t st) {
  w_t w = {h, name, st};
  health_check_info_t i;
  int ok = th_wait_until(cond, &w, TS(8000));
  ck_assert_int_eq(health_check_find(h, name, &i, NULL), 0);
  ck_assert_msg(ok, "%s: wanted %d, last %d \"%s\"", name, st, i.last_status, i.output);
  return i;
}

START_TEST(test_every_checker) {
  unsigned hport, tport;
  th_httpd_t *s = th_httpd_start(NULL, NULL, NULL, &hport);
  ck_assert_ptr_nonnull(s);
  th_httpd_set(s, TH_HTTPD_ANSWER, 200, NULL, "all good");
  int lfd = th_blackhole(&tport);
  ck_assert_int_ge(lfd, 0);
  char *cg = th_tmpdir("cgroup");
  FILE *f = fopen(fmt("%s/memory.max", cg), "w");
  fputs("max\n", f);
  fclose(f);
  f = fopen(fmt("%s/memory.events", cg), "w");
  fputs("oom_kill 0\n", f);
  fclose(f);

  clear_env();
  setenv("HEALTH_CHECK_INTERVAL_MS", "1000", 1); /* the handle's default, not a check */
  setenv("HEALTH_CHECK_TIMEOUT_MS", "1000", 1);
  setenv("HEALTH_CHECK_API", fmt("http://127.0.0.1:%u/health", hport), 1);
  setenv("HEALTH_CHECK_API_EXPECT", "good", 1);
  setenv("HEALTH_CHECK_API_STATUS", "2xx", 1);
  setenv("HEALTH_CHECK_API_INTERVAL_MS", "50", 1);
  setenv("HEALTH_CHECK_API_FAILURE_THRESHOLD", "1", 1);
  setenv("HEALTH_CHECK_UPSTREAM", fmt("tcp://127.0.0.1:%u", tport), 1);
  setenv("HEALTH_CHECK_UPSTREAM_TIMEOUT_MS", "300", 1);
  setenv("HEALTH_CHECK_SCRATCH", "disk:/tmp", 1);
  setenv("HEALTH_CHECK_SCRATCH_WARN", "0.5%", 1);
  setenv("HEALTH_CHECK_SCRATCH_FAIL", "1M", 1);
  setenv("HEALTH_CHECK_SCRATCH_INODES_FAIL", "1", 1);
  setenv("HEALTH_CHECK_SCRATCH_WRITE_PROBE", "yes", 1);
  setenv("HEALTH_CHECK_MEM", "memory:", 1);
  setenv("HEALTH_CHECK_MEM_CGROUP_DIR", cg, 1);
  setenv("HEALTH_CHECK_MEM_LIVENESS", "1", 1);
  setenv("HEALTH_CHECK_MEM_OOM_KILL", "fail", 1);
  setenv("HEALTH_CHECK_MEM_INTERVAL_MS", "50", 1);
  setenv("HEALTH_CHECK_MEM_FAILURE_THRESHOLD", "1", 1);
  setenv("HEALTH_CHECK_OPEN_FILES", "fds:", 1);
  setenv("HEALTH_CHECK_OPEN_FILES_WARN", "85%", 1);
  unsigned want = 5;
  int pg = have("postgresql://localhost/x"), redis = have("redis://localhost");
  int tls = have("https://localhost/");
  if (pg) {
    setenv("HEALTH_CHECK_DB", "postgresql://app:" SECRET "@127.0.0.1:1/app", 1);
    setenv("HEALTH_CHECK_DB_CRITICAL", "0", 1);
    setenv("HEALTH_CHECK_DB_QUERY", "SELECT 2", 1);
    setenv("HEALTH_CHECK_DB_REQUIRE_WRITABLE", "1", 1);
    want++;
  }
  if (redis) {
    setenv("HEALTH_CHECK_CACHE", "rediss://:" SECRET "@127.0.0.1:1/0", 1);
    setenv("HEALTH_CHECK_CACHE_CRITICAL", "false", 1);
    setenv("HEALTH_CHECK_CACHE_INSECURE_SKIP_VERIFY", "1", 1);
    setenv("HEALTH_CHECK_CACHE_REQUIRE_MASTER", "on", 1);
    want++;
  }
  if (tls) {
    setenv("HEALTH_CHECK_SECURE", "https://localhost:1/", 1);
    setenv("HEALTH_CHECK_SECURE_SERVER_NAME", "other.example", 1);
    setenv("HEALTH_CHECK_SECURE_CRITICAL", "0", 1);
    setenv("HEALTH_CHECK_SECURE_METHOD", "HEAD", 1);
    want++;
  }

  health_t *h = new_handle();
  health_error_t err;
  unsigned added = 0;
  ck_assert_msg(health_check_add_from_env(h, &added, &err) == 0, "%s", err.text);
  ck_assert_uint_eq(added, want);
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);

  wait_for(h, "api", HEALTH_PASS);
  ck_assert_msg(strncmp(fmt("%s", ""), "", 1) == 0, "");
  char last[4096];
  th_httpd_last(s, last, sizeof last);
  ck_assert_msg(strncmp(last, "GET /health HTTP/1.0", 20) == 0, "%s", last);
  wait_for(h, "upstream", HEALTH_PASS);
  wait_for(h, "scratch", HEALTH_PASS);
  wait_for(h, "mem", HEALTH_PASS);
  wait_for(h, "open_files", HEALTH_PASS);
  if (pg) {
    health_check_info_t i = wait_for(h, "db", HEALTH_FAIL);
    ck_assert_str_eq(i.output, "connect failed: connection refused");
  }
  if (redis) {
    health_check_info_t i = wait_for(h, "cache", HEALTH_FAIL);
    ck_assert_str_eq(i.output, "connect failed: connection refused");
  }
  if (tls) wait_for(h, "secure", HEALTH_FAIL);
  /* non-critical failures: ready with a warning */
  ck_assert_int_eq(health_status(h, HEALTH_READINESS),
                   pg || redis || tls ? HEALTH_WARN : HEALTH_PASS);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_PASS);

  /* options took effect: the API's text, the memory check in liveness */
  th_httpd_set(s, TH_HTTPD_ANSWER, 200, NULL, "all bad");
  health_check_info_t i = wait_for(h, "api", HEALTH_FAIL);
  ck_assert_str_eq(i.output, "expected text not found in the body");
  f = fopen(fmt("%s/memory.events", cg), "w");
  fputs("oom_kill 1\n", f);
  fclose(f);
  i = wait_for(h, "mem", HEALTH_FAIL);
  ck_assert_str_eq(i.output, "1 OOM kill in the container since the previous run");
  w_t lw = {h, "mem", HEALTH_FAIL};
  (void)lw;
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_FAIL);
  ck_assert_msg(!th_log_contains(SECRET), "%s", th_log_text());
  ck_assert(th_log_contains("\"check_from_env\""));
  health_free(h);
  close(lfd);
  th_httpd_stop(s);
  th_remove_dir("check_env_checks", cg);
  free(cg);
}
END_TEST

/* Each case: variables (NULL-terminated "NAME=value" list), the expected
 * code and a piece of the message. */
typedef struct bad_case {
  const char *vars[5];
  int rc;
  const char *msg;
} bad_case_t;

static const bad_case_t cases[] = {
    {{"HEALTH_CHECK_X=ftp://h/"}, HEALTH_EINVAL, "HEALTH_CHECK_X: unknown check target"},
    {{"HEALTH_CHECK_X=db.internal:5432"}, HEALTH_EINVAL, "HEALTH_CHECK_X: unknown check target"},
    {{"HEALTH_CHECK_GOOD_TIMOUT_MS=5"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_GOOD_TIMOUT_MS: unknown option TIMOUT_MS for check GOOD"},
    {{"HEALTH_CHECK_GOOD_WARN=10"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_GOOD_WARN: option WARN does not apply to a tcp check (only disk, memory, fds)"},
    {{"HEALTH_CHECK_GOOD_TIMEOUT_MS=abc"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_GOOD_TIMEOUT_MS='abc' is not a whole number from 1 to 600000"},
    {{"HEALTH_CHECK_GOOD_LIVENESS=maybe"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_GOOD_LIVENESS='maybe' must be 1/0"},
    {{"HEALTH_CHECK_GOOD_READINESS=0"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_GOOD: with _READINESS=0 the check needs _LIVENESS=1"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=10 lbs"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='10 lbs' must be"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_FAIL=101%"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_FAIL='101%'"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=2GB"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='2GB' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=100GiB"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='100GiB' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=1m"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='1m' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=500MB"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='500MB' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=1048576B"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='1048576B' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=1.5"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='1.5' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=2 G"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='2 G' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=2Gi"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='2Gi' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=G"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D_WARN='G' must be a percentage of free space (10%) or a free size"},
    {{"HEALTH_CHECK_D=disk:/tmp", "HEALTH_CHECK_D_WARN=1.5G", "HEALTH_CHECK_D_FAIL=500M"}, 0, NULL},
    {{"HEALTH_CHECK_D=disk:tmp"}, HEALTH_EINVAL, "HEALTH_CHECK_D: expected disk:/absolute/path"},
    {{"HEALTH_CHECK_D=disk:/nonexistent/dir"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_D: check 'd': disk path"},
    {{"HEALTH_CHECK_M=memory:/x"}, HEALTH_EINVAL, "HEALTH_CHECK_M: expected just 'memory:'"},
    {{"HEALTH_CHECK_M=memory:", "HEALTH_CHECK_M_WARN=95", "HEALTH_CHECK_M_FAIL=90"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_M: check 'm': thresholds must be 0-100 % with warn <= fail"},
    {{"HEALTH_CHECK_M=memory:", "HEALTH_CHECK_M_OOM_KILL=panic"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_M_OOM_KILL='panic' must be warn, fail or ignore"},
    {{"HEALTH_CHECK_W=http://h/", "HEALTH_CHECK_W_STATUS=600"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_W_STATUS='600' must be a status"},
    {{"HEALTH_CHECK_W=http://h/", "HEALTH_CHECK_W_METHOD=POST"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_W_METHOD='POST' must be GET or HEAD"},
    {{"HEALTH_CHECK_W=http://u:" SECRET "@h:99999/"},
     HEALTH_EURL,
     "HEALTH_CHECK_W: check 'w': invalid HTTP URL: port out of range (1-65535)"},
    {{"HEALTH_CHECK_W=http://u:" SECRET "@h/", "HEALTH_CHECK_W_CA_FILE=/x"},
     0,
     NULL}, /* ignored for http (a warning) */
    {{"HEALTH_CHECK_lower=tcp://h:1"},
     HEALTH_EINVAL,
     "HEALTH_CHECK_lower: the name after HEALTH_CHECK_ must be upper-case"},
    {{"HEALTH_CHECK_PRE=tcp://h:1"},
     HEALTH_EEXIST,
     "HEALTH_CHECK_PRE: a check named 'pre' already exists"},
    {{"HEALTH_CHECK_R=redis://:" SECRET "@h:99999"}, 0, "HEALTH_CHECK_R: "},
    {{"HEALTH_CHECK_P=postgresql://u:" SECRET "@h/db?sslmode=bogus"}, 0, "HEALTH_CHECK_P: "},
    {{"HEALTH_CHECK_S=https://h/", "HEALTH_CHECK_S_CA_FILE=/nonexistent/ca.pem"},
     0,
     "HEALTH_CHECK_S: "},
};

START_TEST(test_bad_values_change_nothing) {
  const bad_case_t *c = &cases[_i];
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_int_eq(health_tcp_add(h, "pre", "127.0.0.1:1", NULL, &err), 0);
  clear_env();
  setenv("HEALTH_CHECK_GOOD", "tcp://127.0.0.1:9", 1); /* valid, must not stay */
  for (int k = 0; k < 5 && c->vars[k]; k++) {
    char name[128];
    const char *eq = strchr(c->vars[k], '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - c->vars[k]), c->vars[k]);
    setenv(name, eq + 1, 1);
  }
  unsigned added = 99;
  memset(&err, 0, sizeof err);
  int rc = health_check_add_from_env(h, &added, &err);
  if (!c->msg) { /* a valid case */
    ck_assert_msg(rc == 0, "%s", err.text);
    ck_assert_uint_eq(added, 2);
  } else {
    ck_assert_msg(rc != 0, "case %d accepted", _i);
    if (c->rc) ck_assert_msg(rc == c->rc, "case %d: rc %d: %s", _i, rc, err.text);
    ck_assert_msg(strstr(err.text, c->msg), "case %d: \"%s\", want \"%s\"", _i, err.text, c->msg);
    ck_assert_uint_eq(added, 0);
    health_check_info_t i;
    ck_assert_int_eq(health_check_find(h, "good", &i, NULL), HEALTH_ENOENT);
    static const char *names[] = {"x", "d", "m", "w", "r", "p", "s", "lower"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
      ck_assert_int_eq(health_check_find(h, names[k], &i, NULL), HEALTH_ENOENT);
    ck_assert_int_eq(health_check_find(h, "pre", &i, NULL), 0);
  }
  ck_assert_msg(!strstr(err.text, SECRET), "%s", err.text);
  ck_assert_msg(!th_log_contains(SECRET), "%s", th_log_text());
  health_free(h);
}
END_TEST

START_TEST(test_nothing_and_after_start) {
  health_t *h = new_handle();
  health_error_t err;
  unsigned added = 99;
  clear_env();
  setenv("HEALTH_CHECK_INTERVAL_MS", "100", 1);
  setenv("HEALTH_CHECK_TIMEOUT_MS", "50", 1);
  setenv("HEALTH_CHECK_EMPTY", "", 1); /* empty: unset */
  ck_assert_int_eq(health_check_add_from_env(h, &added, &err), 0);
  ck_assert_uint_eq(added, 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  setenv("HEALTH_CHECK_LATE", "tcp://127.0.0.1:1", 1);
  ck_assert_int_eq(health_check_add_from_env(h, NULL, &err), HEALTH_ESTATE);
  health_free(h);
}
END_TEST

/* Every documented form of a disk size, with the value it stands for; what
 * is not documented is refused (the bad cases above, through the variable). */
START_TEST(test_disk_amounts) {
  static const struct {
    const char *s;
    uint64_t bytes;
  } ok[] = {{"0", 0},           {"1048576", 1048576}, {"10K", 10240}, {"500M", 500ull << 20},
            {"2G", 2ull << 30}, {"1.5G", 3ull << 29}, {"0.25K", 256}, {"1T", 1ull << 40}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    double pct = -1;
    uint64_t by = 1;
    int is_pct = -1;
    ck_assert_msg(health__env_amount(ok[i].s, &pct, &by, &is_pct) == 0, "%s refused", ok[i].s);
    ck_assert_int_eq(is_pct, 0);
    ck_assert_msg(by == ok[i].bytes, "%s: %llu", ok[i].s, (unsigned long long)by);
  }
  double pct = -1;
  uint64_t by = 0;
  int is_pct = 0;
  ck_assert_int_eq(health__env_amount("12.5%", &pct, &by, &is_pct), 0);
  ck_assert_int_eq(is_pct, 1);
  ck_assert(pct == 12.5);
  static const char *bad[] = {"2GB",  "100GiB", "2g", "1m",  "500MB", "1048576B", "1.5", "2 G",
                              "2Gi",  "G",      "K",  "1KK", "-1K",   "+1",       "1e3", "1,5G",
                              "101%", "10%%",   "2P", "1.G", "",      " 1",       "1 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(health__env_amount(bad[i], &pct, &by, &is_pct) == -1, "'%s' accepted", bad[i]);
}
END_TEST

static Suite *env_suite(void) {
  Suite *s = suite_create("env_checks");
  TCase *tc = tcase_create("env");
  tcase_set_timeout(tc, 30);
  tcase_add_checked_fixture(tc, th_log_clear, NULL);
  tcase_add_test(tc, test_every_checker);
  tcase_add_loop_test(tc, test_bad_values_change_nothing, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_nothing_and_after_start);
  tcase_add_test(tc, test_disk_amounts);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(env_suite(), CK_ENV, CK_FORK_GETENV) ? 1 : 0; }
