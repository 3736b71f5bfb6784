/* health_probe() / health_probe_with(), the library side of health-probe:
 * the URL and status-list parsers against a table, the answer parser fed
 * whole and one byte at a time (1xx, chunked, lengths, close-delimited,
 * malformed), and the whole call against a resolver that never answers
 * (a mount namespace of the test's own, as the checkers' tests) and a
 * server on loopback with headers and accepted status lists. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "probe/probe_int.h"
#include "testhelp.h"

/* ---- URLs ---- */

static const struct {
  const char *url, *target, *authority, *host, *port; /* target NULL: refused, authority = reason */
} urls[] = {
    {"http://127.0.0.1:8081/health", "/health", "127.0.0.1:8081", "127.0.0.1", "8081"},
    {"HTTP://Example.COM/", "/", "Example.COM", "Example.COM", "80"},
    {"http://h:/x", "/x", "h", "h", "80"},
    {"http://h:080/x", "/x", "h", "h", "80"},
    {"http://h:08081", "/", "h:8081", "h", "8081"},
    {"http://h?x=1#f", "/?x=1", "h", "h", "80"},
    {"http://h/a/./b/../c?d/../e#f", "/a/c?d/../e", "h", "h", "80"},
    {"http://h/..", "/", "h", "h", "80"},
    {"http://h/a/b/.", "/a/b/", "h", "h", "80"},
    {"http://[::1]:9/x", "/x", "[::1]:9", "::1", "9"},
    {"http://[::1]/", "/", "[::1]", "::1", "80"},
    {"http://127.1/", "/", "127.0.0.1", "127.0.0.1", "80"},
    {"http://h/\xc3\xa9", "/%C3%A9", "h", "h", "80"},
    {"https://h/", NULL, "https:// is not supported: probe the plain health port (http://)", 0, 0},
    {"HTTPS://h/", NULL, "https:// is not supported: probe the plain health port (http://)", 0, 0},
    {"http://u:pw@h/", NULL,
     "user information (user@host) in the URL is not supported: send "
     "credentials in a header (-H 'Authorization: ...')",
     0, 0},
    {"ftp://h/", NULL, "unsupported scheme 'ftp' (expected http://)", 0, 0},
    {"h:80/x", NULL, "malformed URL (expected http://host[:port][/path])", 0, 0},
    {"http://", NULL, "malformed URL: no host", 0, 0},
    {"http://h:0/", NULL, "port out of range (1-65535)", 0, 0},
    {"http://h:65536/", NULL, "port out of range (1-65535)", 0, 0},
    {"http://h:1x/", NULL, "malformed URL: port '1x' is not a number", 0, 0},
    {"http://h/a b", NULL, "malformed URL: a space at offset 10 (percent-encode it: %20)", 0, 0},
    {"http://h\xc3\xa9/", NULL, "host name must be ASCII (use its punycode form)", 0, 0},
    {"http://[fe80::1%25lo]/", NULL, "IPv6 zone identifiers (%25...) are not supported", 0, 0},
    {"http://[::1/", NULL, "malformed URL: '[' without ']' around the IPv6 address", 0, 0},
    {"http://[::1]x/", NULL, "malformed URL: unexpected 'x' after the host", 0, 0},
};

START_TEST(test_url) {
  health__probe_url_t *u = malloc(sizeof *u);
  char why[256];
  int rc = health__probe_parse_url(urls[_i].url, u, why, sizeof why);
  if (urls[_i].target) {
    ck_assert_msg(rc == 0, "%s: %s", urls[_i].url, why);
    ck_assert_str_eq(u->target, urls[_i].target);
    ck_assert_str_eq(u->authority, urls[_i].authority);
    ck_assert_str_eq(u->host, urls[_i].host);
    ck_assert_str_eq(u->port, urls[_i].port);
  } else {
    ck_assert_msg(rc == -1, "%s accepted", urls[_i].url);
    ck_assert_str_eq(why, urls[_i].authority);
  }
  free(u);
}
END_TEST

START_TEST(test_expect) {
  health__probe_expect_t e;
  char why[256];
  ck_assert_int_eq(health__probe_parse_expect("200-299", &e, why, sizeof why), 0);
  ck_assert(health__probe_expect_has(&e, 200) && health__probe_expect_has(&e, 299));
  ck_assert(!health__probe_expect_has(&e, 300) && !health__probe_expect_has(&e, 199));
  ck_assert_int_eq(health__probe_parse_expect("2xx, 301,418-420", &e, why, sizeof why), 0);
  ck_assert(health__probe_expect_has(&e, 250) && health__probe_expect_has(&e, 301));
  ck_assert(health__probe_expect_has(&e, 419) && !health__probe_expect_has(&e, 302));
  ck_assert_int_eq(health__probe_parse_expect("599", &e, why, sizeof why), 0);
  ck_assert(health__probe_expect_has(&e, 599) && !health__probe_expect_has(&e, 600));
  static const char *bad[] = {"",    "abc", "20",      "2000",     "200-",    "-200",
                              "1xx", "150", "300-200", "200,,204", "200-600", "6xx"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_msg(health__probe_parse_expect(bad[i], &e, why, sizeof why) == -1, "'%s' accepted",
                  bad[i]);
}
END_TEST

START_TEST(test_headers) {
  char why[256];
  ck_assert_int_eq(health__probe_check_header("X-Token: a b", why, sizeof why), 0);
  ck_assert_int_eq(health__probe_check_header("X-Empty;", why, sizeof why), 0);
  ck_assert_int_eq(health__probe_check_header("Accept:", why, sizeof why), 0);
  ck_assert_int_eq(health__probe_check_header("X-A: b\r\nInjected: 1", why, sizeof why), -1);
  ck_assert_int_eq(health__probe_check_header("X-A: b\nc", why, sizeof why), -1);
  ck_assert_int_eq(health__probe_check_header("No colon", why, sizeof why), -1);
  ck_assert_int_eq(health__probe_check_header(": v", why, sizeof why), -1);
  ck_assert_int_eq(health__probe_check_header("Host:  ", why, sizeof why), -1);
  health__probe_url_t *u = malloc(sizeof *u);
  char req[1024];
  ck_assert_int_eq(health__probe_parse_url("http://[::1]:8081/h?q#f", u, why, sizeof why), 0);
  const char *hs[] = {"X-A: 1", "User-Agent: me", "Accept:", NULL};
  ck_assert_int_gt(health__probe_request(u, hs, req, sizeof req), 0);
  ck_assert_str_eq(req, "GET /h?q HTTP/1.1\r\nHost: [::1]:8081\r\nConnection: close\r\n"
                        "X-A: 1\r\nUser-Agent: me\r\n\r\n");
  ck_assert_int_eq(health__probe_request(u, hs, req, 40), -1); /* does not fit */
  free(u);
}
END_TEST

/* ---- answers ---- */

static const struct {
  const char *bytes;
  int status;     /* final status, or -1 for a malformed answer */
  int eof_needed; /* the body ends with the connection */
  const char *error;
} answers[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, 0, NULL},
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, 0, NULL},
    {"HTTP/1.1 103 Early Hints\r\nLink: <x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     200, 0, NULL},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", 200,
     0, NULL},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcdefgh", 200, 1,
     NULL},
    {"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", 200, 0, NULL},
    {"HTTP/1.0 503 Service Unavailable\n\nbody", 503, 1, NULL},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, 0, NULL},
    {"HTTP/1.1 200\r\n\r\n", 200, 1, NULL},
    {"SSH-2.0-OpenSSH_9.2\r\n", -1, 0, "not an HTTP answer"},
    {"HTTP/2 200\r\n\r\n", -1, 0, "not an HTTP/1.x answer"},
    {"HTTP/1.1 20 OK\r\n\r\n", -1, 0, "malformed status line"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", -1, 0,
     "conflicting Content-Length values"},
    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -1, 0, "malformed Content-Length"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", -1, 0,
     "Content-Length too large"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", -1, 0, "malformed chunk size"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", -1, 0,
     "malformed chunked body"},
};

/* Feed `s` in pieces of `step` bytes; returns the final result. */
static int feed(health__probe_answer_t *a, const char *s, size_t len, size_t step, int *head) {
  health__probe_answer_init(a);
  *head = 0;
  for (size_t off = 0; off < len;) {
    size_t n = len - off < step ? len - off : step, used;
    int rc = health__probe_answer_feed(a, s + off, n, &used);
    off += used;
    if (rc == HEALTH__ANS_HEAD) {
      (*head)++;
      continue;
    }
    if (rc != HEALTH__ANS_MORE) return rc;
    ck_assert_uint_eq(used, n); /* MORE takes everything */
  }
  size_t used;
  int rc = health__probe_answer_feed(a, "", 0, &used);
  return rc;
}

START_TEST(test_answer) {
  size_t steps[] = {1, 2, 7, 4096};
  for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
    health__probe_answer_t a;
    int head;
    int rc = feed(&a, answers[_i].bytes, strlen(answers[_i].bytes), steps[k], &head);
    if (answers[_i].status < 0) {
      ck_assert_msg(rc == HEALTH__ANS_ERROR, "#%d step %zu: rc %d", _i, steps[k], rc);
      ck_assert_str_eq(a.error, answers[_i].error);
      continue;
    }
    ck_assert_int_eq(head, 1);
    ck_assert_int_eq(a.status, answers[_i].status);
    if (answers[_i].eof_needed) {
      ck_assert_int_eq(rc, HEALTH__ANS_MORE);
      ck_assert_int_eq(health__probe_answer_eof(&a), HEALTH__ANS_DONE);
    } else {
      ck_assert_msg(rc == HEALTH__ANS_DONE, "#%d step %zu: rc %d", _i, steps[k], rc);
    }
  }
}
END_TEST

START_TEST(test_answer_limits) {
  health__probe_answer_t a;
  int head;
  /* truncated bodies are errors at the end of the connection */
  const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  ck_assert_int_eq(feed(&a, t, strlen(t), 1, &head), HEALTH__ANS_MORE);
  ck_assert_int_eq(health__probe_answer_eof(&a), HEALTH__ANS_ERROR);
  ck_assert_ptr_nonnull(strstr(a.error, "truncated"));
  health__probe_answer_init(&a);
  ck_assert_int_eq(health__probe_answer_eof(&a), HEALTH__ANS_ERROR);
  ck_assert_str_eq(a.error, "connection closed without an answer");
  /* headers beyond 64 KiB */
  char *big = malloc(HEALTH__PROBE_HEAD_MAX + 100);
  strcpy(big, "HTTP/1.1 200 OK\r\n");
  for (size_t n = strlen(big); n < HEALTH__PROBE_HEAD_MAX + 50; n += 10)
    strcat(big + n, "X-a: 1234\n");
  ck_assert_int_eq(feed(&a, big, strlen(big), 4096, &head), HEALTH__ANS_ERROR);
  ck_assert_str_eq(a.error, "answer headers larger than 64 KiB");
  /* a body beyond the cap ends the reading, not the verdict */
  health__probe_answer_init(&a);
  size_t used;
  const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
  ck_assert_int_eq(health__probe_answer_feed(&a, h, strlen(h), &used), HEALTH__ANS_HEAD);
  memset(big, 'x', 65536);
  int rc = HEALTH__ANS_MORE;
  for (int i = 0; i < 100 && rc == HEALTH__ANS_MORE; i++)
    rc = health__probe_answer_feed(&a, big, 65536, &used);
  ck_assert_int_eq(rc, HEALTH__ANS_DONE);
  ck_assert(a.capped && a.status == 200);
  free(big);
}
END_TEST

/* ---- the whole call ---- */

START_TEST(test_bad_input) {
  char reason[256];
  health_probe_options_t o;
  health_probe_options_init(&o);
  ck_assert_uint_eq(o.timeout_ms, 2000);
  ck_assert_ptr_null(o.expect);
  ck_assert_ptr_null(o.reserved[0]);
  ck_assert_int_eq(health_probe(NULL, 100, reason, sizeof reason), 1);
  ck_assert_str_eq(reason, "no URL");
  ck_assert_int_eq(health_probe("https://127.0.0.1:1/", 100, reason, sizeof reason), 1);
  ck_assert_ptr_nonnull(strstr(reason, "not supported: probe the plain health port"));
  o.expect = "2xx,abc";
  ck_assert_int_eq(health_probe_with("http://127.0.0.1:1/", &o, reason, sizeof reason), 1);
  ck_assert_ptr_nonnull(strstr(reason, "bad status code list"));
  o.expect = NULL;
  const char *hs[] = {"X: a\r\nY: b", NULL};
  o.headers = hs;
  ck_assert_int_eq(health_probe_with("http://127.0.0.1:1/", &o, reason, sizeof reason), 1);
  ck_assert_ptr_nonnull(strstr(reason, "control character"));
  ck_assert_int_eq(health_probe_with("http://127.0.0.1:1/", NULL, NULL, 0), 1);
}
END_TEST

/* A loopback server answering 503: the reason says what was expected, and
 * an accepted-status list changes the verdict. */
START_TEST(test_expect_live) {
  static const char reply[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  unsigned port;
  th_peer_t *p = th_peer_start(reply, sizeof reply - 1, 0, &port);
  ck_assert_ptr_nonnull(p);
  char url[64], reason[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/ready", port);
  ck_assert_int_eq(health_probe(url, TS(2000), reason, sizeof reason), 1);
  ck_assert_str_eq(reason, "HTTP 503 Service Unavailable (expected 200-299)");
  health_probe_options_t o;
  health_probe_options_init(&o);
  o.timeout_ms = TS(2000);
  o.expect = "200-399,503";
  ck_assert_int_eq(health_probe_with(url, &o, reason, sizeof reason), 0);
  ck_assert_str_eq(reason, "HTTP 503 Service Unavailable");
  th_peer_stop(p);
}
END_TEST

/* A resolver that never answers: the call returns at its timeout (+50 ms),
 * naming the phase, and the lookup thread it leaves is let go at the end. */
START_TEST(test_dns_deadline) {
  char why[256];
  int dns = th_hang_dns(why, sizeof why);
  if (dns < 0) ck_abort_msg("cannot set up this test's own resolver (needs root): %s", why);
  char reason[256], want[64];
  uint64_t t0 = th_now_ms();
  int rc =
      health_probe("http://svc.hung-resolver.test:8081/health", TS(300), reason, sizeof reason);
  uint64_t took = th_now_ms() - t0;
  ck_assert_int_eq(rc, 1);
  snprintf(want, sizeof want, "timeout after %u ms (dns)", TS(300));
  ck_assert_str_eq(reason, want);
  ck_assert_msg(took >= TS(300) && took <= TS(300) + TS(50), "returned after %llu ms",
                (unsigned long long)took);
  th_dns_unhang(dns, TS(2000));
  close(dns);
}
END_TEST

static Suite *probe_suite(void) {
  Suite *s = suite_create("probe");
  TCase *tc = tcase_create("parse");
  tcase_add_loop_test(tc, test_url, 0, (int)(sizeof urls / sizeof *urls));
  tcase_add_test(tc, test_expect);
  tcase_add_test(tc, test_headers);
  tcase_add_loop_test(tc, test_answer, 0, (int)(sizeof answers / sizeof *answers));
  tcase_add_test(tc, test_answer_limits);
  suite_add_tcase(s, tc);
  tc = tcase_create("call");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_expect_live);
  tcase_add_test(tc, test_dns_deadline);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(probe_suite(), CK_ENV, CK_FORK_GETENV) ? 1 : 0; }
