/* Hostile HTTP: what a scanner, a broken proxy or an attacker may send to
 * the health port, byte for byte over raw sockets.  Every case is bounded
 * (the server answers or closes within a deadline) and after every case the
 * server still answers a normal readiness probe within 1 s.
 *
 * Decisions this suite pins down:
 *  - Only an exact origin-form target names an endpoint.  "/HEALTH",
 *    "//health", "/health/", "/health/.", "/ready;x", "/%2e%2e/health",
 *    "/ready%2F", an encoded "?" and an absolute URI ("GET http://x/health",
 *    a proxy request) are 404 or another 4xx, never 200.
 *  - A query string is ignored: "/health?x=1" is /health.
 *  - A percent-encoded unreserved character is that character (RFC 3986
 *    6.2.2.2): "/%68ealth" is /health.  "%00" never is: "/health%00" is not
 *    the endpoint.
 *  - A raw NUL inside the target: libmicrohttpd 0.9.75 cuts the target at
 *    the NUL before the application sees it.  A NUL that changes the path
 *    is 404; a NUL after a complete endpoint path may get that endpoint's
 *    own answer (nothing else is revealed), or a 4xx.
 *  - Methods are case-sensitive: "get" is an unknown method.  Unknown
 *    methods get 405 (with Allow) or another 4xx/5xx.
 *  - A request with a body (Content-Length other than 0, any
 *    Transfer-Encoding, conflicting Content-Length headers) is refused and
 *    the connection closed at once, without waiting for the body.
 *  - A request head must arrive within connection_timeout_s: a client that
 *    dribbles its headers is cut, so slow clients cannot hold the
 *    connection table (slowloris).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health_int.h" /* h->http.daemon: the connection count */
#include "testhelp.h"

#define TOKEN "hostile-T0ken-9f2c"

/* ------------------------------------------------------------------ */
/* Raw sockets: exact bytes in, everything out, always bounded          */
/* ------------------------------------------------------------------ */

/* Connecting and sending: th_connect_from() and th_send_all() (testhelp.h). */

/* 1 once the peer has closed (EOF or reset); never blocks. */
static int peer_closed(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

typedef struct raw_result {
  char *data; /* everything received, NUL-terminated */
  size_t len;
  int closed;  /* the peer closed or reset within the time */
  uint64_t ms; /* from connect to close, enough answers, or timeout */
} raw_result_t;

static void raw_result_free(raw_result_t *r) {
  free(r->data);
  memset(r, 0, sizeof *r);
}

#define MAX_ANSWERS 8

typedef struct answer {
  int status;
  const char *head; /* into raw_result_t.data */
  size_t head_len;
  const char *body;
  size_t body_len;
} answer_t;

/* Split what came back into complete HTTP/1.x answers (none of our
 * requests is HEAD, so each carries its Content-Length of body, or is a
 * 204 without one).
 * Returns how many complete answers were found. */
static int parse_answers(const raw_result_t *r, answer_t *a, int max) {
  const char *p = r->data, *end = r->data + r->len;
  int n = 0;
  while (n < max && (size_t)(end - p) >= 12 && strncmp(p, "HTTP/1.", 7) == 0) {
    const char *he = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!he) break;
    long cl = -1;
    for (const char *l = memchr(p, '\n', (size_t)(he - p)); l && l < he;
         l = memchr(l, '\n', (size_t)(he - l))) {
      l++;
      if (strncasecmp(l, "Content-Length:", 15) == 0) cl = strtol(l + 15, NULL, 10);
    }
    he += 4;
    if (cl < 0 && strncmp(p + 9, "204", 3) == 0) cl = 0; /* no body by definition */
    if (cl < 0 || (size_t)(end - he) < (size_t)cl) break;
    a[n].status = atoi(p + 9);
    a[n].head = p;
    a[n].head_len = (size_t)(he - p);
    a[n].body = he;
    a[n].body_len = (size_t)cl;
    n++;
    p = he + cl;
  }
  return n;
}

/* Status of the first complete answer, or -1. */
static int first_status(const raw_result_t *r) {
  answer_t a[1];
  return parse_answers(r, a, 1) == 1 ? a[0].status : -1;
}

static int enough_answers(const raw_result_t *r, int want) {
  answer_t a[MAX_ANSWERS];
  return want > 0 && parse_answers(r, a, MAX_ANSWERS) >= want;
}

/* Read until the peer closes, `want` complete answers arrived (0: wait for
 * the close), 1 MiB came, or timeout_ms passed. */
static void raw_read(int fd, raw_result_t *r, int want, unsigned timeout_ms) {
  const size_t cap = 1u << 20;
  uint64_t deadline = th_now_ms() + timeout_ms;
  if (!r->data) {
    r->data = calloc(1, cap + 1);
    ck_assert_ptr_nonnull(r->data);
  }
  while (r->len < cap && !enough_answers(r, want)) {
    uint64_t now = th_now_ms();
    if (now >= deadline) return;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    ssize_t got = recv(fd, r->data + r->len, cap - r->len, 0);
    if (got > 0) {
      r->len += (size_t)got;
      r->data[r->len] = 0;
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      r->closed = 1;
      return;
    }
  }
}

/* One exchange from `src`: send `req` (len bytes) and read as raw_read()
 * does.  Fails the test if it cannot even connect. */
static void raw_exchange(const char *src, unsigned port, const void *req, size_t len, int want,
                         unsigned timeout_ms, raw_result_t *r) {
  memset(r, 0, sizeof *r);
  uint64_t t0 = th_now_ms();
  int fd = th_connect_from(src, port, timeout_ms);
  ck_assert_msg(fd >= 0, "cannot connect from %s to port %u: %s", src ? src : "any", port,
                strerror(errno));
  th_send_all(fd, req, len, timeout_ms);
  uint64_t spent = th_now_ms() - t0;
  raw_read(fd, r, want, spent < timeout_ms ? timeout_ms - (unsigned)spent : 0);
  r->ms = th_now_ms() - t0;
  close(fd);
}

/* Printable rendering of a request for failure messages. */
static const char *show(const char *s, size_t n) {
  static char out[200];
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < sizeof out; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') o += (size_t)snprintf(out + o, sizeof out - o, "\\r");
    else if (c == '\n') o += (size_t)snprintf(out + o, sizeof out - o, "\\n");
    else if (c < 0x20 || c >= 0x7f) o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    else out[o++] = (char)c;
  }
  if (o + 5 >= sizeof out) snprintf(out + o, sizeof out - o, "...");
  else out[o] = 0;
  return out;
}

/* ------------------------------------------------------------------ */
/* The server under attack                                             */
/* ------------------------------------------------------------------ */

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, "fine");
}

static void quiet_log(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)arg;
  if (getenv("HEALTH_TEST_LOG")) fprintf(stderr, "%s\n", line);
}

static health_t *g_h;
static unsigned g_port;

static void base_options(health_options_t *o) {
  health_options_init(o);
  o->address = "127.0.0.1";
  o->port = 0;
  o->handle_signals = 0;
  o->exit_on_shutdown = 0;
  o->log_fn = quiet_log;
  o->max_connections = 128;
  o->max_connections_per_ip = 32;
  o->connection_timeout_s = 1;
}

static int ready_passes(void *arg) { return health_status(arg, HEALTH_READINESS) == HEALTH_PASS; }

/* Start a handle with one passing readiness check ("ok") and wait until
 * it is ready. */
static void start_with(health_options_t *o) {
  health_error_t err;
  ck_assert_int_eq(health_new(&g_h, o, &err), 0);
  ck_assert_int_eq(health_check_add(g_h, "ok", pass_check, NULL, NULL, NULL, &err), 0);
  int rc = health_start(g_h, &err);
  ck_assert_msg(rc == 0, "health_start: %s", err.text);
  g_port = health_port(g_h);
  ck_assert_uint_ne(g_port, 0);
  ck_assert_msg(th_wait_until(ready_passes, g_h, TS(3000)), "never became ready");
}

static void setup(void) {
  health_options_t o;
  base_options(&o);
  start_with(&o);
}

static void teardown(void) {
  if (g_h) health_free(g_h);
  g_h = NULL;
  g_port = 0;
}

static const char PROBE[] = "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/* A normal probe from `src`: the status within timeout_ms, or -1. */
static int probe_from(const char *src, unsigned timeout_ms) {
  int fd = th_connect_from(src, g_port, timeout_ms);
  if (fd < 0) return -1;
  uint64_t t0 = th_now_ms();
  raw_result_t r = {0};
  th_send_all(fd, PROBE, sizeof PROBE - 1, timeout_ms);
  uint64_t spent = th_now_ms() - t0;
  raw_read(fd, &r, 1, spent < timeout_ms ? timeout_ms - (unsigned)spent : 0);
  close(fd);
  int status = first_status(&r);
  raw_result_free(&r);
  return status;
}

/* After every case: the server is alive and answers a normal probe. */
static void assert_alive(const char *after) {
  uint64_t t0 = th_now_ms();
  int s = probe_from("127.0.0.1", TS(1000));
  ck_assert_msg(s == 200, "after %s: GET /ready gave %d (want 200 within %u ms, took %llu ms)",
                after, s, TS(1000), (unsigned long long)(th_now_ms() - t0));
}

static unsigned current_connections(void) {
  const union MHD_DaemonInfo *i =
      MHD_get_daemon_info(g_h->http.daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  ck_assert_ptr_nonnull(i);
  return i->num_connections;
}

/* ------------------------------------------------------------------ */
/* Table-driven cases: one request, one expectation                    */
/* ------------------------------------------------------------------ */

enum {
  REJECT = -1,   /* no 2xx/3xx: a 4xx/5xx answer, or a close without one */
  NUL_TAIL = -2, /* REJECT, or exactly the endpoint's own 200 answer */
};

typedef struct hcase {
  const char *name;
  const char *req;
  size_t len;
  int want;    /* an exact status, REJECT or NUL_TAIL */
  int answers; /* complete answers to wait for (0: wait for the close) */
} hcase_t;

#define C(name, lit, want) \
  { name, lit, sizeof lit - 1, want, 0 }
#define H "Host: x\r\n"
#define CLOSE "Connection: close\r\n"

static const hcase_t cases[] = {
    /* baseline */
    C("normal", "GET /ready HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("normal health", "GET /health HTTP/1.1\r\n" H CLOSE "\r\n", 200),

    /* malformed request lines */
    C("garbage", "\x01\x02garbage\xff\xfe\r\n\r\n", REJECT),
    C("binary", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", REJECT),
    C("missing version", "GET /health\r\n" H "\r\n", REJECT),
    C("method only", "GET\r\n\r\n", REJECT),
    C("empty line only", "\r\n\r\n", REJECT),
    C("lowercase method", "get /health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("mixed-case method", "Get /ready HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("double spaces", "GET  /health  HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("leading space", " GET /health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("tabs", "GET\t/health\tHTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("space in path", "GET /hea lth HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("version HTTP/2.0", "GET /health HTTP/2.0\r\n" H CLOSE "\r\n", REJECT),
    C("version HTTP/9.9", "GET /health HTTP/9.9\r\n" H CLOSE "\r\n", REJECT),
    C("version garbage", "GET /health HTTQ/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", REJECT),
    C("header without colon", "GET /health HTTP/1.1\r\n" H "NoColonHere\r\n" CLOSE "\r\n", REJECT),

    /* unknown and unwanted methods */
    C("BREW", "BREW /health HTTP/1.1\r\n" H CLOSE "\r\n", 501),
    C("PROPFIND", "PROPFIND /ready HTTP/1.1\r\n" H "Depth: 1\r\n" CLOSE "\r\n", 501),
    C("CONNECT authority", "CONNECT 127.0.0.1:22 HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("CONNECT path", "CONNECT /health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("TRACE", "TRACE /health HTTP/1.1\r\n" H CLOSE "\r\n", 405),
    C("OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H CLOSE "\r\n", 204),
    C("OPTIONS path", "OPTIONS /health HTTP/1.1\r\n" H CLOSE "\r\n", 204),
    C("OPTIONS elsewhere", "OPTIONS /admin HTTP/1.1\r\n" H CLOSE "\r\n", 404),
    C("DELETE", "DELETE /ready HTTP/1.1\r\n" H CLOSE "\r\n", 405),
    C("PUT empty", "PUT /ready HTTP/1.1\r\n" H "Content-Length: 0\r\n" CLOSE "\r\n", REJECT),
    C("POST body", "POST /health HTTP/1.1\r\n" H "Content-Length: 10000000\r\n\r\n", REJECT),

    /* absolute-form targets (RFC 9112 3.2.2): routed by their path */
    C("absolute URI", "GET http://x/health HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("absolute URI ready", "GET http://127.0.0.1:8081/ready HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("absolute https", "GET https://127.0.0.1:443/health HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("absolute HTTP upper case", "GET HTTP://x/livez?a=1 HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("absolute, no path", "GET http://x HTTP/1.1\r\n" H CLOSE "\r\n", 404),
    C("absolute, other path", "GET http://x/admin HTTP/1.1\r\n" H CLOSE "\r\n", 404),
    C("absolute, path in userinfo", "GET http://x/ready@y/ HTTP/1.1\r\n" H CLOSE "\r\n", 404),

    /* Host (RFC 9112 3.2): exactly one in HTTP/1.1 */
    C("no Host", "GET /ready HTTP/1.1\r\n" CLOSE "\r\n", 400),
    C("two Hosts", "GET /ready HTTP/1.1\r\n" H H CLOSE "\r\n", 400),
    C("two different Hosts", "GET /ready HTTP/1.1\r\nHost: a\r\nhost: b\r\n" CLOSE "\r\n", 400),
    C("space before colon", "GET /ready HTTP/1.1\r\nHost : x\r\n" CLOSE "\r\n", 400),
    C("tab before colon", "GET /ready HTTP/1.1\r\n" H "X-A\t: b\r\n" CLOSE "\r\n", 400),
    C("HTTP/1.0 without Host", "GET /ready HTTP/1.0\r\n\r\n", 200),
    C("HTTP/1.0 two Hosts", "GET /ready HTTP/1.0\r\n" H H "\r\n", 400),

    /* path tricks: never 200 unless it is exactly the endpoint */
    C("dot-dot encoded", "GET /%2e%2e/health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("dot-dot", "GET /../health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("dot-dot inside", "GET /x/../health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded NUL", "GET /health%00 HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded NUL then text", "GET /health%00.json HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded NUL ready", "GET /ready%00x HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("upper case", "GET /HEALTH HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("double slash", "GET //health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("trailing dot", "GET /health/. HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("trailing slash", "GET /health/ HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("matrix param", "GET /ready;x HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded slash", "GET /ready%2F HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded slash first", "GET %2Fready HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded question mark", "GET /health%3Fx=1 HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded space", "GET /ready%20 HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("fragment", "GET /ready#x HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("backslash", "GET /\\health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("no leading slash", "GET health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("bad escape", "GET /health%zz HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("truncated escape", "GET /health% HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("overlong UTF-8 slash", "GET /%c0%afhealth HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("encoded letter", "GET /%68ealth HTTP/1.1\r\n" H CLOSE "\r\n", 200),

    /* query strings are ignored */
    C("query", "GET /health?x=1 HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("empty query", "GET /ready? HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("query with NUL escape", "GET /ready?a=%00&b HTTP/1.1\r\n" H CLOSE "\r\n", 200),
    C("query with junk", "GET /livez?%zz=%&&&==?? HTTP/1.1\r\n" H CLOSE "\r\n", 200),

    /* raw NUL bytes */
    C("NUL inside path", "GET /hea\0lth HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("NUL after path", "GET /health\0 HTTP/1.1\r\n" H CLOSE "\r\n", NUL_TAIL),
    C("NUL after path then text", "GET /ready\0/admin HTTP/1.1\r\n" H CLOSE "\r\n", NUL_TAIL),
    C("NUL in method", "G\0ET /health HTTP/1.1\r\n" H CLOSE "\r\n", REJECT),
    C("NUL in version", "GET /health HTTP/1\0.1\r\n" H CLOSE "\r\n", REJECT),
    C("NUL in header name", "GET /health HTTP/1.1\r\n" H "X-\0A: b\r\n" CLOSE "\r\n", REJECT),
    C("only NULs", "\0\0\0\0\0\0\0\0\r\n\r\n", REJECT),

    /* bodies: refused at once, never waited for */
    C("huge Content-Length, no body",
      "GET /health HTTP/1.1\r\n" H "Content-Length: 10000000\r\n\r\n", REJECT),
    C("chunked body",
      "GET /health HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n" CLOSE
      "\r\n5\r\nhello\r\n0\r\n\r\n",
      413),
    C("chunked, empty body",
      "GET /health HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n" CLOSE "\r\n0\r\n\r\n", 200),
    C("chunked, Chunked",
      "GET /ready HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n" CLOSE "\r\n0\r\n\r\n", 200),
    C("gzip, chunked",
      "GET /ready HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", REJECT),
    C("two TE",
      "GET /ready HTTP/1.1\r\n" H
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      REJECT),
    C("negative Content-Length", "GET /health HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", REJECT),
    C("overflowing Content-Length",
      "GET /health HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", REJECT),
    C("conflicting Content-Length",
      "GET /health HTTP/1.1\r\n" H "Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello", REJECT),
    C("CL and TE",
      "GET /health HTTP/1.1\r\n" H
      "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      REJECT),

    /* HTTP versions */
    C("HTTP/1.0 closes", "GET /health HTTP/1.0\r\n\r\n", 200),
    C("HTTP/0.9 style", "GET /health\r\n", REJECT),
    C("HTTP/0.9 bare LF", "GET /health\n\n", REJECT),
};

#undef C

#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* The endpoint's own answer: 200, health+json, no-store. */
static void assert_endpoint_answer(const hcase_t *c, const answer_t *a) {
  ck_assert_msg(memmem(a->head, a->head_len, "application/health+json", 23) != NULL,
                "%s: 200 without the health+json content type", c->name);
  ck_assert_msg(memmem(a->head, a->head_len, "no-store", 8) != NULL,
                "%s: 200 without Cache-Control: no-store", c->name);
  ck_assert_msg(a->body_len > 10 && memcmp(a->body, "{\"status\":\"pass\"", 16) == 0,
                "%s: unexpected body %.*s", c->name, (int)a->body_len, a->body);
}

/* Our other answers: no-store; a body in the endpoints' format, declared
 * as such (none for 204); the allowed methods with 405 and 204. */
static void assert_own_answer(const hcase_t *c, const answer_t *a) {
  ck_assert_msg(memmem(a->head, a->head_len, "\r\nCache-Control: no-store\r\n", 27) != NULL,
                "%s: %d without Cache-Control: no-store", c->name, a->status);
  if (a->status == 405 || a->status == 204)
    ck_assert_msg(memmem(a->head, a->head_len, "\r\nAllow: GET, HEAD, OPTIONS\r\n", 29) != NULL,
                  "%s: %d without Allow: GET, HEAD, OPTIONS", c->name, a->status);
  if (a->status == 204) {
    ck_assert_msg(a->body_len == 0 && !memmem(a->head, a->head_len, "Content-Type", 12),
                  "%s: 204 with a body or a type", c->name);
    return;
  }
  ck_assert_msg(memmem(a->head, a->head_len, "\r\nContent-Type: application/health+json\r\n", 41),
                "%s: %d not declared as health+json", c->name, a->status);
  ck_assert_msg(a->body_len > 30 &&
                    memcmp(a->body, "{\"status\":\"fail\",\"output\":\"", 27) == 0 &&
                    a->body[a->body_len - 2] == '}',
                "%s: %d body %.*s", c->name, a->status, (int)a->body_len, a->body);
}

START_TEST(test_case) {
  const hcase_t *c = &cases[_i];
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, c->req, c->len, c->answers, TS(3000), &r);
  answer_t a[MAX_ANSWERS];
  int n = parse_answers(&r, a, MAX_ANSWERS);
  const char *what = show(c->req, c->len);

  /* Bounded: the server answered (and, unless we waited for answers
   * only, closed) well before our 3 s read timeout. */
  ck_assert_msg(r.closed || (c->answers && n >= c->answers),
                "%s: [%s] neither answered nor closed within %llu ms (got %zu bytes)", c->name,
                what, (unsigned long long)r.ms, r.len);
  ck_assert_msg(r.ms < TS(2500), "%s: [%s] took %llu ms", c->name, what, (unsigned long long)r.ms);
  ck_assert_msg(n <= 1, "%s: [%s] %d answers to one request", c->name, what, n);

  if (c->want == REJECT || (c->want == NUL_TAIL && (n == 0 || a[0].status != 200))) {
    if (n == 1) {
      ck_assert_msg(a[0].status >= 400 && a[0].status <= 599,
                    "%s: [%s] answered %d, want a 4xx/5xx or a close", c->name, what, a[0].status);
      if (a[0].status == 405)
        ck_assert_msg(memmem(a[0].head, a[0].head_len, "\r\nAllow:", 8) != NULL,
                      "%s: 405 without Allow", c->name);
    } else {
      /* No answer at all: only acceptable as a close, and nothing that
       * looks like a 2xx may have arrived. */
      ck_assert_msg(r.closed, "%s: [%s] no answer and no close", c->name, what);
      ck_assert_msg(strstr(r.data, " 200 ") == NULL, "%s: partial 200", c->name);
    }
    /* Refusing is done at once: MHD closes instead of reading a body
     * or waiting for more of a broken request. */
    ck_assert_msg(r.ms < TS(1500), "%s: [%s] refusal took %llu ms", c->name, what,
                  (unsigned long long)r.ms);
  } else {
    int want = c->want == NUL_TAIL ? 200 : c->want;
    ck_assert_msg(n == 1, "%s: [%s] no complete answer (got %zu bytes: %.80s)", c->name, what,
                  r.len, r.data);
    ck_assert_msg(a[0].status == want, "%s: [%s] answered %d, want %d", c->name, what, a[0].status,
                  want);
    if (want == 200) assert_endpoint_answer(c, &a[0]);
    else assert_own_answer(c, &a[0]);
  }
  raw_result_free(&r);
  assert_alive(c->name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Cases with more than one request or connection                       */
/* ------------------------------------------------------------------ */

/* Three requests in one write: three answers, in order. */
START_TEST(test_pipelined) {
  static const char req[] = "GET /ready HTTP/1.1\r\n" H "\r\n"
                            "GET /health HTTP/1.1\r\n" H "\r\n"
                            "GET /ready?n=3 HTTP/1.1\r\n" H CLOSE "\r\n";
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, sizeof req - 1, 3, TS(3000), &r);
  answer_t a[MAX_ANSWERS];
  int n = parse_answers(&r, a, MAX_ANSWERS);
  ck_assert_int_eq(n, 3);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(a[i].status, 200);
  /* The check is readiness-only: /ready lists it, /health does not. */
  ck_assert_ptr_nonnull(memmem(a[0].body, a[0].body_len, "\"ok:responseTime\"", 17));
  ck_assert_ptr_null(memmem(a[1].body, a[1].body_len, "\"ok:responseTime\"", 17));
  ck_assert_ptr_nonnull(memmem(a[2].body, a[2].body_len, "\"ok:responseTime\"", 17));
  raw_result_free(&r);
  assert_alive("pipelined requests");
}
END_TEST

/* A pipeline that ends in an error: the good answers first, in order, then
 * the error, then the close. */
START_TEST(test_pipelined_error) {
  static const char req[] = "GET /health HTTP/1.1\r\n" H "\r\n"
                            "GET /ready HTTP/1.1\r\n" H "\r\n"
                            "GET /nope HTTP/1.1\r\n" H "\r\n"
                            "GET /health HTTP/1.1\r\n" H "\r\n";
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, sizeof req - 1, 0, TS(3000), &r);
  answer_t a[MAX_ANSWERS];
  int n = parse_answers(&r, a, MAX_ANSWERS);
  ck_assert_int_ge(n, 3);
  ck_assert_int_eq(a[0].status, 200);
  ck_assert_int_eq(a[1].status, 200);
  ck_assert_int_eq(a[2].status, 404);
  ck_assert_msg(r.closed && r.ms < TS(1500), "connection not closed after the 404 (%llu ms)",
                (unsigned long long)r.ms);
  raw_result_free(&r);
  assert_alive("pipelined error");
}
END_TEST

/* Many pipelined requests in one write: all answered, none lost. */
START_TEST(test_pipelined_many) {
  char req[8192];
  size_t o = 0;
  for (int i = 0; i < 50; i++)
    o += (size_t)snprintf(req + o, sizeof req - o, "GET /ready?i=%d HTTP/1.1\r\nHost: x\r\n%s\r\n",
                          i, i == 49 ? CLOSE : "");
  raw_result_t r;
  memset(&r, 0, sizeof r);
  int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  th_send_all(fd, req, o, TS(2000));
  raw_read(fd, &r, 0, TS(5000));
  close(fd);
  ck_assert_msg(r.closed, "no close after 50 pipelined requests");
  answer_t a[MAX_ANSWERS];
  /* Count every answer, MAX_ANSWERS at a time. */
  int total = 0;
  raw_result_t view = r;
  for (;;) {
    int n = parse_answers(&view, a, MAX_ANSWERS);
    for (int i = 0; i < n; i++) ck_assert_int_eq(a[i].status, 200);
    total += n;
    if (n < MAX_ANSWERS) break;
    const char *next = a[n - 1].body + a[n - 1].body_len;
    view.len -= (size_t)(next - view.data);
    view.data = (char *)next;
  }
  ck_assert_int_eq(total, 50);
  raw_result_free(&r);
  assert_alive("50 pipelined requests");
}
END_TEST

/* HTTP/1.0 without keep-alive: answered, then closed at once. */
START_TEST(test_http10_closes) {
  static const char req[] = "GET /ready HTTP/1.0\r\n\r\n";
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, sizeof req - 1, 0, TS(3000), &r);
  ck_assert_int_eq(first_status(&r), 200);
  ck_assert_msg(r.closed && r.ms < TS(500), "HTTP/1.0 connection still open after %llu ms",
                (unsigned long long)r.ms);
  raw_result_free(&r);
  assert_alive("HTTP/1.0");
}
END_TEST

/* "GET /health" and nothing else, connection left open: rejected or closed
 * within the connection timeout, never a hang. */
START_TEST(test_http09_open) {
  static const char req[] = "GET /health\r\n";
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, sizeof req - 1, 0, TS(4000), &r);
  ck_assert_msg(r.closed && r.ms < TS(2500), "HTTP/0.9-style request hung for %llu ms",
                (unsigned long long)r.ms);
  int s = first_status(&r);
  ck_assert_msg(s == -1 || s >= 400, "HTTP/0.9-style request answered %d", s);
  raw_result_free(&r);
  assert_alive("HTTP/0.9");
}
END_TEST

/* A NUL inside an unrelated header value: the exact endpoint may still be
 * served (libmicrohttpd ends the value at the NUL) or refused, and the
 * server must survive either way. */
START_TEST(test_nul_in_header_value) {
  static const char req[] =
      "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nUser-Agent: \0\0\0\r\n" CLOSE "\r\n";
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, sizeof req - 1, 0, TS(3000), &r);
  ck_assert_msg(r.closed && r.ms < TS(1500), "took %llu ms", (unsigned long long)r.ms);
  int s = first_status(&r);
  ck_assert_msg(s == 200 || s == 400, "NUL in a header value answered %d", s);
  raw_result_free(&r);
  assert_alive("NUL in a header value");
}
END_TEST

/* With HEALTH_DETAIL_TOKEN, NUL tricks in Authorization never unlock the
 * full body without the exact token. */
START_TEST(test_token_nul_tricks) {
  teardown();
  health_options_t o;
  base_options(&o);
  o.detail = HEALTH_DETAIL_TOKEN;
  o.detail_token = TOKEN;
  start_with(&o);
  const size_t tl = strlen(TOKEN);
  char req[512];
  /* The token with its fifth character replaced by a NUL. */
  char holed[64];
  memcpy(holed, TOKEN, tl);
  holed[4] = 0;
  struct {
    const char *name;
    const char *pre;
    size_t prelen;
    const char *post;
    size_t postlen;
  } t[] = {
      {"prefix, NUL, last character", TOKEN, tl - 1,
       "\0"
       "c",
       2},
      {"NUL then token", "\0", 1, TOKEN, tl},
      {"empty", "", 0, "", 0},
      {"prefix only", TOKEN, tl - 1, "", 0},
      {"token with a NUL inside", holed, tl, "", 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    size_t n = (size_t)snprintf(req, sizeof req,
                                "GET /ready HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ");
    memcpy(req + n, t[i].pre, t[i].prelen);
    n += t[i].prelen;
    memcpy(req + n, t[i].post, t[i].postlen);
    n += t[i].postlen;
    n += (size_t)snprintf(req + n, sizeof req - n, "\r\n" CLOSE "\r\n");
    raw_result_t r;
    raw_exchange("127.0.0.1", g_port, req, n, 0, TS(3000), &r);
    answer_t a[1];
    if (parse_answers(&r, a, 1) == 1 && a[0].status == 200)
      ck_assert_msg(memmem(a[0].body, a[0].body_len, "\"checks\"", 8) == NULL,
                    "token case '%s' unlocked the full body: %.*s", t[i].name, (int)a[0].body_len,
                    a[0].body);
    raw_result_free(&r);
  }
  /* And the exact token does unlock it (the test would prove nothing
   * otherwise). */
  int n = snprintf(req, sizeof req,
                   "GET /ready HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" CLOSE "\r\n",
                   TOKEN);
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, (size_t)n, 0, TS(3000), &r);
  answer_t a[1];
  ck_assert_int_eq(parse_answers(&r, a, 1), 1);
  ck_assert_int_eq(a[0].status, 200);
  ck_assert_ptr_nonnull(memmem(a[0].body, a[0].body_len, "\"checks\"", 8));
  raw_result_free(&r);
  assert_alive("token tricks");
}
END_TEST

/* ---- oversized requests ---- */

static char *big_request(const char *prefix, char fill, size_t fill_len, const char *suffix,
                         size_t *len) {
  size_t pl = strlen(prefix), sl = strlen(suffix);
  char *b = malloc(pl + fill_len + sl + 1);
  ck_assert_ptr_nonnull(b);
  memcpy(b, prefix, pl);
  memset(b + pl, fill, fill_len);
  memcpy(b + pl + fill_len, suffix, sl + 1);
  *len = pl + fill_len + sl;
  return b;
}

/* Oversized requests are refused (414/431/400) or closed at once, never
 * answered 200 and never allowed to grow server memory. */
static void assert_refused_big(const char *name, const char *req, size_t len) {
  raw_result_t r;
  raw_exchange("127.0.0.1", g_port, req, len, 0, TS(3000), &r);
  ck_assert_msg(r.closed && r.ms < TS(2000), "%s: not closed (%llu ms)", name,
                (unsigned long long)r.ms);
  int s = first_status(&r);
  ck_assert_msg(s == -1 || s == 400 || s == 413 || s == 414 || s == 431, "%s: answered %d", name,
                s);
  raw_result_free(&r);
  assert_alive(name);
}

START_TEST(test_oversized) {
  size_t len;
  char *req = big_request("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", 'a', 64 * 1024,
                          "\r\n" CLOSE "\r\n", &len);
  assert_refused_big("one 64 KiB header", req, len);
  free(req);

  req = big_request("GET /", 'a', 64 * 1024, " HTTP/1.1\r\nHost: x\r\n" CLOSE "\r\n", &len);
  assert_refused_big("64 KiB URI", req, len);
  free(req);

  req = big_request("", 'A', 64 * 1024, " /health HTTP/1.1\r\nHost: x\r\n" CLOSE "\r\n", &len);
  assert_refused_big("64 KiB method", req, len);
  free(req);

  req = big_request("GET /health?", 'q', 64 * 1024, " HTTP/1.1\r\nHost: x\r\n" CLOSE "\r\n", &len);
  assert_refused_big("64 KiB query string", req, len);
  free(req);

  /* 4000 small headers (about 40 KiB). */
  size_t cap = 4000 * 16 + 64, o = 0;
  req = malloc(cap);
  ck_assert_ptr_nonnull(req);
  o += (size_t)snprintf(req, cap, "GET /health HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 4000; i++) o += (size_t)snprintf(req + o, cap - o, "X-%d: v\r\n", i);
  o += (size_t)snprintf(req + o, cap - o, "\r\n");
  assert_refused_big("4000 small headers", req, o);
  free(req);

  /* A header line that never ends: 1 MiB with no newline.  The server
   * must give up long before reading it all. */
  req = big_request("GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ", 'z', 1024 * 1024, "", &len);
  assert_refused_big("endless header line", req, len);
  free(req);
}
END_TEST

/* ---- slow and idle clients ---- */

/* A probe that runs on its own thread while the main thread keeps
 * dribbling (a probe on the dribbling thread would pause the dribble and
 * let the server's inactivity timeout do the work). */
typedef struct side_probe {
  pthread_t thread;
  const char *src;
  unsigned within_ms; /* retry until answered or this long */
  int status;         /* the last status, -1 for none */
  uint64_t took_ms;
} side_probe_t;

static void *side_probe_main(void *arg) {
  side_probe_t *p = arg;
  uint64_t t0 = th_now_ms();
  p->status = -1;
  while (p->status != 200 && th_now_ms() - t0 < p->within_ms) {
    unsigned left = p->within_ms - (unsigned)(th_now_ms() - t0);
    p->status = probe_from(p->src, left < 1000 ? left : 1000);
  }
  p->took_ms = th_now_ms() - t0;
  return NULL;
}

/* Dribble `req` one byte at a time on every fd in fds[] (round robin),
 * `pause_ms` between rounds, for at most `total_ms`; stops writing to a
 * connection once the server closed it.  If `probe` is non-NULL it starts
 * `probe_at_ms` into the dribble and is joined before returning.  Returns
 * how many connections the server closed; *last_close_ms receives when the
 * last one was seen closed. */
static uint64_t g_dribble_max_gap_ms; /* longest pause between rounds */

static int dribble(int *fds, int n, const char *req, size_t len, unsigned pause_ms,
                   unsigned total_ms, side_probe_t *probe, unsigned probe_at_ms,
                   uint64_t *last_close_ms) {
  size_t *sent = calloc((size_t)n, sizeof *sent);
  int *closed = calloc((size_t)n, sizeof *closed);
  ck_assert(sent && closed);
  int nclosed = 0, started = 0;
  uint64_t t0 = th_now_ms(), round = t0;
  *last_close_ms = 0;
  g_dribble_max_gap_ms = 0;
  while (th_now_ms() - t0 < total_ms && nclosed < n) {
    /* A stalled dribbler (a loaded machine) would let the server's
     * inactivity timeout do the cutting: report it with any failure. */
    uint64_t now = th_now_ms();
    if (now - round > g_dribble_max_gap_ms) g_dribble_max_gap_ms = now - round;
    round = now;
    for (int i = 0; i < n; i++) {
      if (closed[i]) continue;
      if (peer_closed(fds[i]) || (sent[i] < len && th_send_all(fds[i], req + sent[i], 1, 50) < 0)) {
        closed[i] = 1;
        nclosed++;
        *last_close_ms = th_now_ms() - t0;
        continue;
      }
      if (sent[i] < len) sent[i]++;
    }
    if (probe && !started && th_now_ms() - t0 >= probe_at_ms) {
      ck_assert_int_eq(pthread_create(&probe->thread, NULL, side_probe_main, probe), 0);
      started = 1;
    }
    usleep(pause_ms * 1000);
  }
  if (started) pthread_join(probe->thread, NULL);
  free(sent);
  free(closed);
  return nclosed;
}

/* A long request head that takes several seconds to dribble. */
static const char SLOW_REQ[] =
    "GET /ready HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris/1.0 (a very slow client)\r\n"
    "Accept: */*\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" CLOSE
    "\r\n";

/* One client dribbles its headers a byte every 20 ms (the 1 s inactivity
 * timeout never fires): the server cuts it once its request head is
 * overdue, and answers a normal probe from another address meanwhile. */
START_TEST(test_slowloris) {
  int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  uint64_t closed_ms;
  side_probe_t p = {.src = "127.0.0.2", .within_ms = TS(1000)};
  /* ~190 bytes at 20 ms: about 4 s if the server lets it run. */
  /* Under valgrind (time scale > 1) the dribble slows down with the server,
   * staying well under the 1 s inactivity timeout. */
  unsigned gap = TS(20) < 400 ? TS(20) : 400;
  int n = dribble(&fd, 1, SLOW_REQ, sizeof SLOW_REQ - 1, gap, TS(4000), &p, 300, &closed_ms);
  ck_assert_msg(p.status == 200, "probe from 127.0.0.2 during slowloris: %d after %llu ms",
                p.status, (unsigned long long)p.took_ms);
  raw_result_t r = {0};
  raw_read(fd, &r, 0, TS(500));
  close(fd);
  ck_assert_msg(n == 1 && closed_ms <= TS(2500),
                "slowloris connection not cut by the server (closed=%d at %llu ms); "
                "with connection_timeout_s=1 it must be within ~2 s (dribble gaps up to %llu ms)",
                n, (unsigned long long)closed_ms, (unsigned long long)g_dribble_max_gap_ms);
  ck_assert_msg(first_status(&r) != 200, "the slow request was answered 200");
  raw_result_free(&r);
  assert_alive("slowloris");
}
END_TEST

/* A fast dribble: a byte every millisecond of a 6 KiB head.  A byte is
 * often already queued when the head deadline passes; a server that only
 * shut the read side would read that byte instead of the EOF and keep the
 * connection (libmicrohttpd with epoll stops reading after a short read).
 * Six rounds: that server lost about one round in seven here. */
START_TEST(test_slowloris_fast) {
  size_t pad = 6000;
  const char head[] = "GET /ready HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const char tail[] = "\r\n" CLOSE "\r\n";
  size_t len = sizeof head - 1 + pad + sizeof tail - 1;
  char *req = malloc(len);
  ck_assert(req);
  memcpy(req, head, sizeof head - 1);
  memset(req + sizeof head - 1, 'a', pad);
  memcpy(req + sizeof head - 1 + pad, tail, sizeof tail - 1);
  for (int round = 0; round < 6; round++) {
    int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
    ck_assert_int_ge(fd, 0);
    uint64_t closed_ms;
    int n = dribble(&fd, 1, req, len, 1, TS(4000), NULL, 0, &closed_ms);
    close(fd);
    ck_assert_msg(n == 1 && closed_ms <= TS(2500),
                  "round %d: fast slowloris not cut (closed=%d at %llu ms, gaps up to %llu ms)",
                  round, n, (unsigned long long)closed_ms,
                  (unsigned long long)g_dribble_max_gap_ms);
  }
  free(req);
  assert_alive("fast slowloris");
}
END_TEST

/* 150 slow clients from 5 addresses (30 each, under the per-address limit
 * of 32, together over max_connections = 128): the connection table is
 * full, and a probe from a sixth address must still get through once the
 * overdue ones are cut, instead of failing for as long as they dribble. */
START_TEST(test_slowloris_swarm) {
  enum { N = 150 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    char src[32];
    snprintf(src, sizeof src, "127.0.2.%d", 10 + i % 5);
    fds[i] = th_connect_from(src, g_port, TS(1000));
    ck_assert_msg(fds[i] >= 0, "connect %d failed", i);
  }
  /* The table is full of slow clients: the probe must get through once the
   * server cuts the overdue ones (connection_timeout_s = 1), while they are
   * still dribbling. */
  uint64_t closed_ms;
  side_probe_t p = {.src = "127.0.0.2", .within_ms = TS(3000)};
  dribble(fds, N, SLOW_REQ, sizeof SLOW_REQ - 1, 20, 4000, &p, 200, &closed_ms);
  for (int i = 0; i < N; i++) close(fds[i]);
  ck_assert_msg(p.status == 200,
                "probe from 127.0.0.2 during a slowloris swarm: %d after %llu ms "
                "(dribble gaps up to %llu ms)",
                p.status, (unsigned long long)p.took_ms, (unsigned long long)g_dribble_max_gap_ms);
  assert_alive("slowloris swarm");
}
END_TEST

/* 300 idle connections from one address: the server keeps at most the
 * per-address limit (32) and closes the rest at once; a probe from another
 * address is answered meanwhile; once they are gone the first address is
 * served again. */
START_TEST(test_idle_one_address) {
  teardown();
  health_options_t o;
  base_options(&o);
  o.connection_timeout_s = 5; /* idle ones stay for the whole test */
  start_with(&o);
  enum { N = 300 };
  int fds[N], connected = 0;
  for (int i = 0; i < N; i++) {
    fds[i] = th_connect_from("127.0.0.1", g_port, TS(1000));
    if (fds[i] >= 0) connected++;
  }
  ck_assert_int_gt(connected, 32);
  /* The server refuses the excess at once: wait until the clients have
   * seen those closes (a bounded wait), then count what stays open. */
  int open_ = N;
  for (uint64_t t = th_now_ms(); open_ > 32 && th_now_ms() - t < TS(1000); usleep(5000)) {
    open_ = 0;
    for (int i = 0; i < N; i++)
      if (fds[i] >= 0 && !peer_closed(fds[i])) open_++;
  }
  ck_assert_msg(open_ <= 32, "%d idle connections from one address still open (limit 32)", open_);
  unsigned held = current_connections();
  ck_assert_msg(held <= 32, "server holds %u connections", held);

  uint64_t t0 = th_now_ms();
  int s = probe_from("127.0.0.3", TS(1000));
  ck_assert_msg(s == 200, "probe from 127.0.0.3 during the idle flood: %d after %llu ms", s,
                (unsigned long long)(th_now_ms() - t0));

  for (int i = 0; i < N; i++)
    if (fds[i] >= 0) close(fds[i]);
  /* The server notices the closes on its next poll. */
  t0 = th_now_ms();
  while (current_connections() > 0 && th_now_ms() - t0 < TS(1000)) usleep(5000);
  assert_alive("300 idle connections from one address");
}
END_TEST

/* 300 idle connections from 10 addresses (30 each): together over
 * max_connections.  The server never holds more than its table; a probe
 * from another address is answered at once (it evicts an idle one), and
 * after they are closed everything is back to normal. */
START_TEST(test_idle_many_addresses) {
  enum { N = 300 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    char src[32];
    snprintf(src, sizeof src, "127.0.1.%d", 10 + i % 10);
    fds[i] = th_connect_from(src, g_port, TS(1000));
  }
  /* Until the table is full (bounded): it never holds more than 128. */
  /* libmicrohttpd may hold a few more than 128 for a moment: connections
   * evicted and not yet closed (the guard's table is larger). */
  unsigned held = 0, table = health__guard_slots(g_h->http.guard);
  for (uint64_t t = th_now_ms(); held < 128 && th_now_ms() - t < TS(1000); usleep(5000)) {
    held = current_connections();
    ck_assert_msg(held <= table, "server holds %u connections (table %u)", held, table);
  }

  /* At the cap, the probe's connection evicts the oldest idle one: it is
   * answered at once, not after the idle ones time out. */
  uint64_t t0 = th_now_ms();
  int s = probe_from("127.0.0.3", TS(1000));
  ck_assert_msg(s == 200, "probe from 127.0.0.3 during the idle flood: %d after %llu ms", s,
                (unsigned long long)(th_now_ms() - t0));
  ck_assert_uint_le(current_connections(), table);
  for (int i = 0; i < N; i++)
    if (fds[i] >= 0) close(fds[i]);
  t0 = th_now_ms();
  while (current_connections() > 0 && th_now_ms() - t0 < TS(3000)) usleep(10000);
  assert_alive("300 idle connections from 10 addresses");
}
END_TEST

/* A keep-alive connection that goes quiet after one answer is closed by the
 * idle timeout, not kept for ever. */
START_TEST(test_keepalive_idle_closed) {
  static const char req[] = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  th_send_all(fd, req, sizeof req - 1, TS(1000));
  raw_result_t r = {0};
  raw_read(fd, &r, 1, TS(1000));
  ck_assert_int_eq(first_status(&r), 200);
  uint64_t t0 = th_now_ms();
  raw_read(fd, &r, 0, TS(4000));
  close(fd);
  ck_assert_msg(r.closed && th_now_ms() - t0 < TS(3000), "idle keep-alive connection kept %llu ms",
                (unsigned long long)(th_now_ms() - t0));
  raw_result_free(&r);
  assert_alive("idle keep-alive");
}
END_TEST

/* Half a request, then the client shuts its side: no answer expected, no
 * hang, no crash. */
START_TEST(test_half_request_then_shutdown) {
  static const char req[] = "GET /ready HTTP/1.1\r\nHost: x\r\nX-Partial: ab";
  int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  th_send_all(fd, req, sizeof req - 1, TS(1000));
  shutdown(fd, SHUT_WR);
  raw_result_t r = {0};
  uint64_t t0 = th_now_ms();
  raw_read(fd, &r, 0, TS(3000));
  close(fd);
  ck_assert_msg(r.closed && th_now_ms() - t0 < TS(2500), "half request: not closed (%llu ms)",
                (unsigned long long)(th_now_ms() - t0));
  ck_assert_int_ne(first_status(&r), 200);
  raw_result_free(&r);
  /* And a reset in the middle of a request. */
  fd = th_connect_from("127.0.0.1", g_port, TS(1000));
  ck_assert_int_ge(fd, 0);
  th_send_all(fd, req, sizeof req - 1, TS(1000));
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd); /* RST */
  assert_alive("half request and reset");
}
END_TEST

/* Connect-and-close churn: 500 connections opened and dropped at once,
 * some after sending a byte. */
START_TEST(test_connect_churn) {
  for (int i = 0; i < 500; i++) {
    int fd = th_connect_from("127.0.0.1", g_port, TS(1000));
    ck_assert_int_ge(fd, 0);
    if (i % 3 == 0) th_send_all(fd, "G", 1, 100);
    if (i % 5 == 0) {
      struct linger lg = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
  }
  uint64_t t0 = th_now_ms();
  while (current_connections() > 0 && th_now_ms() - t0 < TS(2000)) usleep(5000);
  assert_alive("connect churn");
}
END_TEST

static Suite *hostile_suite(void) {
  Suite *s = suite_create("hostile");
  TCase *tc = tcase_create("requests");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, test_case, 0, NCASES);
  tcase_add_test(tc, test_pipelined);
  tcase_add_test(tc, test_pipelined_error);
  tcase_add_test(tc, test_pipelined_many);
  tcase_add_test(tc, test_http10_closes);
  tcase_add_test(tc, test_http09_open);
  tcase_add_test(tc, test_nul_in_header_value);
  tcase_add_test(tc, test_token_nul_tricks);
  tcase_add_test(tc, test_oversized);
  suite_add_tcase(s, tc);

  tc = tcase_create("connections");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_slowloris);
  tcase_add_test(tc, test_slowloris_fast);
  tcase_add_test(tc, test_slowloris_swarm);
  tcase_add_test(tc, test_idle_one_address);
  tcase_add_test(tc, test_idle_many_addresses);
  tcase_add_test(tc, test_keepalive_idle_closed);
  tcase_add_test(tc, test_half_request_then_shutdown);
  tcase_add_test(tc, test_connect_churn);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(hostile_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
