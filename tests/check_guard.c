/*
 * The connection guard of the health port (libhealth/http/guard.c): which
 * connection goes at the cap, slowloris and connection floods from many
 * loopback addresses (tests/slowloris, bounded in count and time), and
 * descriptor headroom (RLIMIT_NOFILE, EMFILE).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health_int.h" /* h->http.guard, h->http.daemon */
#include "testhelp.h"

static health_t *g_h;
static unsigned g_port;

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

static int ready_passes(void *arg) { return health_status(arg, HEALTH_READINESS) == HEALTH_PASS; }

static void options(health_options_t *o, unsigned max_conns, unsigned timeout_s) {
  health_options_init(o);
  o->address = "127.0.0.1";
  o->port = 0;
  o->handle_signals = 0;
  o->exit_on_shutdown = 0;
  o->log_fn = th_capture_log;
  o->log_level = HEALTH_LOG_DEBUG;
  o->max_connections = max_conns;
  o->max_connections_per_ip = 32;
  o->connection_timeout_s = timeout_s;
}

static int start_h(health_options_t *o, health_error_t *err) {
  int rc = health_new(&g_h, o, err);
  if (rc) return rc;
  ck_assert_int_eq(health_check_add(g_h, "ok", pass_check, NULL, NULL, NULL, err), 0);
  rc = health_start(g_h, err);
  if (rc) return rc;
  g_port = health_port(g_h);
  ck_assert_msg(th_wait_until(ready_passes, g_h, TS(3000)), "never became ready");
  return 0;
}

static void start_with(health_options_t *o) {
  health_error_t err;
  int rc = start_h(o, &err);
  ck_assert_msg(rc == 0, "start: %s", err.text);
}

static void teardown(void) {
  if (g_h) health_free(g_h);
  g_h = NULL;
}

static unsigned mhd_connections(void) {
  const union MHD_DaemonInfo *i =
      MHD_get_daemon_info(g_h->http.daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return i ? i->num_connections : 0;
}

typedef struct {
  unsigned want;
} count_t;

static int connections_are(void *arg) { return mhd_connections() == ((count_t *)arg)->want; }

/* 1 if the peer closed `fd` within timeout_ms. */
static int closed_within(int fd, unsigned timeout_ms) {
  uint64_t deadline = th_now_ms() + timeout_ms;
  for (;;) {
    uint64_t now = th_now_ms();
    if (now >= deadline) return 0;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return 1;
  }
}

static int still_open(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* A connection from `src` that has been answered once and stays idle. */
static int idle_conn(const char *src) {
  static const char req[] = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  int fd = th_connect_from(src, g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(th_send_all(fd, req, sizeof req - 1, TS(1000)), 0);
  char buf[2048] = "";
  size_t len = 0;
  uint64_t t0 = th_now_ms();
  while (!strstr(buf, "}\n") && th_now_ms() - t0 < TS(2000)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    ck_assert_int_gt(n, 0);
    len += (size_t)n;
    buf[len] = 0;
  }
  ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "idle_conn: %s", buf);
  return fd;
}

/* A connection from `src` whose request head never ends. */
static int head_conn(const char *src) {
  static const char part[] = "GET /ready HTTP/1.1\r\nHost: x\r\n";
  int fd = th_connect_from(src, g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(th_send_all(fd, part, sizeof part - 1, TS(1000)), 0);
  return fd;
}

static void wait_connections(unsigned n) {
  count_t c = {n};
  ck_assert_msg(th_wait_until(connections_are, &c, TS(2000)),
                "server holds %u connections, want %u", mhd_connections(), n);
}

/* At the cap (4), each newcomer evicts the oldest connection whose head is
 * incomplete; once there is none, the oldest idle keep-alive one. */
START_TEST(test_eviction_order) {
  health_options_t o;
  options(&o, 4, 10);
  start_with(&o);
  health_answer_t m;
  ck_assert_int_eq(health_answer_render(g_h, HEALTH_METRICS, NULL, NULL, NULL, &m, NULL), 0);
  ck_assert_msg(strstr(m.body, "\nlibhealth_http_connections_evicted_total 0\n") != NULL,
                "/metrics lacks the eviction count:\n%.*s", (int)m.body_len, m.body);
  health_answer_release(&m);
  int a = idle_conn("127.0.3.1"), b = idle_conn("127.0.3.2");
  int c = head_conn("127.0.3.3"), d = head_conn("127.0.3.4");
  wait_connections(4);
  int e = head_conn("127.0.3.5");
  ck_assert_msg(closed_within(c, TS(1000)), "the oldest incomplete head was not evicted");
  int f = head_conn("127.0.3.6");
  ck_assert_msg(closed_within(d, TS(1000)), "the second incomplete head was not evicted");
  ck_assert_msg(still_open(a) && still_open(b) && still_open(e),
                "an idle one or a newer head went first (a %d b %d e %d)", still_open(a),
                still_open(b), still_open(e));
  /* e and f complete their heads: answered, idle and newer than a and b. */
  static const char rest[] = "\r\n";
  for (int i = 0; i < 2; i++) {
    int fd = i ? f : e;
    th_send_all(fd, rest, 2, TS(1000));
    char buf[1024];
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, (int)TS(2000)), 1);
    ck_assert_int_gt(recv(fd, buf, sizeof buf, 0), 0);
  }
  int g = head_conn("127.0.3.7");
  ck_assert_msg(closed_within(a, TS(1000)), "the oldest idle one was not evicted");
  ck_assert_msg(still_open(b) && still_open(e) && still_open(f) && still_open(g),
                "the wrong connection went");
  unsigned long evicted;
  evicted = atomic_load(&g_h->http.guard_counts.evicted);
  ck_assert_uint_eq(evicted, 3);
  /* ... and /metrics says so, though no check changed since it was last
   * rendered. */
  ck_assert_int_eq(health_answer_render(g_h, HEALTH_METRICS, NULL, NULL, NULL, &m, NULL), 0);
  ck_assert_msg(strstr(m.body, "\nlibhealth_http_connections_evicted_total 3\n") != NULL,
                "/metrics lacks the eviction count:\n%.*s", (int)m.body_len, m.body);
  health_answer_release(&m);
  int fds[] = {a, b, c, d, e, f, g};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close(fds[i]);
}
END_TEST

/* Run tests/slowloris; returns its summary line's ok_pct, fills `line`. */
static double attack(const char *args, char *line, size_t len) {
  const char *bin = getenv("HEALTH_SLOWLORIS");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s -p %u %s", bin ? bin : "tests/slowloris", g_port, args);
  FILE *p = popen(cmd, "r");
  ck_assert_msg(p != NULL, "cannot run %s", cmd);
  line[0] = 0;
  char buf[512];
  while (fgets(buf, sizeof buf, p))
    if (strncmp(buf, "mode=", 5) == 0) snprintf(line, len, "%s", buf);
  int rc = pclose(p);
  ck_assert_msg(rc == 0 && line[0], "%s: exit %d, output '%s'", cmd, rc, line);
  const char *ok = strstr(line, " ok_pct=");
  const char *probes = strstr(line, " probes=");
  ck_assert_msg(ok && probes && atoi(probes + 8) >= 5, "%s: too few probes: %s", cmd, line);
  return atof(ok + 8);
}

/* The probes' verdict: at least 99% answered in time.  With the 30-odd
 * probes of a few seconds' attack that would mean none missed, and one
 * probe starved of CPU on a loaded 2-core machine (the suites run 4 at a
 * time) failed once in four clean-clone runs: so 99%, or all but one.
 * bench/attack.sh measures the long run (100% of probes under 10,000
 * addresses). */
static int enough(double ok_pct, const char *line) {
  const char *pp = strstr(line, " probes="), *po = strstr(line, " ok=");
  if (!pp || !po) return 0;
  int probes = atoi(pp + 8), answered = atoi(po + 4);
  return ok_pct >= 99.0 || answered >= probes - 1;
}

/* Attack size: full on a plain build, smaller under sanitizers and
 * valgrind (the attacker is built the same way and the server is slower
 * per connection: the probe waits behind every attempt in flight), never
 * below what overfills the cap. */
static unsigned scaled(unsigned n, unsigned floor_) {
  unsigned s = th_time_scale();
  return n / (s * s) > floor_ ? n / (s * s) : floor_;
}

/* Slow clients from many addresses, each reconnecting as soon as it is
 * cut: the probe from 127.0.0.1 is answered within 1 s (margins scale)
 * at least 99% of the time (enough()), the guard evicts, and MHD never holds more
 * than the guard's table. */
START_TEST(test_slowloris_many_addresses) {
  health_options_t o;
  options(&o, 128, 10);
  start_with(&o);
  char args[256], line[512];
  unsigned n = scaled(2000, 200);
  snprintf(args, sizeof args, "-n %u -t %u -i 100 -w %u", n, th_time_scale() > 1 ? 8 : 4, TS(1000));
  double ok = attack(args, line, sizeof line);
  ck_assert_msg(enough(ok, line), "probes under %u slow clients: %s", n, line);
  unsigned long evicted;
  evicted = atomic_load(&g_h->http.guard_counts.evicted);
  ck_assert_msg(evicted > 0, "nothing evicted: %s", line);
  ck_assert_uint_le(mhd_connections(), health__guard_slots(g_h->http.guard));
}
END_TEST

/* A flood of connections closed as soon as they are established. */
START_TEST(test_connection_flood) {
  health_options_t o;
  options(&o, 128, 2);
  start_with(&o);
  char args[256], line[512];
  unsigned n = scaled(500, 100);
  /* An attacker at full speed fills the listen backlog faster than a
   * server that shares its CPUs drains it; then the kernel drops SYNs, the
   * probe's included, and the probe waits for TCP's 1 s retransmission.
   * make check runs several tests at once, so the flood here is capped:
   * 5,000 connections/s (300 under sanitizers and valgrind, where the
   * server is slower per connection).  The uncapped flood, on a machine of
   * its own, is bench/attack.sh's (about 24,000 connections/s on 2 cores;
   * a run of this test at 4 tests at once once lost 1 probe of 29 to it). */
  snprintf(args, sizeof args, "-m flood -n %u -t %u -i 100 -w %u -r %u", n,
           th_time_scale() > 1 ? 8 : 3, TS(1000), th_time_scale() > 1 ? 300 : 5000);
  double ok = attack(args, line, sizeof line);
  ck_assert_msg(enough(ok, line), "probes under a connection flood: %s", line);
  /* Afterwards the server lets go of everything: at once as a rule, but
   * under load libmicrohttpd 0.9.75 misses the EOF of some connections
   * closed right after the accept; those wait for their head deadline
   * (2 s here), when no newcomer evicts them first. */
  count_t none = {0};
  ck_assert_msg(th_wait_until(connections_are, &none, TS(4000)),
                "server still holds %u connections after the flood", mhd_connections());
}
END_TEST

/* The soft RLIMIT_NOFILE is raised as far as the table needs, not above
 * the application's ceiling; with no room the cap shrinks and says so. */
START_TEST(test_nofile_raised) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2000) return; /* cannot show it here */
  rl.rlim_cur = 256;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  health_options_t o;
  options(&o, 1000, 10);
  start_with(&o);
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ck_assert_msg(rl.rlim_cur >= 1000 + 250 && rl.rlim_cur < 1000 + 250 + 400, "soft limit %llu",
                (unsigned long long)rl.rlim_cur);
  ck_assert(th_log_contains("nofile_raised"));
  teardown();

  /* A ceiling of 0: never raised; the cap shrinks to fit. */
  rl.rlim_cur = 256;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  th_log_clear();
  health_error_t err;
  ck_assert_int_eq(health_new(&g_h, &o, &err), 0);
  ck_assert_int_eq(health_fds_set_limit(g_h, 0, &err), 0);
  ck_assert_int_eq(health_check_add(g_h, "ok", pass_check, NULL, NULL, NULL, &err), 0);
  ck_assert_int_eq(health_start(g_h, &err), 0);
  ck_assert_int_eq(health_fds_set_limit(g_h, 0, &err), HEALTH_ESTATE);
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ck_assert_uint_eq(rl.rlim_cur, 256);
  ck_assert(th_log_contains("connections_capped"));
  ck_assert_uint_lt(health__guard_slots(g_h->http.guard), 256);
  teardown();

  /* The environment sets the ceiling through health_config_from_env();
   * nonsense is refused by name. */
  static const char *bad[] = {"lots", "+5",         " 5",          "5 ", "0x10",
                              "-1",   "1073741825", "99999999999", "5k"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("HEALTH_NOFILE_MAX", bad[i], 1);
    options(&o, 128, 10);
    ck_assert_int_eq(health_new(&g_h, &o, &err), 0);
    ck_assert_msg(health_config_from_env(g_h, &err) == HEALTH_EINVAL,
                  "HEALTH_NOFILE_MAX='%s' accepted", bad[i]);
    ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_NOFILE_MAX"));
    teardown();
  }
  /* Nothing reads it implicitly any more: health_start() alone ignores it. */
  setenv("HEALTH_NOFILE_MAX", "lots", 1);
  options(&o, 128, 10);
  start_with(&o);
  teardown();
  rl.rlim_cur = 256;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  setenv("HEALTH_NOFILE_MAX", "600", 1);
  options(&o, 1000, 10);
  ck_assert_int_eq(health_new(&g_h, &o, &err), 0);
  ck_assert_msg(health_config_from_env(g_h, &err) == 0, "%s", err.text);
  ck_assert_int_eq(health_check_add(g_h, "ok", pass_check, NULL, NULL, NULL, &err), 0);
  ck_assert_msg(health_start(g_h, &err) == 0, "%s", err.text);
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ck_assert_uint_eq(rl.rlim_cur, 600);
  unsetenv("HEALTH_NOFILE_MAX");
}
END_TEST

/* The application has used up all but two descriptors: accept() fails
 * with EMFILE.  The guard gives its reserve and evicts; probes from another
 * process, beside eight slow clients, are still answered. */
START_TEST(test_emfile) {
  /* Not under valgrind: it keeps descriptors of its own above the limit
   * and emulates RLIMIT_NOFILE, so the exhaustion is not the one a
   * process sees natively (covered by the plain, ASan and TSan runs). */
  if (th_under_valgrind()) return;
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = 1024;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  health_options_t o;
  options(&o, 128, 10);
  start_with(&o);
  int hog[4096], nh = 0;
  while (nh < 4096 && (hog[nh] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) nh++;
  ck_assert_msg(nh < 4096 && errno == EMFILE, "could not exhaust descriptors (%d)", nh);
  char args[256], line[512];
  snprintf(args, sizeof args, "-n 8 -t %u -i 100 -w %u", th_time_scale() > 1 ? 8 : 3, TS(1000));
  /* popen needs two descriptors of its own; leave the server two. */
  for (int i = 0; i < 4; i++) close(hog[--nh]);
  double ok = attack(args, line, sizeof line);
  unsigned long emfile;
  emfile = atomic_load(&g_h->http.guard_counts.emfile);
  for (int i = 0; i < nh; i++) close(hog[i]);
  ck_assert_msg(enough(ok, line), "probes with no descriptors left: %s", line);
  ck_assert_msg(emfile > 0, "EMFILE never seen: %s", line);
}
END_TEST

static Suite *guard_suite(void) {
  Suite *s = suite_create("guard");
  TCase *tc = tcase_create("guard");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_eviction_order);
  tcase_add_test(tc, test_slowloris_many_addresses);
  tcase_add_test(tc, test_connection_flood);
  tcase_add_test(tc, test_nofile_raised);
  tcase_add_test(tc, test_emfile);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(guard_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
