/* A real Prometheus server (Debian package prometheus), started here on
 * loopback with a throwaway storage directory and a 1 s scrape interval,
 * scrapes /metrics through a bearer token (HEALTH_DETAIL=token, as in the
 * scrape config of docs/operations.md); its query API must return the series with the
 * right values after a check fails.  Prometheus asks for OpenMetrics, so
 * its parser also checks that format.  Bounded in time; skipped (or failed
 * under HEALTH_TEST_REQUIRE_SERVERS) without the prometheus binary. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testhelp.h"

#define TOKEN "scrape-Token-7731"

static atomic_int g_want = HEALTH_PASS;

static void ctl_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, (health_status_t)atomic_load(&g_want), "controlled");
}

static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static unsigned g_prom_port;
static char g_answer[8192];

/* GET /api/v1/query?query=<q> (q already URL-encoded); the body in g_answer. */
static int query(const char *q) {
  char path[1024];
  snprintf(path, sizeof path, "/api/v1/query?query=%s", q);
  th_response_t r;
  g_answer[0] = 0;
  if (th_http(g_prom_port, "GET", path, &r) != 0) return -1;
  int st = r.status;
  if (r.body) snprintf(g_answer, sizeof g_answer, "%s", r.body);
  th_response_free(&r);
  return st;
}

typedef struct {
  const char *q;
  const char *want;
} q_t;
static int query_has(void *arg) {
  q_t *a = arg;
  return query(a->q) == 200 && strstr(g_answer, a->want) != NULL;
}
static void wait_query(const char *q, const char *want, unsigned ms) {
  q_t a = {q, want};
  ck_assert_msg(th_wait_until(query_has, &a, ms), "query %s: no '%s' in %s", q, want, g_answer);
}

START_TEST(test_prometheus_scrapes) {
  if (system("command -v prometheus >/dev/null 2>&1") != 0) {
    ck_assert_msg(!th_require_servers(), "prometheus is required (Debian package prometheus)");
    fprintf(stderr, "check_prometheus: no prometheus binary: skipped\n");
    return;
  }
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.detail = HEALTH_DETAIL_TOKEN;
  o.detail_token = TOKEN;
  o.log_fn = th_capture_log;
  health_t *h;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 100;
  co.failure_threshold = 1;
  ck_assert_int_eq(health_check_add(h, "db", ctl_check, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);

  char *dir = th_tmpdir("prometheus");
  char cfg[512], data[512], listen[64], cfgarg[600], dataarg[600];
  snprintf(cfg, sizeof cfg, "%s/prometheus.yml", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  g_prom_port = free_port();
  FILE *f = fopen(cfg, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
          "scrape_configs:\n  - job_name: libhealth\n"
          "    authorization:\n      credentials: %s\n"
          "    static_configs:\n      - targets: ['127.0.0.1:%u']\n",
          TOKEN, health_port(h));
  fclose(f);
  snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%u", g_prom_port);
  snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfg);
  snprintf(dataarg, sizeof dataarg, "--storage.tsdb.path=%s", data);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* Dies with this test process, even when an assertion ends it early. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!getenv("HEALTH_TEST_LOG")) freopen("/dev/null", "w", stderr);
    execlp("prometheus", "prometheus", cfgarg, dataarg, listen, "--log.level=warn",
           "--web.enable-lifecycle", (char *)NULL);
    _exit(127);
  }

  /* Up, scraped (through the token: the per-check series are there). */
  wait_query("up%7Bjob%3D%22libhealth%22%7D", "\"1\"]", TS(30000));
  wait_query("libhealth_check_status%7Bcheck%3D%22db%22%2Cstatus%3D%22pass%22%7D", "\"1\"]",
             TS(10000));
  wait_query("libhealth_build_info", "\"version\":\"" HEALTH_VERSION_STRING "\"", TS(5000));

  atomic_store(&g_want, HEALTH_FAIL);
  wait_query("libhealth_check_status%7Bcheck%3D%22db%22%2Cstatus%3D%22fail%22%7D", "\"1\"]",
             TS(10000));
  wait_query("libhealth_endpoint_status%7Bendpoint%3D%22readiness%22%2Cstatus%3D%22fail%22%7D",
             "\"1\"]", TS(5000));
  /* Counters are counters: failures grew, and rate() works on them. */
  wait_query("libhealth_check_failures_total%7Bcheck%3D%22db%22%7D%3E0", "\"db\"", TS(5000));
  wait_query("libhealth_check_consecutive_failures%7Bcheck%3D%22db%22%7D%3E0", "\"db\"", TS(5000));
  wait_query("histogram_quantile(0.5%2Crate(libhealth_check_duration_seconds_bucket%5B5s%5D))",
             "\"check\":\"db\"", TS(10000));

  kill(pid, SIGTERM);
  int st;
  uint64_t until = th_now_ms() + TS(10000);
  while (waitpid(pid, &st, WNOHANG) == 0 && th_now_ms() < until) usleep(10000);
  if (waitpid(pid, &st, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  health_free(h);
  th_remove_dir("check_prometheus", dir);
  free(dir);
}
END_TEST

static Suite *prometheus_suite(void) {
  Suite *s = suite_create("prometheus");
  TCase *tc = tcase_create("prometheus");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_prometheus_scrapes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(prometheus_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
