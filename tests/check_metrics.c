/* /metrics (Prometheus 0.0.4 and OpenMetrics 1.0) linted by promtool in
 * every state, the counters and histogram, the detail policy, the answer
 * cache, the per-check view, configurable paths, HEALTH_PORT=off and the
 * render API served from the application's own server, and numbers under a
 * comma-decimal locale. */
#define _GNU_SOURCE
#include <check.h>
#include <locale.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health_int.h"
#include "testhelp.h"

#define TOKEN "t0ken-Kq83-secret"

static atomic_int g_want = HEALTH_PASS;
static atomic_int g_block;    /* ctl waits while set (pending) */
static atomic_int g_sleep_ms; /* ctl sleeps this long */

static void ctl_check(health_result_t *r, void *arg) {
  (void)arg;
  while (atomic_load(&g_block) && health_result_remaining_ms(r) > 0) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  int ms = atomic_load(&g_sleep_ms);
  if (ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  health_status_t s = (health_status_t)atomic_load(&g_want);
  health_result_set(r, s, "controlled");
}

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

static health_t *g_h;

static void base_options(health_options_t *o) {
  health_options_init(o);
  o->address = "127.0.0.1";
  o->port = 0;
  o->handle_signals = 0;
  o->exit_on_shutdown = 0;
  o->drain_ms = 60000;
  o->drain_min_ms = 60000;
  o->shutdown_deadline_ms = 70000;
  o->log_fn = th_capture_log;
}

/* "ctl" (controlled, readiness) and "aux" (passing, liveness, not critical). */
static health_t *start(health_options_t *o, unsigned interval_ms, unsigned timeout_ms) {
  health_t *h = NULL;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, o, &err), 0);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval_ms;
  co.timeout_ms = timeout_ms;
  co.failure_threshold = 1;
  co.success_threshold = 1;
  ck_assert_int_eq(health_check_add(h, "ctl", ctl_check, NULL, NULL, &co, &err), 0);
  co.endpoints = HEALTH_LIVENESS | HEALTH_READINESS;
  co.critical = 0;
  ck_assert_int_eq(health_check_add(h, "aux", pass_check, NULL, NULL, &co, &err), 0);
  int rc = health_start(h, &err);
  ck_assert_msg(rc == 0, "health_start: %s", err.text);
  g_h = h;
  return h;
}

static void teardown(void) {
  if (g_h) health_free(g_h);
  g_h = NULL;
  atomic_store(&g_want, HEALTH_PASS);
  atomic_store(&g_block, 0);
  atomic_store(&g_sleep_ms, 0);
}

/* GET path with optional extra header lines (each ending in \r\n). */
static int get(unsigned port, const char *path, const char *hdrs, th_response_t *out) {
  char req[1024];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n",
                   path, hdrs ? hdrs : "");
  return th_http_raw(port, req, (size_t)n, 0, TS(5000), out);
}

/* `promtool check metrics` on body; returns its exit status, output in out. */
static int promtool(const char *body, char *out, size_t len) {
  char *dir = th_tmpdir("promtool");
  char path[512], cmd[1200];
  snprintf(path, sizeof path, "%s/body", dir);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(body, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  th_remove_dir("check_metrics", dir);
  free(dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_promtool(void) { return system("command -v promtool >/dev/null 2>&1") == 0; }

/* Both formats of /metrics in the current state: promtool passes the
 * 0.0.4 text, the OpenMetrics body has its own shape; `want` must be in both. */
static void lint_state(unsigned port, const char *state, const char *want) {
  th_response_t r;
  char ct[128], out[4096];
  ck_assert_int_eq(get(port, "/metrics", NULL, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(th_header(&r, "Content-Type", ct, sizeof ct),
                   "text/plain; version=0.0.4; charset=utf-8");
  ck_assert_msg(strstr(r.body, want), "%s: '%s' missing from\n%s", state, want, r.body);
  ck_assert_ptr_null(strstr(r.body, "# EOF"));
  if (have_promtool()) {
    int rc = promtool(r.body, out, sizeof out);
    ck_assert_msg(rc == 0, "%s: promtool check metrics failed (%d): %s", state, rc, out);
  } else {
    ck_assert_msg(!th_require_servers(), "promtool is required (Debian package prometheus)");
  }
  th_response_free(&r);

  ck_assert_int_eq(
      get(port, "/metrics",
          "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
          &r),
      0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(th_header(&r, "Content-Type", ct, sizeof ct),
                   "application/openmetrics-text; version=1.0.0; charset=utf-8");
  size_t n = strlen(r.body);
  ck_assert_msg(n > 6 && strcmp(r.body + n - 6, "# EOF\n") == 0, "%s: no final # EOF", state);
  ck_assert_ptr_eq(strstr(r.body, "# EOF"), r.body + n - 6);
  ck_assert_ptr_nonnull(strstr(r.body, "# TYPE libhealth_check_runs counter\n"));
  ck_assert_ptr_null(strstr(r.body, "# TYPE libhealth_check_runs_total"));
  ck_assert_ptr_nonnull(strstr(r.body, "# TYPE libhealth_build info\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "# UNIT libhealth_check_duration_seconds seconds\n"));
  ck_assert_msg(strstr(r.body, want), "%s (OpenMetrics): '%s' missing", state, want);
  th_response_free(&r);
}

static int body_has(unsigned port, const char *s) {
  th_response_t r;
  if (get(port, "/metrics", NULL, &r) != 0) return 0;
  int ok = r.status == 200 && r.body && strstr(r.body, s) != NULL;
  th_response_free(&r);
  return ok;
}

typedef struct {
  unsigned port;
  const char *s;
} has_t;
static int has_cond(void *arg) {
  has_t *a = arg;
  return body_has(a->port, a->s);
}
#define WAIT_HAS(port, str)                                                         \
  do {                                                                              \
    has_t a_ = {(port), (str)};                                                     \
    ck_assert_msg(th_wait_until(has_cond, &a_, TS(5000)), "never saw '%s'", (str)); \
  } while (0)

typedef struct {
  unsigned port;
  const char *prefix;
  double min;
} ge_t;
static int ge_cond(void *arg) {
  ge_t *a = arg;
  th_response_t r;
  if (get(a->port, "/metrics", NULL, &r) != 0) return 0;
  const char *p = r.status == 200 && r.body ? strstr(r.body, a->prefix) : NULL;
  int ok = p && strtod(p + strlen(a->prefix), NULL) >= a->min;
  th_response_free(&r);
  return ok;
}
#define WAIT_GE(port, prefix, min)                                                      \
  do {                                                                                  \
    ge_t g_ = {(port), (prefix), (min)};                                                \
    ck_assert_msg(th_wait_until(ge_cond, &g_, TS(5000)), "never saw %s>= %g", (prefix), \
                  (double)(min));                                                       \
  } while (0)

START_TEST(test_promtool_every_state) {
  health_options_t o;
  base_options(&o);
  atomic_store(&g_block, 1);
  health_t *h = start(&o, 20, TS(10000));
  unsigned port = health_port(h);

  lint_state(port, "pending", "libhealth_check_status{check=\"ctl\",status=\"pending\"} 1\n");
  ck_assert(
      body_has(port, "libhealth_endpoint_status{endpoint=\"readiness\",status=\"fail\"} 1\n"));
  ck_assert(!body_has(port, "libhealth_check_last_success_timestamp_seconds{check=\"ctl\"}"));

  atomic_store(&g_block, 0);
  WAIT_HAS(port, "libhealth_check_status{check=\"ctl\",status=\"pass\"} 1\n");
  lint_state(port, "passing",
             "libhealth_endpoint_status{endpoint=\"readiness\",status=\"pass\"} 1\n");
  ck_assert(body_has(port, "libhealth_check_last_success_timestamp_seconds{check=\"ctl\"} "));
  ck_assert(body_has(port, "libhealth_build_info{version=\"" HEALTH_VERSION_STRING "\"} 1\n"));

  atomic_store(&g_want, HEALTH_FAIL);
  WAIT_HAS(port, "libhealth_check_status{check=\"ctl\",status=\"fail\"} 1\n");
  lint_state(port, "failing",
             "libhealth_endpoint_status{endpoint=\"readiness\",status=\"fail\"} 1\n");
  ck_assert(!body_has(port, "libhealth_check_failures_total{check=\"ctl\"} 0\n"));
  ck_assert(body_has(port, "libhealth_check_failures_total{check=\"aux\"} 0\n"));
  ck_assert(!body_has(port, "libhealth_check_consecutive_failures{check=\"ctl\"} 0\n"));

  atomic_store(&g_want, HEALTH_PASS);
  WAIT_HAS(port, "libhealth_check_status{check=\"ctl\",status=\"pass\"} 1\n");
  health_shutdown(h);
  WAIT_HAS(port, "libhealth_draining 1\n");
  lint_state(port, "draining", "libhealth_shutdown_phase{phase=\"draining\"} 1\n");
  ck_assert(
      body_has(port, "libhealth_endpoint_status{endpoint=\"readiness\",status=\"fail\"} 1\n"));
  ck_assert(body_has(port, "libhealth_endpoint_status{endpoint=\"liveness\",status=\"pass\"} 1\n"));
}
END_TEST

/* Value of the first sample starting with `prefix` (through "} "). */
static double value_of(const char *body, const char *prefix) {
  const char *p = strstr(body, prefix);
  ck_assert_msg(p != NULL, "no sample %s", prefix);
  return strtod(p + strlen(prefix), NULL);
}

START_TEST(test_counters_histogram_timeouts) {
  health_options_t o;
  base_options(&o);
  atomic_store(&g_sleep_ms, 200); /* past the 60 ms timeout */
  health_t *h = start(&o, 20, 60);
  unsigned port = health_port(h);
  WAIT_GE(port, "libhealth_check_timeouts_total{check=\"ctl\"} ", 2);
  atomic_store(&g_sleep_ms, 0);
  WAIT_HAS(port, "libhealth_check_status{check=\"ctl\",status=\"pass\"} 1\n");
  health_stop(h); /* the counters stand still from here */
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL), 0);
  const char *b = a.body;
  double runs = value_of(b, "libhealth_check_runs_total{check=\"ctl\"} ");
  double fails = value_of(b, "libhealth_check_failures_total{check=\"ctl\"} ");
  double tos = value_of(b, "libhealth_check_timeouts_total{check=\"ctl\"} ");
  double count = value_of(b, "libhealth_check_duration_seconds_count{check=\"ctl\"} ");
  double inf = value_of(b, "libhealth_check_duration_seconds_bucket{check=\"ctl\",le=\"+Inf\"} ");
  double le25 = value_of(b, "libhealth_check_duration_seconds_bucket{check=\"ctl\",le=\"0.025\"} ");
  double le1 = value_of(b, "libhealth_check_duration_seconds_bucket{check=\"ctl\",le=\"0.1\"} ");
  double sum = value_of(b, "libhealth_check_duration_seconds_sum{check=\"ctl\"} ");
  double last = value_of(b, "libhealth_check_last_duration_seconds{check=\"ctl\"} ");
  ck_assert_msg(tos >= 2 && fails >= tos && runs > fails, "runs %g failures %g timeouts %g", runs,
                fails, tos);
  ck_assert_msg(count == runs && inf == count, "count %g +Inf %g runs %g", count, inf, runs);
  /* Timed-out runs are reported at the 60 ms deadline (which is counted
   * from the millisecond of dispatch, so up to 1 ms early): above 0.025 s. */
  ck_assert_msg(le25 <= count - tos && le1 >= le25 && le1 <= count, "buckets %g %g", le25, le1);
  ck_assert_msg(sum >= 0.058 * tos, "sum %g for %g timeouts", sum, tos);
  ck_assert_msg(last < 0.06, "the last run passed quickly: %g", last);
  ck_assert_msg(value_of(b, "libhealth_check_consecutive_failures{check=\"ctl\"} ") == 0,
                "consecutive");
  health_answer_release(&a);
  ck_assert_ptr_null(a.body);
}
END_TEST

START_TEST(test_detail_policy) {
  health_options_t o;
  base_options(&o);
  o.detail = HEALTH_DETAIL_TOKEN;
  o.detail_token = TOKEN;
  health_t *h = start(&o, 20, 1000);
  unsigned port = health_port(h);
  th_response_t r;
  ck_assert_int_eq(get(port, "/ready", NULL, &r), 0); /* wait for a result */
  th_response_free(&r);
  ck_assert_int_eq(get(port, "/metrics", NULL, &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_null(strstr(r.body, "check=\""));
  ck_assert_ptr_nonnull(strstr(r.body, "libhealth_draining 0\n"));
  th_response_free(&r);
  ck_assert_int_eq(get(port, "/metrics", "Authorization: Bearer wrong-token-x\r\n", &r), 0);
  ck_assert_ptr_null(strstr(r.body, "check=\""));
  th_response_free(&r);
  ck_assert_int_eq(get(port, "/metrics", "Authorization: Bearer " TOKEN "\r\n", &r), 0);
  ck_assert_ptr_nonnull(strstr(r.body, "libhealth_check_runs_total{check=\"ctl\"}"));
  th_response_free(&r);
  /* The per-check view is a detail too. */
  ck_assert_int_eq(get(port, "/ready?check=ctl", NULL, &r), 0);
  ck_assert_int_eq(r.status, 403);
  th_response_free(&r);
  ck_assert_int_eq(get(port, "/ready?check=ctl", "Authorization: Bearer " TOKEN "\r\n", &r), 0);
  ck_assert_int_eq(r.status, 200);
  th_response_free(&r);
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL), 0);
  ck_assert_ptr_null(strstr(a.body, "check=\""));
  health_answer_release(&a);
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, "Bearer " TOKEN, NULL, &a, NULL),
                   0);
  ck_assert_ptr_nonnull(strstr(a.body, "check=\"ctl\""));
  health_answer_release(&a);
  /* More than one space after the scheme is valid (RFC 9110 11.4), on
   * /metrics and through health_answer_render() as on /ready. */
  ck_assert_int_eq(get(port, "/metrics", "Authorization: Bearer   " TOKEN "\r\n", &r), 0);
  ck_assert_ptr_nonnull(strstr(r.body, "check=\"ctl\""));
  th_response_free(&r);
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, "Bearer  " TOKEN, NULL, &a, NULL),
                   0);
  ck_assert_ptr_nonnull(strstr(a.body, "check=\"ctl\""));
  health_answer_release(&a);
}
END_TEST

START_TEST(test_detail_status_only) {
  health_options_t o;
  base_options(&o);
  o.detail = HEALTH_DETAIL_STATUS;
  health_t *h = start(&o, 20, 1000);
  th_response_t r;
  ck_assert_int_eq(get(health_port(h), "/metrics", "Authorization: Bearer " TOKEN "\r\n", &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_null(strstr(r.body, "check=\""));
  ck_assert_ptr_nonnull(strstr(r.body, "libhealth_build_info"));
  th_response_free(&r);
}
END_TEST

/* Rendered once per state: an unchanged state hands out the same snapshot. */
START_TEST(test_cached_per_version) {
  health_options_t o;
  base_options(&o);
  health_t *h = start(&o, 3600000, TS(1000)); /* one run each, then quiet */
  th_want_t w = {health_port(h), "/ready", 200};
  ck_assert(th_wait_until(th_status_is, &w, TS(5000)));
  health_answer_t a, b, c;
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL), 0);
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &b, NULL), 0);
  ck_assert_ptr_eq(a.body, b.body);
  ck_assert_ptr_nonnull(strstr(a.body, "libhealth_requests_in_flight 0\n"));
  health_inflight_begin(h);
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &c, NULL), 0);
  ck_assert_ptr_ne(c.body, a.body);
  ck_assert_ptr_nonnull(strstr(c.body, "libhealth_requests_in_flight 1\n"));
  /* The old snapshot is intact while referenced. */
  ck_assert_ptr_nonnull(strstr(a.body, "libhealth_requests_in_flight 0\n"));
  health_inflight_end(h);
  health_answer_release(&a);
  health_answer_release(&b);
  health_answer_release(&c);
  health_answer_release(&c); /* idempotent */
  ck_assert_int_eq(health_answer_render(h, HEALTH_READINESS, NULL, NULL, NULL, &a, NULL), 0);
  ck_assert_int_eq(health_answer_render(h, HEALTH_READINESS, NULL, NULL, NULL, &b, NULL), 0);
  ck_assert_ptr_eq(a.body, b.body);
  ck_assert_uint_eq(a.code, 200);
  ck_assert_str_eq(a.content_type, "application/health+json");
  health_answer_release(&a);
  health_answer_release(&b);
  ck_assert_int_eq(health_answer_render(h, 7, NULL, NULL, NULL, &a, NULL), HEALTH_EINVAL);
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, "ctl", NULL, NULL, &a, NULL),
                   HEALTH_EINVAL);
  ck_assert_int_eq(health_answer_render(NULL, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL),
                   HEALTH_EINVAL);
}
END_TEST

START_TEST(test_per_check_view) {
  health_options_t o;
  base_options(&o);
  health_t *h = start(&o, 20, 1000);
  unsigned port = health_port(h);
  th_want_t w = {port, "/ready?check=ctl", 200};
  ck_assert(th_wait_until(th_status_is, &w, TS(5000)));
  th_response_t r;
  ck_assert_int_eq(get(port, "/ready?check=ctl", NULL, &r), 0);
  ck_assert_ptr_nonnull(strstr(r.body, "\"ctl:responseTime\""));
  ck_assert_ptr_null(strstr(r.body, "aux:"));
  th_response_free(&r);
  atomic_store(&g_want, HEALTH_FAIL);
  w.want = 503;
  ck_assert(th_wait_until(th_status_is, &w, TS(5000)));
  /* aux is fine, so its own view passes while /ready fails. */
  ck_assert_int_eq(th_status(port, "GET", "/ready?check=aux"), 200);
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 503);
  ck_assert_int_eq(th_status(port, "GET", "/ready?check=nope"), 404);
  ck_assert_int_eq(th_status(port, "HEAD", "/readyz?check=ctl"), 503);
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_READINESS, "ctl", NULL, NULL, &a, NULL), 0);
  ck_assert_uint_eq(a.code, 503);
  health_answer_release(&a);
  ck_assert_int_eq(health_answer_render(h, HEALTH_READINESS, "nope", NULL, NULL, &a, NULL), 0);
  ck_assert_uint_eq(a.code, 404);
  health_answer_release(&a);
}
END_TEST

START_TEST(test_paths) {
  health_options_t o;
  base_options(&o);
  health_t *h = NULL;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  g_h = h;
  health_serve_options_t so, keep;
  health_serve_options_init(&so);
  ck_assert_str_eq(so.metrics_path, "/metrics");
  /* Bad values: an error naming the variable, nothing changed. */
  keep = so;
  setenv("HEALTH_READY_PATH", "ready", 1);
  ck_assert_int_eq(health_serve_options_from_env(&so, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_READY_PATH"));
  ck_assert(memcmp(&so, &keep, sizeof so) == 0);
  setenv("HEALTH_READY_PATH", "/same", 1);
  setenv("HEALTH_LIVE_PATH", "/same", 1);
  ck_assert_int_eq(health_serve_options_from_env(&so, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "must differ"));
  setenv("HEALTH_READY_PATH", "/q?x", 1);
  ck_assert_int_eq(health_serve_options_from_env(&so, &err), HEALTH_EINVAL);
  setenv("HEALTH_READY_PATH", "/svc/ready", 1);
  setenv("HEALTH_LIVE_PATH", "/svc/live", 1);
  setenv("HEALTH_METRICS_PATH", "/svc/metrics", 1);
  ck_assert_int_eq(health_serve_options_from_env(&so, &err), 0);
  ck_assert_int_eq(health_serve_set(h, &so, &err), 0);
  unsetenv("HEALTH_READY_PATH");
  unsetenv("HEALTH_LIVE_PATH");
  unsetenv("HEALTH_METRICS_PATH");
  ck_assert_int_eq(health_start(h, &err), 0);
  unsigned port = health_port(h);
  ck_assert_int_eq(th_status(port, "GET", "/svc/live"), 200);
  ck_assert_int_eq(th_status(port, "GET", "/svc/metrics"), 200);
  ck_assert_int_eq(th_status(port, "GET", "/svc/ready") > 0, 1);
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 404);
  ck_assert_int_eq(th_status(port, "GET", "/readyz"), 404);
  ck_assert_int_eq(th_status(port, "GET", "/health"), 404);
  ck_assert_int_eq(th_status(port, "GET", "/metrics"), 404);
  ck_assert_int_eq(th_status(port, "POST", "/svc/metrics"), 405);
  so.metrics_path = "off";
  ck_assert_int_eq(health_serve_set(h, &so, &err), HEALTH_ESTATE);
  health_free(h);
  g_h = NULL;

  /* Metrics off through the API. */
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  g_h = h;
  health_serve_options_init(&so);
  so.metrics_path = "off";
  ck_assert_int_eq(health_serve_set(h, &so, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert_int_eq(th_status(health_port(h), "GET", "/metrics"), 404);
  ck_assert_int_eq(th_status(health_port(h), "GET", "/livez"), 200);
}
END_TEST

/* ---- the application's own server, library HTTP thread off ---- */

/* Blank out every "time":"..." value in a JSON body, in place. */
static void strip_times(char *body) {
  for (char *p = body; (p = strstr(p, "\"time\":\""));) {
    p += 8;
    while (*p && *p != '"') *p++ = '-';
  }
}

static enum MHD_Result app_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *data,
                                   size_t *data_size, void **con_cls) {
  (void)method, (void)version, (void)data, (void)data_size;
  health_t *h = cls;
  if (!*con_cls) {
    *con_cls = c;
    return MHD_YES;
  }
  unsigned what = strcmp(url, "/ready") == 0     ? HEALTH_READINESS
                  : strcmp(url, "/metrics") == 0 ? HEALTH_METRICS
                                                 : HEALTH_LIVENESS;
  health_answer_t a;
  if (health_answer_render(h, what, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "check"),
                           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept"), &a,
                           NULL) != 0)
    return MHD_NO;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(a.body_len, (void *)a.body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", a.content_type);
  enum MHD_Result ret = MHD_queue_response(c, a.code, r);
  MHD_destroy_response(r);
  health_answer_release(&a);
  return ret;
}

START_TEST(test_port_off_app_serves) {
  health_options_t o;
  base_options(&o);
  health_error_t err;
  /* HEALTH_PORT=off from the environment; a typo is an error. */
  setenv("HEALTH_PORT", "offf", 1);
  ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_PORT"));
  ck_assert_ptr_nonnull(strstr(err.text, "off"));
  setenv("HEALTH_PORT", "off", 1);
  ck_assert_int_eq(health_options_from_env(&o, &err), 0);
  unsetenv("HEALTH_PORT");
  ck_assert_uint_eq(o.port, HEALTH_PORT_OFF);
  o.port = 65537;
  ck_assert_int_eq(health_new(&g_h, &o, &err), HEALTH_EINVAL);
  o.port = HEALTH_PORT_OFF;

  atomic_store(&g_block, 1);
  health_t *h = start(&o, 20, TS(10000));
  ck_assert_uint_eq(health_port(h), 0);
  ck_assert(!th_log_contains("http_listening"));
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                          app_handler, h, MHD_OPTION_END);
  ck_assert_ptr_nonnull(d);
  unsigned port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
  th_response_t r;
  char ct[64];
  ck_assert_int_eq(get(port, "/ready", NULL, &r), 0);
  ck_assert_int_eq(r.status, 503); /* pending */
  ck_assert_ptr_nonnull(strstr(r.body, "pending"));
  th_response_free(&r);
  atomic_store(&g_block, 0);
  th_want_t w = {port, "/ready", 200};
  ck_assert(th_wait_until(th_status_is, &w, TS(5000)));
  ck_assert_int_eq(get(port, "/ready", NULL, &r), 0);
  ck_assert_str_eq(th_header(&r, "Content-Type", ct, sizeof ct), "application/health+json");
  /* The application serves what health_answer_render() gives: the same body,
   * but for the checks' run times, which move with every run (20 ms
   * apart; under valgrind a run may complete between the two). */
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_READINESS, NULL, NULL, NULL, &a, NULL), 0);
  char *served = strdup(r.body), *rendered = strdup(a.body);
  ck_assert(served && rendered);
  strip_times(served);
  strip_times(rendered);
  ck_assert_str_eq(served, rendered);
  free(served);
  free(rendered);
  health_answer_release(&a);
  th_response_free(&r);
  ck_assert_int_eq(th_status(port, "GET", "/ready?check=ctl"), 200);
  ck_assert_int_eq(get(port, "/metrics", NULL, &r), 0);
  ck_assert_ptr_nonnull(
      strstr(r.body, "libhealth_check_status{check=\"ctl\",status=\"pass\"} 1\n"));
  th_response_free(&r);
  health_shutdown(h);
  w.want = 503;
  ck_assert(th_wait_until(th_status_is, &w, TS(5000)));
  ck_assert_int_eq(th_status(port, "GET", "/health"), 200);
  MHD_stop_daemon(d);
}
END_TEST

/* Every number that leaves /metrics is the same under a comma-decimal
 * locale.  The locale is built here (localedef, without touching the
 * system): only LC_NUMERIC matters, with a comma for the decimal point; the
 * rest copies POSIX and the ASCII charmap keeps the build under a second. */
static const char comma_locale[] =
    "comment_char %\nescape_char /\n"
    "LC_CTYPE\ncopy \"POSIX\"\nEND LC_CTYPE\n"
    "LC_COLLATE\ncopy \"POSIX\"\nEND LC_COLLATE\n"
    "LC_NUMERIC\ndecimal_point \"<U002C>\"\nthousands_sep \"<U002E>\"\ngrouping 3;3\nEND LC_NUMERIC\n"
    "LC_MONETARY\ncopy \"POSIX\"\nEND LC_MONETARY\n"
    "LC_TIME\ncopy \"POSIX\"\nEND LC_TIME\n"
    "LC_MESSAGES\ncopy \"POSIX\"\nEND LC_MESSAGES\n";

START_TEST(test_comma_locale) {
  char *dir = th_tmpdir("locale");
  char def[512], cmd[1400];
  snprintf(def, sizeof def, "%s/comma.def", dir);
  FILE *f = fopen(def, "w");
  ck_assert_ptr_nonnull(f);
  fputs(comma_locale, f);
  fclose(f);
  /* Exit status 1 is localedef's "warnings" (categories not defined). */
  snprintf(cmd, sizeof cmd, "localedef -c -f ANSI_X3.4-1968 -i '%s' '%s/xx_XX' >/dev/null 2>&1",
           def, dir);
  int st = system(cmd);
  int made = WIFEXITED(st) && WEXITSTATUS(st) <= 1;
  if (made) {
    setenv("LOCPATH", dir, 1);
    made = setlocale(LC_ALL, "xx_XX") != NULL;
  }
  if (!made) {
    th_remove_dir("check_metrics", dir);
    free(dir);
    ck_assert_msg(!th_require_servers(), "could not build a comma-decimal locale with localedef");
    fprintf(stderr, "check_metrics: no comma-decimal locale: case skipped\n");
    return;
  }
  char probe[16];
  snprintf(probe, sizeof probe, "%.1f", 0.5);
  ck_assert_str_eq(probe, "0,5"); /* the premise: printf would write commas */
  health_options_t o;
  base_options(&o);
  atomic_store(&g_sleep_ms, 3);
  health_t *h = start(&o, 20, 1000);
  WAIT_GE(health_port(h), "libhealth_check_runs_total{check=\"ctl\"} ", 3);
  health_answer_t a;
  ck_assert_int_eq(
      health_answer_render(h, HEALTH_METRICS, NULL, NULL, "application/openmetrics-text", &a, NULL),
      0);
  int decimals = 0;
  for (const char *line = a.body; *line;) {
    const char *nl = strchr(line, '\n');
    ck_assert_ptr_nonnull(nl);
    if (line[0] != '#') {
      const char *sp = nl;
      while (sp > line && sp[-1] != ' ') sp--;
      for (const char *p = sp; p < nl; p++) {
        ck_assert_msg(*p != ',', "comma in a value: %.*s", (int)(nl - line), line);
        decimals += *p == '.';
      }
    }
    line = nl + 1;
  }
  ck_assert_int_gt(decimals, 3);
  health_answer_release(&a);
  setlocale(LC_ALL, "C");
  th_remove_dir("check_metrics", dir);
  free(dir);
}
END_TEST

/* Content negotiation by q-values (RFC 9110 12.5.1), with the Accept
 * headers real scrapers send: 1 = OpenMetrics, 0 = the text format. */
START_TEST(test_accept_q_values) {
  static const struct {
    const char *accept;
    int om;
  } cases[] = {
      /* Prometheus 2.x, default scrape protocols */
      {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
       "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
       1},
      /* Prometheus 3.x, default */
      {"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
       "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
       "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
       1},
      /* Prometheus 3.x with scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0] */
      {"text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.2,"
       "*/*;q=0.1",
       0},
      /* Prometheus protobuf first: neither protobuf nor text 1.0.0 is served here */
      {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,"
       "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,"
       "application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.2,"
       "text/plain;version=0.0.4;q=0.1,*/*;q=0",
       1},
      {"text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5", 0},
      {"application/openmetrics-text;q=0", 0},
      {"application/openmetrics-text;q=0, */*", 0},
      {"application/openmetrics-text", 1},
      {"Application/OpenMetrics-Text ; Q=0.9 , text/plain ; q=0.8", 1},
      {"application/openmetrics-text;version=0.0.1", 0}, /* only 1.0.0 is written */
      {"application/openmetrics-text;version=\"1.0.0\";q=0.7,text/plain;q=0.6", 1},
      {"application/openmetrics-text, text/plain", 0}, /* a tie: the default */
      {"application/*;q=0.9,text/*;q=0.5", 1},
      {"application/openmetrics-text;q=0.2,application/*;q=0.9,text/plain;q=0.5",
       0},                                                      /* specific wins */
      {"application/openmetrics-text;q=2,text/plain;q=0.1", 0}, /* malformed q: ignored */
      {"application/openmetrics-text;q=0.1234", 0},             /* four decimals: malformed */
      {"application/openmetrics-text;q=abc,*/*;q=0.1", 0},
      {"*/*", 0},
      {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 0}, /* a browser */
      {"", 0},
      {",,, ;;", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_msg(health__accept_openmetrics(cases[i].accept) == cases[i].om,
                  "Accept: %s: expected %s", cases[i].accept,
                  cases[i].om ? "OpenMetrics" : "the text format");
  ck_assert_int_eq(health__accept_openmetrics(NULL), 0);
}
END_TEST

static Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");
  tcase_set_timeout(tc, 30);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_promtool_every_state);
  tcase_add_test(tc, test_counters_histogram_timeouts);
  tcase_add_test(tc, test_detail_policy);
  tcase_add_test(tc, test_detail_status_only);
  tcase_add_test(tc, test_cached_per_version);
  tcase_add_test(tc, test_per_check_view);
  tcase_add_test(tc, test_paths);
  tcase_add_test(tc, test_port_off_app_serves);
  tcase_add_test(tc, test_comma_locale);
  tcase_add_test(tc, test_accept_q_values);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(metrics_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
