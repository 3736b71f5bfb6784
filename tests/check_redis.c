/* The Redis checker against real throwaway servers started by
 * tests/redis-server.sh (TLS + plaintext ports, ACL users, a replica, an
 * instance that requires client certificates), plus the URL parser. */
#define _GNU_SOURCE
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"
#include "net/url.h"

/* Same constants as in tests/redis-server.sh. */
#define PW "dflt-Xq7-secret-pw"
#define CHECKER_PW_ENC "chk%3Ap%40ss%2Fw%25rd-Zk9" /* chk:p@ss/w%rd-Zk9 */
/* Distinctive strings that must never show up in any output. */
#define WRONG_PW "Wr0ng-pw-Rd77-distinct"
#define WRONG_USER "nosuchuser-Uq3"
#define URL_SECRET "Sup3rS3cr3t-xy"

/* How late a result may come after the check's timeout. */
#define MARGIN_MS 150

typedef struct server {
  char *dir;
  unsigned tls, plain;
} server_t;

static server_t g_main, g_replica, g_mtls, g_rot; /* g_rot: rotation test only */

/* ---- servers ---- */

static int srv_cmd(const server_t *s, const char *cmd, const char *extra, char *out, size_t len) {
  char args[2048], sink[256];
  snprintf(args, sizeof args, "%s '%s' %s", cmd, s->dir, extra ? extra : "");
  return th_script("redis-server.sh", args, out ? out : sink, out ? len : sizeof sink);
}

static int srv_start(server_t *s, const char *tag, const char *extra) {
  char out[128];
  if (!s->dir && !(s->dir = th_tmpdir(tag))) return -1;
  int rc = srv_cmd(s, "start", extra, out, sizeof out);
  if (rc == 0 && sscanf(out, "%u %u", &s->tls, &s->plain) != 2) rc = -1;
  return rc;
}

static void srv_file(const server_t *s, const char *file, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", s->dir, file);
}

/* ---- handles ---- */

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

static void check_opts(health_check_options_t *co, unsigned interval, unsigned timeout) {
  health_check_options_init(co);
  co->interval_ms = interval;
  co->timeout_ms = TS(timeout);
  co->failure_threshold = 1;
}

/* A started handle with one Redis check "r"; ro may be NULL. */
static health_t *start_one(const char *url, const health_redis_options_t *ro, unsigned interval,
                           unsigned timeout) {
  health_t *h = new_handle();
  health_check_options_t co;
  health_error_t err;
  check_opts(&co, interval, timeout);
  int rc = health_redis_add(h, "r", url, ro, &co, &err);
  ck_assert_msg(rc == 0, "health_redis_add: %s", err.text);
  ck_assert_int_eq(health_start(h, &err), 0);
  return h;
}

typedef struct waiter {
  health_t *h;
  uint64_t runs;
  health_status_t last;
} waiter_t;

static int cond_runs(void *arg) {
  waiter_t *w = arg;
  health_check_info_t i;
  return health_check_find(w->h, "r", &i, NULL) == 0 && i.runs >= w->runs;
}

static int cond_last(void *arg) {
  waiter_t *w = arg;
  health_check_info_t i;
  return health_check_find(w->h, "r", &i, NULL) == 0 && i.runs > 0 && i.last_status == w->last;
}

/* Wait for the first completed run and return it. */
static health_check_info_t first_result(health_t *h, unsigned timeout_ms) {
  waiter_t w = {h, 1, HEALTH_PASS};
  health_check_info_t i;
  ck_assert_msg(th_wait_until(cond_runs, &w, TS(timeout_ms)), "no result in %u ms", TS(timeout_ms));
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  return i;
}

static void expect_pass(health_t *h) {
  health_check_info_t i = first_result(h, 10000);
  ck_assert_msg(i.last_status == HEALTH_PASS, "expected pass, got: %s", i.output);
}

/* The first run fails, containing `text` (and not the core's bare
 * timeout), within timeout + MARGIN_MS. */
static health_check_info_t expect_fail_within(health_t *h, unsigned timeout, const char *text) {
  uint64_t t0 = th_now_ms();
  health_check_info_t i = first_result(h, timeout + 5000);
  uint64_t took = th_now_ms() - t0;
  ck_assert_msg(i.last_status == HEALTH_FAIL, "expected fail, got pass");
  ck_assert_msg(strstr(i.output, text), "output \"%s\" lacks \"%s\"", i.output, text);
  ck_assert_msg(took <= TS(timeout) + TS(MARGIN_MS), "took %llu ms (timeout %u)",
                (unsigned long long)took, TS(timeout));
  return i;
}

static char g_url[512];
static const char *url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *url(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_url, sizeof g_url, fmt, ap);
  va_end(ap);
  return g_url;
}

/* ---- URL parser ---- */

START_TEST(test_url_valid) {
  health__redis_url_t u;
  char e[256];
  ck_assert_int_eq(health__redis_url_parse("redis://localhost", &u, e, sizeof e), 0);
  ck_assert(!u.tls && !u.user && !u.password && !u.host_is_ip);
  ck_assert_str_eq(u.host, "localhost");
  ck_assert_uint_eq(u.port, 6379);
  ck_assert_uint_eq(u.db, 0);
  health__redis_url_free(&u);

  ck_assert_int_eq(
      health__redis_url_parse("rediss://user:pass@cache.example.com:6380/3", &u, e, sizeof e), 0);
  ck_assert(u.tls);
  ck_assert_str_eq(u.user, "user");
  ck_assert_str_eq(u.password, "pass");
  ck_assert_str_eq(u.host, "cache.example.com");
  ck_assert_uint_eq(u.port, 6380);
  ck_assert_uint_eq(u.db, 3);
  health__redis_url_free(&u);

  ck_assert_int_eq(health__redis_url_parse("REDISS://:only-pw@10.0.0.7/", &u, e, sizeof e), 0);
  ck_assert(u.tls && !u.user);
  ck_assert_str_eq(u.password, "only-pw");
  ck_assert_int_eq(u.host_is_ip, 4);
  ck_assert_uint_eq(u.db, 0);
  health__redis_url_free(&u);

  ck_assert_int_eq(health__redis_url_parse("redis://[::1]:6380", &u, e, sizeof e), 0);
  ck_assert_str_eq(u.host, "::1");
  ck_assert_int_eq(u.host_is_ip, 6);
  ck_assert_uint_eq(u.port, 6380);
  health__redis_url_free(&u);

  ck_assert_int_eq(
      health__redis_url_parse("redis://us%65r:p%40ss%3Aw%2Frd%25@h:1/15", &u, e, sizeof e), 0);
  ck_assert_str_eq(u.user, "user");
  ck_assert_str_eq(u.password, "p@ss:w/rd%");
  ck_assert_uint_eq(u.port, 1);
  ck_assert_uint_eq(u.db, 15);
  health__redis_url_free(&u);

  /* an unencoded '@' in the password: the last '@' ends the user info */
  ck_assert_int_eq(health__redis_url_parse("redis://:a@b@h:65535", &u, e, sizeof e), 0);
  ck_assert_str_eq(u.password, "a@b");
  ck_assert_str_eq(u.host, "h");
  ck_assert_uint_eq(u.port, 65535);
  health__redis_url_free(&u);
  health__redis_url_free(&u); /* idempotent */
}
END_TEST

START_TEST(test_url_malformed) {
  static const struct {
    const char *url, *text;
  } bad[] = {
      {"", "empty URL"},
      {"http://:" URL_SECRET "@h", "scheme"},
      {"localhost:6379", "not a URL"},
      {"redis://:" URL_SECRET "@", "empty host"},
      {"redis://:" URL_SECRET "@:6379", "empty host"},
      {"redis://:" URL_SECRET "@h:0", "port out of range"},
      {"redis://:" URL_SECRET "@h:70000", "port out of range"},
      {"redis://:" URL_SECRET "@h:abc", "port is not a number"},
      {"redis://:" URL_SECRET "@h:", "empty port"},
      {"redis://:" URL_SECRET "@h/-1", "database"},
      {"redis://:" URL_SECRET "@h/abc", "database"},
      {"redis://:" URL_SECRET "@h/1/x", "database"},
      {"redis://:" URL_SECRET "@h/99999999999", "too large"},
      {"redis://:" URL_SECRET "@h:6379x", "port is not a number"},
      {"redis://:" URL_SECRET "@h?db=1", "query"},
      {"redis://:" URL_SECRET "@h#x", "fragment"},
      {"redis://:" URL_SECRET "@[::1", "unterminated"},
      {"redis://:" URL_SECRET "@[nothex]:1", "IPv6"},
      {"redis://:" URL_SECRET "@[::1]x", "unexpected characters"},
      {"redis://:" URL_SECRET "@999.1.1.1", "IPv4"},
      {"redis://:" URL_SECRET "@ho st", "invalid host"},
      {"redis://user@h", "without a password"},
      {"redis://user:@h", "empty password"},
      {"redis://:" URL_SECRET "%zz@h", "percent-encoding"},
      {"redis://:" URL_SECRET "%2@h", "percent-encoding"},
      {"redis://:" URL_SECRET "%00@h", "NUL"},
      {"redis://:" URL_SECRET " x@h", "invalid character"},
      /* a '/' in the password cuts the authority short */
      {"redis://:Sup3r/S3cr3t-xy@h", "'@' after the host"},
      {"redis://:Sup3rS3cr3t:xy@h:1:2", "port is not a number"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    health__redis_url_t u;
    char e[256];
    int rc = health__redis_url_parse(bad[k].url, &u, e, sizeof e);
    ck_assert_msg(rc == HEALTH_EURL, "accepted #%zu", k);
    ck_assert_msg(strstr(e, bad[k].text), "#%zu: \"%s\" lacks \"%s\"", k, e, bad[k].text);
    ck_assert_msg(!strstr(e, "Sup3r") && !strstr(e, "xy"), "#%zu leaks: %s", k, e);
    ck_assert_ptr_null(u.password);
    ck_assert_ptr_null(u.host);
    health__redis_url_free(&u);
  }
}
END_TEST

START_TEST(test_register_errors) {
  health_t *h = new_handle();
  health_redis_options_t ro;
  health_error_t err;
  char ca[512], crt[512], other[512];

  ck_assert_int_eq(health_redis_add(h, "r", "redis://:" URL_SECRET "@h:99999", NULL, NULL, &err),
                   HEALTH_EURL);
  ck_assert_ptr_null(strstr(err.text, URL_SECRET));
  ck_assert_ptr_nonnull(strstr(err.text, "port"));
  ck_assert_int_eq(health_redis_add(h, "r", NULL, NULL, NULL, &err), HEALTH_EINVAL);

  health_redis_options_init(&ro);
  ro.ca_file = "/nonexistent/ca.pem";
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://h", &ro, NULL, &err), HEALTH_ETLS);
  ck_assert_ptr_nonnull(strstr(err.text, "/nonexistent/ca.pem"));

  srv_file(&g_main, "client.crt", crt, sizeof crt);
  srv_file(&g_main, "other.key", other, sizeof other);
  health_redis_options_init(&ro);
  ro.cert_file = crt;
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://h", &ro, NULL, &err), HEALTH_ETLS);
  ro.key_file = other; /* a key of another certificate */
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://h", &ro, NULL, &err), HEALTH_ETLS);
  ck_assert_msg(strstr(err.text, "does not match") && strstr(err.text, "other.key"), "%s",
                err.text);

  /* not PEM at all */
  srv_file(&g_main, "redis.pid", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://h", &ro, NULL, &err), HEALTH_ETLS);
  ck_assert_ptr_nonnull(strstr(err.text, "redis.pid"));

  /* failures registered nothing; a good one still works */
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), HEALTH_ENOENT);
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://localhost", NULL, NULL, &err), 0);
  ck_assert_int_eq(health_redis_add(h, "r", "rediss://localhost", NULL, NULL, &err), HEALTH_EEXIST);
  health_free(h);
}
END_TEST

/* ---- passing ---- */

START_TEST(test_tls_pass) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 1000, 2000);
  expect_pass(h);
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert(i.has_observed);
  ck_assert_str_eq(i.observed_unit, "ms");
  ck_assert(i.observed_value >= 0 && i.observed_value < 2000);

  th_response_t resp;
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &resp), 0);
  ck_assert_int_eq(resp.status, 200);
  ck_assert_ptr_nonnull(strstr(resp.body, "datastore"));
  ck_assert_ptr_null(strstr(resp.body, PW));
  th_response_free(&resp);
  health_free(h);
  ck_assert(!th_log_contains(PW));
}
END_TEST

/* IP literal: verified against the certificate's IP SAN, no SNI. */
START_TEST(test_tls_ip_pass) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@127.0.0.1:%u", g_main.tls), &ro, 1000, 2000);
  expect_pass(h);
  health_free(h);
}
END_TEST

/* A least-privilege ACL user, a percent-encoded password and a database. */
START_TEST(test_acl_user_db) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_dir = NULL;
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://checker:%s@localhost:%u/3", CHECKER_PW_ENC, g_main.tls),
                          &ro, 1000, 2000);
  expect_pass(h);
  health_free(h);
  ck_assert(!th_log_contains("Zk9"));

  h = start_one(url("redis://checker:%s@127.0.0.1:%u/99", CHECKER_PW_ENC, g_main.plain), NULL, 1000,
                2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "database number out of range"), "%s", i.output);
  health_free(h);
}
END_TEST

START_TEST(test_plain_pass) {
  health_t *h = start_one(url("redis://:" PW "@127.0.0.1:%u", g_main.plain), NULL, 1000, 2000);
  expect_pass(h);
  health_free(h);
  h = start_one(url("redis://127.0.0.1:%u", g_main.plain), NULL, 1000, 2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "NOAUTH"), "%s", i.output);
  health_free(h);
}
END_TEST

START_TEST(test_mtls_pass) {
  health_redis_options_t ro;
  char ca[512], crt[512], key[512];
  srv_file(&g_mtls, "ca.crt", ca, sizeof ca);
  srv_file(&g_mtls, "client.crt", crt, sizeof crt);
  srv_file(&g_mtls, "client.key", key, sizeof key);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  ro.cert_file = crt;
  ro.key_file = key;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_mtls.tls), &ro, 1000, 2000);
  expect_pass(h);
  health_free(h);
}
END_TEST

START_TEST(test_insecure_skip_verify) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "wrongca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca; /* would fail verification */
  ro.insecure_skip_verify = 1;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 1000, 2000);
  expect_pass(h);
  /* warned at registration and at the connect */
  ck_assert_int_ge(th_log_count("redis_tls_insecure"), 2);
  ck_assert(th_log_contains("\"level\":\"warn\""));
  health_free(h);
}
END_TEST

/* ---- TLS failures ---- */

START_TEST(test_wrong_ca) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "wrongca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 1000, 2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "TLS certificate verify failed: "), "%s", i.output);
  /* The server sends its CA along (auto-chained), so the reason is
   * "self-signed certificate in certificate chain"; without it,
   * "unable to get local issuer certificate". */
  ck_assert_msg(strstr(i.output, "issuer") || strstr(i.output, "self-signed"), "%s", i.output);
  health_free(h);
}
END_TEST

START_TEST(test_host_mismatch) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  ro.tls_server_name = "wrong.example";
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 1000, 2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "TLS certificate verify failed: hostname mismatch"), "%s",
                i.output);
  ck_assert_ptr_null(strstr(i.output, "wrong.example"));
  health_free(h);

  /* the right name from tls_server_name while connecting to an IP */
  ro.tls_server_name = "localhost";
  h = start_one(url("rediss://:" PW "@127.0.0.1:%u", g_main.tls), &ro, 1000, 2000);
  expect_pass(h);
  health_free(h);
}
END_TEST

START_TEST(test_mtls_missing_cert) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_mtls, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_mtls.tls), &ro, 1000, 2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "client certificate"), "%s", i.output);
  health_free(h);
}
END_TEST

/* ---- secrets ---- */

static void assert_no_leak(health_t *h, const char *secret) {
  health_check_info_t i;
  th_response_t resp;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_msg(!strstr(i.output, secret), "output leaks: %s", i.output);
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &resp), 0);
  ck_assert_int_eq(resp.status, 503);
  ck_assert_msg(!strstr(resp.body, secret), "/ready leaks: %s", resp.body);
  th_response_free(&resp);
  ck_assert_int_eq(th_http(health_port(h), "GET", "/health", &resp), 0);
  ck_assert_msg(!strstr(resp.body, secret), "/health leaks: %s", resp.body);
  th_response_free(&resp);
  ck_assert_msg(!th_log_contains(secret), "a log line leaks %s", secret);
}

START_TEST(test_wrong_password) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" WRONG_PW "@localhost:%u", g_main.tls), &ro, 200, 2000);
  waiter_t w = {h, 2, HEALTH_FAIL};
  ck_assert(th_wait_until(cond_runs, &w, TS(10000)));
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_str_eq(i.output, "authentication failed (WRONGPASS)");
  ck_assert(th_log_contains("redis_check_failed")); /* debug detail was logged */
  assert_no_leak(h, WRONG_PW);
  health_free(h);
}
END_TEST

START_TEST(test_wrong_user) {
  health_t *h = start_one(url("redis://" WRONG_USER ":" WRONG_PW "@127.0.0.1:%u", g_main.plain),
                          NULL, 200, 2000);
  waiter_t w = {h, 2, HEALTH_FAIL};
  ck_assert(th_wait_until(cond_runs, &w, TS(10000)));
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_str_eq(i.output, "authentication failed (WRONGPASS)");
  assert_no_leak(h, WRONG_PW);
  ck_assert_msg(!strstr(i.output, WRONG_USER), "%s", i.output);
  health_free(h);
}
END_TEST

/* ---- misconfiguration and deadlines ---- */

START_TEST(test_tls_to_plaintext_port) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.plain), &ro, 5000, 1000);
  health_check_info_t i = expect_fail_within(h, 1000, "server does not speak TLS");
  ck_assert_ptr_null(strstr(i.output, "may require TLS"));
  health_free(h);
}
END_TEST

START_TEST(test_plaintext_to_tls_port) {
  /* with and without AUTH as the first command */
  health_t *h = start_one(url("redis://:" PW "@127.0.0.1:%u", g_main.tls), NULL, 5000, 1000);
  health_check_info_t i = expect_fail_within(h, 1000, "server may require TLS (use rediss://)");
  ck_assert_ptr_null(strstr(i.output, "does not speak TLS"));
  health_free(h);
  h = start_one(url("redis://127.0.0.1:%u", g_main.tls), NULL, 5000, 1000);
  expect_fail_within(h, 1000, "server may require TLS (use rediss://)");
  health_free(h);
}
END_TEST

START_TEST(test_blackhole_timeout) {
  unsigned port;
  int fd = th_blackhole(&port);
  ck_assert_int_ge(fd, 0);
  health_t *h = start_one(url("redis://:" PW "@127.0.0.1:%u", port), NULL, 5000, 700);
  health_check_info_t i = expect_fail_within(h, 700, "timeout");
  char want[64];
  snprintf(want, sizeof want, "%u ms", TS(700));
  ck_assert_ptr_nonnull(strstr(i.output, want));
  health_free(h);

  health_redis_options_t ro;
  health_redis_options_init(&ro);
  ro.insecure_skip_verify = 1;
  h = start_one(url("rediss://127.0.0.1:%u", port), &ro, 5000, 700);
  snprintf(want, sizeof want, "timeout after %u ms (tls handshake)", TS(700));
  i = expect_fail_within(h, 700, want);
  health_free(h);
  close(fd);
}
END_TEST

START_TEST(test_connect_refused) {
  /* The name lookup below stays on this machine: this test's own
   * /etc/hosts and a resolv.conf naming a loopback port nobody serves. */
  char why[256];
  ck_assert_msg(
      th_mount_file("/etc/hosts", "127.0.0.1 localhost\n", why, sizeof why) == 0 &&
          th_mount_file("/etc/resolv.conf", "nameserver 127.0.0.1\n", why, sizeof why) == 0,
      "cannot set up this test's own /etc files (needs root): %s", why);
  unsigned port;
  int fd = th_blackhole(&port);
  close(fd); /* nothing listens there now */
  health_t *h = start_one(url("redis://127.0.0.1:%u", port), NULL, 5000, 1000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_str_eq(i.output, "connect failed: connection refused");
  health_free(h);
  h = start_one("redis://no-such-host.invalid:6379", NULL, 5000, 1500);
  i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "DNS resolution failed"), "%s", i.output);
  ck_assert_ptr_null(strstr(i.output, "no-such-host"));
  health_free(h);
}
END_TEST

/* Servers that misbehave: one that resets every connection, one that
 * speaks another protocol (HTTP where Redis should be), over plaintext
 * and TLS.  Each fails at once, well before the deadline, saying what
 * happened. */
START_TEST(test_misbehaving_server) {
  static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  static const struct {
    const char *reply;
    int rst;
    const char *scheme, *want;
  } cases[] = {
      /* the reset lands at connect, at the first write or at the read */
      {NULL, 1, "redis", "connection reset"},
      {NULL, 1, "rediss", "connection reset"},
      /* closed unread: a FIN or a reset, and the likely cause */
      {NULL, 0, "redis",
       "connection closed by server, no Redis reply: server may require TLS|"
       "connection reset by server, no Redis reply: server may require TLS"},
      {http, 0, "redis", "protocol error: the server did not answer in RESP"},
      {http, 0, "rediss", "TLS handshake failed: server does not speak TLS"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    unsigned port;
    th_peer_t *peer = th_peer_start(cases[k].reply, cases[k].reply ? strlen(cases[k].reply) : 0,
                                    cases[k].rst, &port);
    ck_assert_ptr_nonnull(peer);
    health_redis_options_t ro;
    health_redis_options_init(&ro);
    ro.insecure_skip_verify = 1;
    uint64_t t0 = th_now_ms();
    health_t *h =
        start_one(url("%s://:" PW "@127.0.0.1:%u", cases[k].scheme, port), &ro, 60000, 3000);
    health_check_info_t i = first_result(h, 6000);
    uint64_t took = th_now_ms() - t0;
    ck_assert_int_eq(i.last_status, HEALTH_FAIL);
    ck_assert_msg(th_has_one_of(i.output, cases[k].want), "case %zu: \"%s\", want \"%s\"", k,
                  i.output, cases[k].want);
    ck_assert_msg(took < TS(1500), "case %zu: failed only after %llu ms", k,
                  (unsigned long long)took);
    ck_assert(!strstr(i.output, PW));
    health_free(h);
    th_peer_stop(peer);
  }
}
END_TEST

/* A resolver that never answers: the run ends at its deadline naming the
 * phase, and the next runs come on time. */
START_TEST(test_dns_deadline) {
  char why[256];
  int dns = th_hang_dns(why, sizeof why);
  ck_assert_msg(dns >= 0, "cannot fake a hung resolver (needs root): %s", why);
  health_t *h = start_one("redis://cache.hung-resolver.test:6379", NULL, 100, 500);
  char want[64];
  snprintf(want, sizeof want, "timeout after %u ms (dns)", TS(500));
  expect_fail_within(h, 500, want);
  waiter_t w = {h, 2, HEALTH_FAIL}; /* ~1.1 s, not the resolver's 30 s */
  ck_assert_msg(th_wait_until(cond_runs, &w, TS(4000)), "runs stuck behind the lookup");
  health_free(h);
  th_dns_unhang(dns, TS(2000));
  close(dns);
}
END_TEST

/* ---- certificate rotation ---- */

static size_t slurp(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot read %s", path);
  size_t n = fread(buf, 1, len - 1, f);
  fclose(f);
  ck_assert_msg(n > 0 && n < len - 1, "%s: empty or too large", path);
  buf[n] = 0;
  return n;
}

/* Replace `path` the way cert-manager does: a new file renamed over it. */
static void put_atomic(const char *path, const char *data, size_t n) {
  char tmp[640];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  ck_assert_msg(f != NULL, "cannot write %s", tmp);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_int_eq(rename(tmp, path), 0);
}

/* Close the checker's connection from the server side. */
static void kill_clients(const server_t *s) {
  char out[256];
  ck_assert_int_eq(srv_cmd(s, "cli", "CLIENT KILL TYPE normal", out, sizeof out), 0);
}

/* A run that started after now passes within `within_ms`. */
static void expect_pass_again(health_t *h, unsigned within_ms, const char *what) {
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  waiter_t w = {h, i.runs + 2, HEALTH_PASS}; /* run runs+1 may be in flight */
  uint64_t t0 = th_now_ms();
  int ok = th_wait_until(cond_runs, &w, TS(within_ms + 3000)) && th_wait_until(cond_last, &w, 1);
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_msg(ok && i.last_status == HEALTH_PASS, "%s: no pass (runs %llu): %s", what,
                (unsigned long long)i.runs, i.output);
  ck_assert_msg(th_now_ms() - t0 <= TS(within_ms), "%s: passed again only after %llu ms", what,
                (unsigned long long)(th_now_ms() - t0));
}

/* The CA file is rewritten with the old and the new CA, the server moves
 * to a certificate from the new CA and drops its clients: the check
 * passes again within three intervals, without a restart.  A CA file
 * caught half-written keeps the context that works, said once. */
START_TEST(test_ca_rotation) {
  enum { INTERVAL = 500 };
  health_redis_options_t ro;
  char ca_a[512], ca_b[512], cafile[600], a[8192], b[8192], both[16384], cmd[1400], out[256];
  srv_file(&g_rot, "ca.crt", ca_a, sizeof ca_a);
  snprintf(cafile, sizeof cafile, "%s/client-ca.pem", g_rot.dir);
  size_t na = slurp(ca_a, a, sizeof a);
  put_atomic(cafile, a, na);
  health_redis_options_init(&ro);
  ro.ca_file = cafile;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_rot.tls), &ro, INTERVAL, 2000);
  expect_pass(h);

  /* CA B, a server certificate from it; the client trusts A and B. */
  ck_assert_int_eq(srv_cmd(&g_rot, "newca", "b", out, sizeof out), 0);
  srv_file(&g_rot, "b.crt", ca_b, sizeof ca_b);
  size_t nb = slurp(ca_b, b, sizeof b);
  memcpy(both, a, na);
  memcpy(both + na, b, nb);
  put_atomic(cafile, both, na + nb);
  snprintf(cmd, sizeof cmd,
           "CONFIG SET tls-cert-file '%s/server-b.crt' tls-key-file '%s/server-b.key'", g_rot.dir,
           g_rot.dir);
  ck_assert_int_eq(srv_cmd(&g_rot, "cli", cmd, out, sizeof out), 0);
  ck_assert_msg(strstr(out, "OK"), "CONFIG SET: %s", out);
  kill_clients(&g_rot);
  expect_pass_again(h, 3 * INTERVAL, "after the rotation");
  ck_assert_int_eq(th_log_count("\"tls_files_reloaded\""), 1);

  /* The server really moved: a check that trusts only A fails. */
  health_redis_options_t only_a;
  health_redis_options_init(&only_a);
  only_a.ca_file = ca_a;
  health_t *h2 = start_one(url("rediss://:" PW "@localhost:%u", g_rot.tls), &only_a, 1000, 2000);
  health_check_info_t i = first_result(h2, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_msg(strstr(i.output, "TLS certificate verify failed"), "%s", i.output);
  health_free(h2);

  /* Half a file: the rebuild fails, reconnects keep A+B, one warning. */
  put_atomic(cafile, both, na + nb / 2);
  for (int k = 0; k < 2; k++) {
    kill_clients(&g_rot);
    expect_pass_again(h, 3 * INTERVAL, "with a half-written CA file");
  }
  ck_assert_int_eq(th_log_count("\"tls_files_reload_failed\""), 1);
  ck_assert(th_log_contains("new connections keep the previous TLS files"));
  health_free(h);
}
END_TEST

/* ---- replica, connection reuse ---- */

START_TEST(test_replica) {
  health_t *h = start_one(url("redis://:" PW "@127.0.0.1:%u", g_replica.plain), NULL, 1000, 2000);
  expect_pass(h);
  health_free(h);

  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_replica, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  ro.require_master = 1;
  h = start_one(url("rediss://:" PW "@localhost:%u", g_replica.tls), &ro, 1000, 2000);
  health_check_info_t i = first_result(h, 5000);
  ck_assert_int_eq(i.last_status, HEALTH_FAIL);
  ck_assert_str_eq(i.output, "not a master (role: slave)");
  health_free(h);

  /* the master passes with require_master */
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 1000, 2000);
  expect_pass(h);
  health_free(h);
}
END_TEST

/* The id of the single connection named libhealth-r, or -1 if there are
 * zero or several. */
static long one_client_id(void) {
  static char out[65536];
  ck_assert_int_eq(srv_cmd(&g_main, "cli", "CLIENT LIST", out, sizeof out), 0);
  long id = -1;
  int n = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, " name=libhealth-r ")) continue;
    n++;
    id = strtol(line + 3, NULL, 10);
  }
  return n == 1 ? id : -1;
}

START_TEST(test_one_connection) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 20, 1000);
  waiter_t w = {h, 5, HEALTH_PASS};
  ck_assert(th_wait_until(cond_runs, &w, TS(10000)));
  long id = one_client_id();
  ck_assert_int_ge(id, 0);
  w.runs = 40;
  ck_assert(th_wait_until(cond_runs, &w, TS(20000)));
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_int_eq(i.consecutive_successes >= 35, 1);
  ck_assert_int_eq(one_client_id(), id); /* the same connection throughout */
  ck_assert_int_eq(th_log_count("\"redis_connected\""), 1);
  health_free(h);
}
END_TEST

/* ---- outage: runs last, restarts the main server ---- */

static void ensure_main(void) {
  char out[64];
  if (srv_cmd(&g_main, "cli", "PING", out, sizeof out) != 0 || !strstr(out, "PONG"))
    srv_cmd(&g_main, "restart", NULL, NULL, 0);
}

START_TEST(test_outage_and_recovery) {
  health_redis_options_t ro;
  char ca[512];
  srv_file(&g_main, "ca.crt", ca, sizeof ca);
  health_redis_options_init(&ro);
  ro.ca_file = ca;
  health_t *h = start_one(url("rediss://:" PW "@localhost:%u", g_main.tls), &ro, 100, 1000);
  waiter_t w = {h, 1, HEALTH_PASS};
  ck_assert(th_wait_until(cond_last, &w, TS(10000)));

  ck_assert_int_eq(srv_cmd(&g_main, "stop", NULL, NULL, 0), 0);
  w.last = HEALTH_FAIL;
  ck_assert(th_wait_until(cond_last, &w, TS(5000)));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  health_check_info_t i;
  ck_assert_int_eq(health_check_find(h, "r", &i, NULL), 0);
  ck_assert_msg(strstr(i.output, "connect failed: connection refused") ||
                    strstr(i.output, "closed") || strstr(i.output, "reset"),
                "%s", i.output);

  char out[64];
  ck_assert_int_eq(srv_cmd(&g_main, "restart", NULL, out, sizeof out), 0);
  w.last = HEALTH_PASS;
  ck_assert(th_wait_until(cond_last, &w, TS(10000)));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_PASS);
  health_free(h);
}
END_TEST

static Suite *redis_suite(int servers) {
  Suite *s = suite_create("redis");
  TCase *tc = tcase_create("url");
  tcase_add_test(tc, test_url_valid);
  tcase_add_test(tc, test_url_malformed);
  suite_add_tcase(s, tc);
  if (!servers) return s;

  tc = tcase_create("tls");
  tcase_set_timeout(tc, 30);
  /* Each test starts with an empty log (matters when CK_FORK=no). */
  tcase_add_checked_fixture(tc, th_log_clear, NULL);
  tcase_add_test(tc, test_register_errors);
  tcase_add_test(tc, test_tls_pass);
  tcase_add_test(tc, test_tls_ip_pass);
  tcase_add_test(tc, test_acl_user_db);
  tcase_add_test(tc, test_plain_pass);
  tcase_add_test(tc, test_mtls_pass);
  tcase_add_test(tc, test_insecure_skip_verify);
  tcase_add_test(tc, test_wrong_ca);
  tcase_add_test(tc, test_host_mismatch);
  tcase_add_test(tc, test_mtls_missing_cert);
  tcase_add_test(tc, test_wrong_password);
  tcase_add_test(tc, test_wrong_user);
  tcase_add_test(tc, test_tls_to_plaintext_port);
  tcase_add_test(tc, test_plaintext_to_tls_port);
  tcase_add_test(tc, test_blackhole_timeout);
  tcase_add_test(tc, test_connect_refused);
  tcase_add_test(tc, test_dns_deadline);
  tcase_add_test(tc, test_misbehaving_server);
  tcase_add_test(tc, test_replica);
  tcase_add_test(tc, test_one_connection);
  suite_add_tcase(s, tc);

  tc = tcase_create("outage");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, NULL, ensure_main);
  tcase_add_checked_fixture(tc, th_log_clear, NULL);
  tcase_add_test(tc, test_outage_and_recovery);
  suite_add_tcase(s, tc);

  tc = tcase_create("rotation");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, th_log_clear, NULL);
  tcase_add_test(tc, test_ca_rotation);
  suite_add_tcase(s, tc);
  return s;
}

/* Stop every server; remove their directories unless a test failed (the
 * logs and certificates help then). */
static void stop_all(int keep) {
  server_t *all[] = {&g_replica, &g_mtls, &g_main, &g_rot};
  for (size_t k = 0; k < 4; k++) {
    if (!all[k]->dir) continue;
    srv_cmd(all[k], "stop", NULL, NULL, 0);
    if (keep) fprintf(stderr, "check_redis: server files kept in %s\n", all[k]->dir);
    else th_remove_dir("check_redis", all[k]->dir);
  }
}

/* 1 if this build has the Redis checker (configure found hiredis + OpenSSL). */
static int have_redis(void) {
  health_t *h = NULL;
  health_options_t o;
  health_options_init(&o);
  o.handle_signals = 0;
  if (health_new(&h, &o, NULL) != 0) return 1; /* let the tests say why */
  int rc = health_redis_add(h, "probe", "redis://localhost", NULL, NULL, NULL);
  health_free(h);
  return rc != HEALTH_ENOTSUP;
}

int main(void) {
  char extra[256], sink[256];
  if (!have_redis()) {
    fprintf(stderr, "check_redis: built without the Redis checker; only the URL tests ran\n");
    return th_run_suite(redis_suite(0), CK_ENV, CK_FORK_GETENV) ? 1 : 77;
  }
  int rc = srv_start(&g_main, "redis", NULL);
  if (rc == 0) rc = srv_start(&g_mtls, "redis-mtls", "--tls-auth-clients yes");
  if (rc == 0) rc = srv_start(&g_replica, "redis-replica", NULL);
  if (rc == 0) rc = srv_start(&g_rot, "redis-rotation", NULL);
  if (rc == 0) {
    snprintf(extra, sizeof extra, "CONFIG SET masterauth '%s'", PW);
    rc = srv_cmd(&g_replica, "cli", extra, sink, sizeof sink);
    snprintf(extra, sizeof extra, "REPLICAOF 127.0.0.1 %u", g_main.plain);
    if (rc == 0) rc = srv_cmd(&g_replica, "cli", extra, sink, sizeof sink);
  }
  if (rc != 0) {
    stop_all(rc != 77);
    if (th_server_skip(rc, "check_redis",
                       "redis-server with TLS is not available; only the URL tests ran"))
      return th_run_suite(redis_suite(0), CK_ENV, CK_FORK_GETENV) ? 1 : 77;
    fprintf(stderr, "check_redis: redis-server.sh start failed (%d)\n", rc);
    return 1;
  }
  int failed = th_run_suite(redis_suite(1), CK_ENV, CK_FORK_GETENV);
  stop_all(failed);
  return failed ? 1 : 0;
}
