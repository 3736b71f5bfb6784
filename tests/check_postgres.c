/* The PostgreSQL checker against a real throwaway server started by
 * tests/pg-server.sh (and a hot standby of it): pass, authentication
 * failure, outage and recovery, deadlines, read-only nodes, connection
 * reuse, malformed input. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"

/* Same constants as PG_TEST_USER / PG_TEST_PASSWORD in tests/pg-server.sh. */
#define PG_USER "healthcheck"
#define PG_PASSWORD "hc-Tq4-secret-pw"
/* Distinctive strings that must never show up in any output. */
#define WRONG_PASSWORD "Wr0ng-pw-Zq81-distinct"
#define PARSE_SECRET "Sup3rS3cr3t-xy"
#define RO_DB "libhealth_ro"

static char *g_dir;
static unsigned g_port;
static char *g_standby_dir; /* the "standby" test case's hot standby */
static unsigned g_standby_port;

/* ---- server ---- */

static int pg_cmd(const char *cmd, const char *extra, char *out, size_t len) {
  char args[2048];
  snprintf(args, sizeof args, "%s '%s' %s", cmd, g_dir, extra ? extra : "");
  return th_script("pg-server.sh", args, out, len);
}

/* SQL as the superuser; the text goes inside double quotes for sh. */
static int pg_sql(const char *sql, char *out, size_t len) {
  char extra[1024];
  ck_assert(strpbrk(sql, "\"$`\\") == NULL);
  snprintf(extra, sizeof extra, "\"%s\"", sql);
  char sink[256];
  return pg_cmd("sql", extra, out ? out : sink, out ? len : sizeof sink);
}

static int backends(const char *app) {
  char sql[256], out[64];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
           app);
  ck_assert_int_eq(pg_sql(sql, out, sizeof out), 0);
  return atoi(out);
}

/* ---- handles ---- */

static health_t *new_handle(void) {
  th_threads_mark(); /* free_handle() waits for the threads started from here */
  health_options_t o;
  health_options_init(&o);
  o.port = 0;
  o.address = "127.0.0.1";
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "health_new: %s", err.text);
  return h;
}

static void add_pg(health_t *h, const char *name, const char *conninfo,
                   const health_postgres_options_t *pg, unsigned interval_ms, unsigned timeout_ms) {
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval_ms;
  co.timeout_ms = TS(timeout_ms);
  co.failure_threshold = 1;
  health_error_t err = {0};
  int rc = health_postgres_add(h, name, conninfo, pg, &co, &err);
  ck_assert_msg(rc == 0, "health_postgres_add(%s): %d %s", name, rc, err.text);
}

/* health_free() can return while a worker thread is still exiting (the
 * core does not join them); libcrypto's per-thread cleanup in that thread
 * then races with exit() in Check's forked child and crashes it.  Wait
 * until the library's threads are gone. */
static void free_handle(health_t *h) {
  health_free(h);
  th_wait_until(th_single_thread, NULL, TS(2000));
}

static void start(health_t *h) {
  health_error_t err = {0};
  ck_assert_msg(health_start(h, &err) == 0, "health_start: %s", err.text);
}

static void conninfo(char *buf, size_t len, const char *password, const char *db, const char *app) {
  snprintf(buf, len,
           "host=127.0.0.1 port=%u user=" PG_USER " password=%s dbname=%s "
           "application_name=%s",
           g_port, password, db, app);
}

typedef struct {
  health_t *h;
  const char *name;
  uint64_t min_runs;
  int want;         /* a health_status_t, or -1 for any */
  const char *text; /* the output must contain it, or NULL */
} wait_t;

static int cond_result(void *arg) {
  wait_t *w = arg;
  health_check_info_t i;
  if (health_check_find(w->h, w->name, &i, NULL) != 0) return 0;
  return i.runs >= w->min_runs && (w->want < 0 || (int)i.last_status == w->want) &&
         (!w->text || strstr(i.output, w->text));
}

/* Wait until `name` has at least `min_runs` results and its last one is
 * `want` (and mentions `text`); returns its state. */
static health_check_info_t wait_result(health_t *h, const char *name, uint64_t min_runs, int want,
                                       const char *text, unsigned timeout_ms) {
  wait_t w = {h, name, min_runs, want, text};
  int ok = th_wait_until(cond_result, &w, timeout_ms);
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, name, &i, NULL), 0);
  ck_assert_msg(ok, "%s: wanted status %d (\"%s\") after %llu runs; got %d after %llu: \"%s\"",
                name, want, text ? text : "", (unsigned long long)min_runs, (int)i.last_status,
                (unsigned long long)i.runs, i.output);
  return i;
}

static uint64_t runs_of(health_t *h, const char *name) {
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, name, &i, NULL), 0);
  return i.runs;
}

typedef struct {
  const char *app;
  int want;
} backends_wait_t;

static int cond_backends(void *arg) {
  backends_wait_t *b = arg;
  return backends(b->app) == b->want;
}

/* ---- tests ---- */

START_TEST(test_pass) {
  health_t *h = new_handle();
  char kv[512], url[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", "libhealth-test-1a");
  snprintf(url, sizeof url,
           "postgresql://" PG_USER ":" PG_PASSWORD "@127.0.0.1:%u/postgres"
           "?application_name=libhealth-test-1b",
           g_port);
  add_pg(h, "pg-kv", kv, NULL, 200, 2000);
  add_pg(h, "pg-url", url, NULL, 200, 2000);
  start(h);
  const char *names[] = {"pg-kv", "pg-url"};
  for (int k = 0; k < 2; k++) {
    health_check_info_t i = wait_result(h, names[k], 1, HEALTH_PASS, NULL, TS(10000));
    ck_assert_int_eq(i.status, HEALTH_PASS);
    ck_assert(i.has_observed);
    ck_assert_msg(i.observed_value > 0 && i.observed_value < 2000, "observed %f", i.observed_value);
    ck_assert_str_eq(i.observed_unit, "ms");
  }
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  th_response_t r;
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(strstr(r.body, "pg-kv:responseTime") && strstr(r.body, "datastore"), "%s", r.body);
  ck_assert_ptr_null(strstr(r.body, PG_PASSWORD));
  th_response_free(&r);
  free_handle(h);
  ck_assert(!th_log_contains(PG_PASSWORD));
}
END_TEST

START_TEST(test_wrong_password) {
  health_t *h = new_handle();
  char kv[512], url[512];
  conninfo(kv, sizeof kv, WRONG_PASSWORD, "postgres", "libhealth-test-2a");
  snprintf(url, sizeof url, "postgres://" PG_USER ":" WRONG_PASSWORD "@127.0.0.1:%u/postgres",
           g_port);
  add_pg(h, "bad-kv", kv, NULL, 200, 2000);
  add_pg(h, "bad-url", url, NULL, 200, 2000);
  /* A role named like the password makes libpq's message quote the secret,
   * so the redaction of what goes to the log is exercised too. */
  char echo[512];
  snprintf(echo, sizeof echo,
           "host=127.0.0.1 port=%u user=" WRONG_PASSWORD " password=" WRONG_PASSWORD
           " dbname=postgres",
           g_port);
  add_pg(h, "bad-echo", echo, NULL, 200, 2000);
  start(h);
  const char *names[] = {"bad-kv", "bad-url", "bad-echo"};
  for (int k = 0; k < 3; k++) {
    health_check_info_t i = wait_result(h, names[k], 2, HEALTH_FAIL, NULL, TS(10000));
    ck_assert_msg(strstr(i.output, "authentication failed"), "output: %s", i.output);
    ck_assert_ptr_null(strstr(i.output, WRONG_PASSWORD));
    /* Curated: neither the user nor the host is published. */
    ck_assert_ptr_null(strstr(i.output, PG_USER));
    ck_assert_ptr_null(strstr(i.output, "127.0.0.1"));
  }
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);

  th_response_t r;
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &r), 0);
  ck_assert_int_eq(r.status, 503);
  ck_assert_msg(strstr(r.body, "authentication failed"), "%s", r.body);
  ck_assert_ptr_null(strstr(r.body, WRONG_PASSWORD));
  ck_assert_ptr_null(strstr(r.body, PG_USER));
  th_response_free(&r);
  ck_assert_int_eq(th_http(health_port(h), "GET", "/health", &r), 0);
  ck_assert_int_eq(r.status, 200); /* a database outage never fails liveness */
  ck_assert_ptr_null(strstr(r.body, WRONG_PASSWORD));
  th_response_free(&r);
  free_handle(h);

  /* libpq's full reason went to the debug log, without the password. */
  ck_assert(th_log_contains("password authentication failed"));
  ck_assert_msg(th_log_contains("password authentication failed for user \\\"***\\\""), "%s",
                th_log_text());
  ck_assert_msg(!th_log_contains(WRONG_PASSWORD), "%s", th_log_text());
  ck_assert(th_log_lines() > 0);
}
END_TEST

START_TEST(test_outage_and_recovery) {
  health_t *h = new_handle();
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", "libhealth-test-3");
  add_pg(h, "pg-down", kv, NULL, 200, 500);
  start(h);
  wait_result(h, "pg-down", 1, HEALTH_PASS, NULL, TS(10000));

  ck_assert_int_eq(pg_cmd("halt", NULL, NULL, 0), 0);
  uint64_t t0 = th_now_ms();
  uint64_t runs = runs_of(h, "pg-down");
  /* The first run after the server went away fails within interval +
   * timeout (plus scheduling slack). */
  health_check_info_t i = wait_result(h, "pg-down", runs + 1, HEALTH_FAIL, NULL, TS(3000));
  uint64_t took = th_now_ms() - t0;
  ck_assert_msg(took <= 200 + TS(500) + TS(200), "failure seen after %llu ms",
                (unsigned long long)took);
  ck_assert_msg(strstr(i.output, "failed"), "output: %s", i.output);
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  /* While it stays down, the reason is the refused connection. */
  wait_result(h, "pg-down", i.runs + 1, HEALTH_FAIL, "connect failed: connection refused",
              TS(2000));

  char out[64];
  ck_assert_int_eq(pg_cmd("resume", NULL, out, sizeof out), 0);
  ck_assert_uint_eq((unsigned)atoi(out), g_port);
  runs = runs_of(h, "pg-down");
  wait_result(h, "pg-down", runs + 1, HEALTH_PASS, NULL, TS(5000));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  ck_assert_int_eq(backends("libhealth-test-3"), 1);
  free_handle(h);
}
END_TEST

/* A restart that completes between two runs is not a failure: the run
 * notices the ended session and reconnects at once. */
START_TEST(test_restart_between_runs) {
  const char *app = "libhealth-test-3r";
  /* Long enough for the first run (SCRAM under valgrind is slow), the
   * pg_stat_activity query and a fast restart to fit before run 2 starts;
   * capped so the slow builds do not wait a minute for run 2. */
  unsigned scale = th_time_scale() < 4 ? th_time_scale() : 4;
  unsigned interval = 2500 * scale;
  health_t *h = new_handle();
  /* The premise needs run 2 a full interval after run 1: no random phase. */
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.initial_offset = 0;
  fo.run_jitter_percent = 0;
  ck_assert_int_eq(health_fleet_set(h, &fo, NULL), 0);
  char kv[512], sql[256], pid1[64], pid2[64];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", app);
  add_pg(h, "pg-restart", kv, NULL, interval, 1000);
  start(h);
  wait_result(h, "pg-restart", 1, HEALTH_PASS, NULL, TS(5000));
  snprintf(sql, sizeof sql,
           "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = '%s'", app);
  ck_assert_int_eq(pg_sql(sql, pid1, sizeof pid1), 0);
  char out[64];
  ck_assert_int_eq(pg_cmd("restart", NULL, out, sizeof out), 0);
  /* The premise: the server went down and came back between run 1 and
   * run 2.  If run 2 already started, this machine is too slow for the
   * interval above and the test says so instead of blaming the checker. */
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "pg-restart", &i, NULL), 0);
  ck_assert_msg(i.runs == 1 && !i.running,
                "restart did not fit between runs (runs %llu, running %d, interval %u ms)",
                (unsigned long long)i.runs, i.running, interval);
  i = wait_result(h, "pg-restart", 2, -1, NULL, TS(5000) + interval);
  ck_assert_msg(i.last_status == HEALTH_PASS, "after restart: %s", i.output);
  ck_assert_uint_eq(i.consecutive_failures, 0);
  ck_assert_int_eq(pg_sql(sql, pid2, sizeof pid2), 0);
  ck_assert_msg(pid2[0] && strcmp(pid1, pid2) != 0, "'%s' vs '%s'", pid1, pid2);
  free_handle(h);
}
END_TEST

/* Reconnect backoff against a real server that goes away and comes back:
 * the failed attempts are retried within the cap (never later than the
 * interval), and the recovery is seen within two intervals of the server
 * accepting connections again, on one session. */
START_TEST(test_backoff_recovery) {
  const char *app = "libhealth-test-backoff";
  unsigned scale = th_time_scale() < 4 ? th_time_scale() : 4;
  const unsigned interval = 1000 * scale;
  health_t *h = new_handle();
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", app);
  add_pg(h, "pg-backoff", kv, NULL, interval, 500);
  start(h);
  wait_result(h, "pg-backoff", 1, HEALTH_PASS, NULL, TS(10000));

  ck_assert_int_eq(pg_cmd("halt", NULL, NULL, 0), 0);
  uint64_t runs = runs_of(h, "pg-backoff");
  /* Down for a few attempts: with the cap at one interval, three failed
   * runs take at most three intervals (plus the first one's detection). */
  uint64_t t0 = th_now_ms();
  health_check_info_t i = wait_result(h, "pg-backoff", runs + 4, HEALTH_FAIL, "connect failed",
                                      4 * interval + TS(3000));
  uint64_t took = th_now_ms() - t0;
  ck_assert_msg(took <= 4 * interval + TS(1500), "4 runs while down took %llu ms (interval %u)",
                (unsigned long long)took, interval);

  char out[64];
  ck_assert_int_eq(pg_cmd("resume", NULL, out, sizeof out), 0); /* returns once it accepts */
  uint64_t back = th_now_ms();
  runs = runs_of(h, "pg-backoff");
  i = wait_result(h, "pg-backoff", runs + 1, HEALTH_PASS, NULL, 2 * interval + TS(5000));
  uint64_t seen = th_now_ms() - back;
  ck_assert_msg(seen <= 2 * interval,
                "recovery seen %llu ms after the server came back (interval %u)",
                (unsigned long long)seen, interval);
  ck_assert_int_eq(backends(app), 1); /* one session, nothing leaked */
  free_handle(h);
}
END_TEST

typedef struct {
  const char *app;
  int want;
} backends_t;

static int backends_are(void *arg) {
  backends_t *b = arg;
  return backends(b->app) == b->want;
}

/* HEALTH_KEEP_CONNECTIONS=0: every run connects, checks and closes, so no
 * session stays open between runs. */
START_TEST(test_no_kept_connection) {
  const char *app = "libhealth-test-nokeep";
  health_t *h = new_handle();
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  fo.keep_connections = 0;
  ck_assert_int_eq(health_fleet_set(h, &fo, NULL), 0);
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", app);
  add_pg(h, "pg-nokeep", kv, NULL, TS(1500), 1000);
  start(h);
  backends_t b = {app, 0};
  for (uint64_t run = 1; run <= 2; run++) {
    wait_result(h, "pg-nokeep", run, HEALTH_PASS, NULL, TS(10000));
    /* The server may list a closed session for a moment. */
    ck_assert_msg(th_wait_until(backends_are, &b, TS(1000)), "run %llu left %d sessions",
                  (unsigned long long)run, backends(app));
  }
  free_handle(h);
}
END_TEST

START_TEST(test_connect_deadline) {
  unsigned bport = 0;
  int fd = th_blackhole(&bport);
  ck_assert_int_ge(fd, 0);
  health_t *h = new_handle();
  char kv[512];
  snprintf(kv, sizeof kv,
           "host=127.0.0.1 port=%u user=" PG_USER " password=" PG_PASSWORD " dbname=postgres",
           bport);
  add_pg(h, "pg-hole", kv, NULL, 60000, 500);
  uint64_t t0 = th_now_ms();
  start(h);
  health_check_info_t i = wait_result(h, "pg-hole", 1, -1, NULL, TS(3000));
  uint64_t took = th_now_ms() - t0;
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(took >= TS(500) - 50 && took <= TS(500) + TS(150), "result after %llu ms",
                (unsigned long long)took);
  char want[64];
  snprintf(want, sizeof want, "timeout after %u ms", TS(500));
  ck_assert_msg(strstr(i.output, want) && strstr(i.output, "connect"), "output: %s", i.output);
  free_handle(h);
  close(fd);
}
END_TEST

/* Host names: the checker resolves them itself.  In this test's own
 * /etc/hosts, pg-multi.test has a dead address first (nothing listens on
 * 127.0.0.9) and the server's second: every address is tried in turn, as
 * libpq would, and both forms of the string work. */
static void need_private_mounts(int ok, const char *why) {
  if (!ok) ck_abort_msg("cannot set up this test's own /etc files (needs root): %s", why);
}

START_TEST(test_host_name) {
  char why[256];
  need_private_mounts(th_mount_file("/etc/hosts",
                                    "127.0.0.1 localhost\n"
                                    "127.0.0.9 pg-multi.test\n"
                                    "127.0.0.1 pg-multi.test\n",
                                    why, sizeof why) == 0,
                      why);
  health_t *h = new_handle();
  char kv[512], url[512];
  snprintf(kv, sizeof kv,
           "host=pg-multi.test port=%u user=" PG_USER " password=" PG_PASSWORD
           " dbname=postgres application_name=libhealth-test-name-a",
           g_port);
  snprintf(url, sizeof url,
           "postgresql://" PG_USER ":" PG_PASSWORD "@localhost:%u/postgres"
           "?application_name=libhealth-test-name-b",
           g_port);
  add_pg(h, "pg-name", kv, NULL, 200, 2000);
  add_pg(h, "pg-name-url", url, NULL, 200, 2000);
  start(h);
  wait_result(h, "pg-name", 1, HEALTH_PASS, NULL, TS(10000));
  wait_result(h, "pg-name-url", 1, HEALTH_PASS, NULL, TS(10000));
  free_handle(h);
}
END_TEST

/* A name that does not resolve fails at once with a clear message. */
START_TEST(test_host_unknown) {
  char why[256];
  need_private_mounts(th_mount_file("/etc/hosts", "127.0.0.1 localhost\n", why, sizeof why) == 0,
                      why);
  /* and no name server at all: the lookup fails, it does not hang */
  need_private_mounts(
      th_mount_file("/etc/resolv.conf", "nameserver 127.0.0.1\n", why, sizeof why) == 0, why);
  health_t *h = new_handle();
  char kv[512];
  snprintf(kv, sizeof kv,
           "host=nowhere.invalid port=%u user=" PG_USER " password=" PG_PASSWORD " dbname=postgres",
           g_port);
  add_pg(h, "pg-nowhere", kv, NULL, 60000, 2000);
  start(h);
  health_check_info_t i = wait_result(h, "pg-nowhere", 1, HEALTH_FAIL, NULL, TS(5000));
  ck_assert_str_eq(i.output, "connect failed: could not resolve the host name");
  free_handle(h);
}
END_TEST

/* A resolver that never answers: the run ends at its deadline with the
 * phase named, and the next runs come on time, instead of one run stuck in
 * libpq's synchronous lookup for the resolver's own 30 s timeout. */
START_TEST(test_dns_deadline) {
  char why[256];
  int dns = th_hang_dns(why, sizeof why);
  need_private_mounts(dns >= 0, why);
  health_t *h = new_handle();
  char kv[512];
  snprintf(kv, sizeof kv,
           "host=db.hung-resolver.test port=%u user=" PG_USER " password=" PG_PASSWORD
           " dbname=postgres",
           g_port);
  add_pg(h, "pg-dns", kv, NULL, 100, 500);
  uint64_t t0 = th_now_ms();
  start(h);
  health_check_info_t i = wait_result(h, "pg-dns", 1, -1, NULL, TS(3000));
  uint64_t took = th_now_ms() - t0;
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  char want[64];
  snprintf(want, sizeof want, "timeout after %u ms (dns)", TS(500));
  ck_assert_msg(strstr(i.output, want), "output: %s", i.output);
  ck_assert_msg(took <= TS(500) + TS(150), "result after %llu ms", (unsigned long long)took);
  /* The second run of 500 ms starts 100 ms after the first ends: about
   * 1.1 s in all, not the resolver's 30 s. */
  i = wait_result(h, "pg-dns", 2, HEALTH_FAIL, "(dns)", TS(4000));
  /* ... and waits for the first run's lookup instead of starting another */
  ck_assert_msg(strstr(i.output, "(dns): previous lookup still running"), "output: %s", i.output);
  health_free(h);
  th_dns_unhang(dns, TS(2000));
  close(dns);
}
END_TEST

/* Servers that misbehave: one that resets every connection, one that
 * speaks another protocol (an HTTP server where the database should be),
 * with TLS negotiation and without.  Each fails at once, well before the
 * deadline, with a message that says what happened. */
START_TEST(test_misbehaving_server) {
  static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  static const struct {
    const char *reply;
    int rst;
    const char *sslmode, *want;
  } cases[] = {
      /* a reset lands before or after libpq's first write */
      {NULL, 1, "disable",
       "connect failed: connection reset|connect failed: server closed the connection"},
      {NULL, 1, "prefer",
       "connect failed: connection reset|connect failed: server closed the connection"},
      {NULL, 0, "disable", "connect failed: server closed the connection"},
      {http, 0, "disable", "connect failed: not a PostgreSQL server"},
      {http, 0, "prefer", "connect failed: not a PostgreSQL server"},
      {http, 0, "require", "connect failed: not a PostgreSQL server"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    unsigned port;
    th_peer_t *peer = th_peer_start(cases[k].reply, cases[k].reply ? strlen(cases[k].reply) : 0,
                                    cases[k].rst, &port);
    ck_assert_ptr_nonnull(peer);
    health_t *h = new_handle();
    char kv[512];
    snprintf(kv, sizeof kv,
             "host=127.0.0.1 port=%u user=" PG_USER " password=" PG_PASSWORD
             " dbname=postgres sslmode=%s",
             port, cases[k].sslmode);
    add_pg(h, "pg-bad", kv, NULL, 60000, 3000);
    uint64_t t0 = th_now_ms();
    start(h);
    health_check_info_t i = wait_result(h, "pg-bad", 1, HEALTH_FAIL, NULL, TS(6000));
    uint64_t took = th_now_ms() - t0;
    ck_assert_msg(th_one_of(i.output, cases[k].want), "case %zu: \"%s\", want \"%s\"", k, i.output,
                  cases[k].want);
    ck_assert_msg(took < TS(1500), "case %zu: failed only after %llu ms", k,
                  (unsigned long long)took);
    ck_assert(!strstr(i.output, PG_PASSWORD));
    th_peer_stop(peer); /* first: free_handle() waits for the last thread */
    free_handle(h);
  }
  ck_assert(!th_log_contains(PG_PASSWORD));
}
END_TEST

START_TEST(test_query_deadline) {
  health_t *h = new_handle();
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", "libhealth-test-4q");
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  pg.query = "SELECT pg_sleep(30)";
  add_pg(h, "pg-slow", kv, &pg, 60000, 500);
  uint64_t t0 = th_now_ms();
  start(h);
  health_check_info_t i = wait_result(h, "pg-slow", 1, -1, NULL, TS(3000));
  uint64_t took = th_now_ms() - t0;
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(took <= TS(500) + TS(150), "result after %llu ms", (unsigned long long)took);
  char want[64];
  snprintf(want, sizeof want, "timeout after %u ms", TS(500));
  ck_assert_msg(strstr(i.output, want) && strstr(i.output, "query"), "output: %s", i.output);
  /* The server cancels the abandoned query itself (statement_timeout):
   * its backend goes away long before pg_sleep(30) would end. */
  backends_wait_t b = {"libhealth-test-4q", 0};
  ck_assert_msg(th_wait_until(cond_backends, &b, TS(5000)), "backend still running");
  free_handle(h);
}
END_TEST

START_TEST(test_read_only) {
  health_t *h = new_handle();
  char plain[512], writable[512], primary[512];
  conninfo(plain, sizeof plain, PG_PASSWORD, RO_DB, "libhealth-test-5p");
  conninfo(writable, sizeof writable, PG_PASSWORD, RO_DB, "libhealth-test-5w");
  conninfo(primary, sizeof primary, PG_PASSWORD, "postgres", "libhealth-test-5c");
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  ck_assert_str_eq(pg.query, "SELECT 1");
  ck_assert_int_eq(pg.require_writable, 0);
  add_pg(h, "ro-plain", plain, &pg, 200, 2000);
  pg.require_writable = 1;
  add_pg(h, "ro-writable", writable, &pg, 200, 2000);
  add_pg(h, "rw-writable", primary, &pg, 200, 2000);
  start(h);
  wait_result(h, "ro-plain", 2, HEALTH_PASS, NULL, TS(10000));
  wait_result(h, "rw-writable", 2, HEALTH_PASS, NULL, TS(10000));
  health_check_info_t i = wait_result(h, "ro-writable", 2, HEALTH_FAIL, NULL, TS(10000));
  ck_assert_str_eq(i.output, "read-only: transaction_read_only is on");
  /* The read-only session is dropped after each run (the next run
   * reconnects), while a healthy check keeps its one session. */
  backends_wait_t b = {"libhealth-test-5w", 0};
  ck_assert_msg(th_wait_until(cond_backends, &b, TS(3000)), "read-only session kept");
  ck_assert_int_eq(backends("libhealth-test-5p"), 1);
  free_handle(h);
}
END_TEST

/* A replica, as a kept connection finds itself on after a failover. */
START_TEST(test_in_recovery) {
  ck_assert_msg(g_standby_port != 0, "no standby");
  health_t *h = new_handle();
  char plain[512], writable[512];
#define STANDBY_CONNINFO                                          \
  "host=127.0.0.1 port=%u user=" PG_USER " password=" PG_PASSWORD \
  " dbname=postgres application_name=%s"
  snprintf(plain, sizeof plain, STANDBY_CONNINFO, g_standby_port, "libhealth-test-5sp");
  snprintf(writable, sizeof writable, STANDBY_CONNINFO, g_standby_port, "libhealth-test-5sw");
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  add_pg(h, "sb-plain", plain, &pg, 200, 2000);
  pg.require_writable = 1;
  add_pg(h, "sb-writable", writable, &pg, 200, 2000);
  start(h);
  wait_result(h, "sb-plain", 2, HEALTH_PASS, NULL, TS(10000));
  health_check_info_t i = wait_result(h, "sb-writable", 2, HEALTH_FAIL, NULL, TS(10000));
  ck_assert_str_eq(i.output, "read-only: in recovery");
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  free_handle(h);
}
END_TEST

static void standby_up(void) {
  char out[64];
  g_standby_dir = th_tmpdir("pgsb");
  ck_assert_ptr_nonnull(g_standby_dir);
  char args[2048];
  snprintf(args, sizeof args, "standby '%s' '%s'", g_standby_dir, g_dir);
  int rc = th_script("pg-server.sh", args, out, sizeof out);
  ck_assert_msg(rc == 0, "pg-server.sh standby: %d", rc);
  g_standby_port = (unsigned)atoi(out);
}

static void standby_down(void) {
  char args[2048];
  snprintf(args, sizeof args, "stop '%s'", g_standby_dir);
  th_script("pg-server.sh", args, NULL, 0);
  rmdir(g_standby_dir);
  free(g_standby_dir);
  g_standby_dir = NULL;
}

START_TEST(test_one_connection) {
  const char *app = "libhealth-test-6";
  health_t *h = new_handle();
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", app);
  add_pg(h, "pg-many", kv, NULL, 50, 1000);
  start(h);
  wait_result(h, "pg-many", 5, HEALTH_PASS, NULL, TS(10000));
  char sql[256], pid1[64], pid2[64];
  snprintf(sql, sizeof sql,
           "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = '%s'", app);
  ck_assert_int_eq(pg_sql(sql, pid1, sizeof pid1), 0);
  health_check_info_t i = wait_result(h, "pg-many", 30, HEALTH_PASS, NULL, TS(15000));
  ck_assert_uint_ge(i.runs, 30);
  ck_assert_uint_ge(i.consecutive_successes, 30);
  ck_assert_int_eq(backends(app), 1);
  /* Same backend process, same start time: never reconnected. */
  ck_assert_int_eq(pg_sql(sql, pid2, sizeof pid2), 0);
  ck_assert_msg(pid1[0] && strcmp(pid1, pid2) == 0, "'%s' vs '%s'", pid1, pid2);
  free_handle(h);
}
END_TEST

START_TEST(test_malformed) {
  static const char *const bad[] = {
      "postgresql://" PG_USER ":" PARSE_SECRET "@127.0.0.1:notaport/postgres",
      "host=127.0.0.1 password=" PARSE_SECRET " bogus",
      "host=127.0.0.1 password='" PARSE_SECRET,
      "postgresql://" PG_USER ":" PARSE_SECRET "@[::1/postgres",
      "postgresql://u:" PARSE_SECRET "%zz@h/db",
      "postgresql://u:" PARSE_SECRET "@h/db?foo=bar",
      "postgresql://u:" PARSE_SECRET "@h/db?sslmode=bogus",
      "postgresql://u:Sup3r@" PARSE_SECRET "@h:5432/db",
      "postgres:/u:" PARSE_SECRET "@h/db",
      "host=h password=" PARSE_SECRET "\"x y",
      "host=h password=" PARSE_SECRET " port=99999",
      "nosuchkeyword=" PARSE_SECRET,
  };
  health_t *h = new_handle();
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    health_error_t err = {0};
    int rc = health_postgres_add(h, "pg-bad", bad[k], NULL, NULL, &err);
    ck_assert_msg(rc == HEALTH_EURL, "%s: rc %d (%s)", bad[k], rc, err.text);
    ck_assert_int_eq(err.code, HEALTH_EURL);
    ck_assert_msg(strstr(err.text, "malformed PostgreSQL"), "%s: %s", bad[k], err.text);
    ck_assert_msg(!strstr(err.text, PARSE_SECRET) && !strstr(err.text, "Sup3r"), "%s: %s", bad[k],
                  err.text);
    health_check_info_t i;
    ck_assert_int_eq(health_check_find(h, "pg-bad", &i, NULL), HEALTH_ENOENT);
  }
  health_error_t err = {0};
  ck_assert_int_eq(health_postgres_add(h, "pg-bad", "nosuchkeyword=1", NULL, NULL, &err),
                   HEALTH_EURL);
  ck_assert_msg(strstr(err.text, "unknown keyword \"nosuchkeyword\""), "%s", err.text);
  ck_assert_int_eq(health_postgres_add(h, "pg-bad", NULL, NULL, NULL, &err), HEALTH_EINVAL);
  /* A well-formed one registers once; the name stays taken. */
  ck_assert_int_eq(health_postgres_add(h, "pg-ok", "host=127.0.0.1 port=1", NULL, NULL, &err), 0);
  ck_assert_int_eq(health_postgres_add(h, "pg-ok", "host=127.0.0.1 port=1", NULL, NULL, &err),
                   HEALTH_EEXIST);
  ck_assert_int_eq(health_postgres_add(h, "bad name!", "host=127.0.0.1", NULL, NULL, &err),
                   HEALTH_EINVAL);
  free_handle(h);
}
END_TEST

START_TEST(test_query_error) {
  health_t *h = new_handle();
  char kv[512];
  conninfo(kv, sizeof kv, PG_PASSWORD, "postgres", "libhealth-test-8");
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  pg.query = "SELECT count(*) FROM libhealth_t8";
  add_pg(h, "pg-qerr", kv, &pg, 200, 2000);
  start(h);
  health_check_info_t i = wait_result(h, "pg-qerr", 1, HEALTH_FAIL, NULL, TS(10000));
  ck_assert_str_eq(i.output, "query failed: 42P01 (undefined table)");
  ck_assert_int_eq(pg_sql("CREATE TABLE libhealth_t8 (x int)", NULL, 0), 0);
  ck_assert_int_eq(pg_sql("GRANT SELECT ON libhealth_t8 TO " PG_USER, NULL, 0), 0);
  wait_result(h, "pg-qerr", i.runs + 1, HEALTH_PASS, NULL, TS(5000));
  free_handle(h);
  ck_assert_int_eq(pg_sql("DROP TABLE libhealth_t8", NULL, 0), 0);
}
END_TEST

/* A test that failed while the server was halted must not take the
 * following ones down with it. */
static void ensure_server(void) { pg_cmd("resume", NULL, NULL, 0); }

static Suite *pg_suite(void) {
  Suite *s = suite_create("postgres");
  TCase *tc = tcase_create("checks");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_pass);
  tcase_add_test(tc, test_wrong_password);
  tcase_add_test(tc, test_connect_deadline);
  tcase_add_test(tc, test_query_deadline);
  tcase_add_test(tc, test_host_name);
  tcase_add_test(tc, test_host_unknown);
  tcase_add_test(tc, test_dns_deadline);
  tcase_add_test(tc, test_misbehaving_server);
  tcase_add_test(tc, test_read_only);
  tcase_add_test(tc, test_one_connection);
  tcase_add_test(tc, test_malformed);
  tcase_add_test(tc, test_query_error);
  tcase_add_test(tc, test_no_kept_connection);
  suite_add_tcase(s, tc);

  TCase *standby = tcase_create("standby");
  tcase_set_timeout(standby, 60);
  tcase_add_unchecked_fixture(standby, standby_up, standby_down);
  tcase_add_test(standby, test_in_recovery);
  suite_add_tcase(s, standby);

  TCase *outage = tcase_create("outage");
  tcase_set_timeout(outage, 60);
  tcase_add_unchecked_fixture(outage, NULL, ensure_server);
  tcase_add_test(outage, test_outage_and_recovery);
  tcase_add_test(outage, test_restart_between_runs);
  tcase_add_test(outage, test_backoff_recovery);
  suite_add_tcase(s, outage);
  return s;
}

/* 1 if this build has the PostgreSQL checker (configure found libpq). */
static int pg_compiled_in(void) {
  health_t *h = NULL;
  if (health_new(&h, NULL, NULL) != 0) return 1; /* let the tests say why */
  int rc = health_postgres_add(h, "probe", "host=127.0.0.1", NULL, NULL, NULL);
  health_free(h);
  return rc != HEALTH_ENOTSUP;
}

int main(void) {
  if (!pg_compiled_in()) {
    fprintf(stderr, "check_postgres: built without libpq; skipped\n");
    return 77;
  }
  g_dir = th_tmpdir("pg");
  if (!g_dir) {
    perror("th_tmpdir");
    return 99;
  }
  char out[256];
  int rc = pg_cmd("start", NULL, out, sizeof out);
  if (rc != 0) {
    pg_cmd("stop", NULL, NULL, 0);
    rmdir(g_dir); /* in case the script could not even do that */
    if (th_server_skip(rc, "check_postgres", "PostgreSQL is not installed; skipped")) return 77;
    fprintf(stderr, "check_postgres: pg-server.sh start failed (%d)\n", rc);
    return 1;
  }
  g_port = (unsigned)atoi(out);
  /* A database whose sessions are read-only, as on a replica. */
  char sink[256];
  if (pg_cmd("sql", "\"CREATE DATABASE " RO_DB "\"", sink, sizeof sink) != 0 ||
      pg_cmd("sql", "\"ALTER DATABASE " RO_DB " SET default_transaction_read_only = on\"", sink,
             sizeof sink) != 0) {
    fprintf(stderr, "check_postgres: cannot create the read-only database\n");
    pg_cmd("stop", NULL, NULL, 0);
    return 1;
  }

  int failed = th_run_suite(pg_suite(), CK_ENV, CK_FORK_GETENV);
  pg_cmd("stop", NULL, NULL, 0);
  free(g_dir);
  return failed ? 1 : 0;
}
