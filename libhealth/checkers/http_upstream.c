/*
 * The HTTP(S) upstream checker: one request per run on a fresh connection,
 * through the same deadline-bounded stream (and TLS layer) as the Redis
 * checker.  A fresh connection on purpose: the check then proves what a
 * new client would meet (DNS, connect, handshake), and a kept-alive socket
 * that an upstream or a proxy silently dropped cannot fake a pass.
 *
 * The request is HTTP/1.0 with a Host header, so the answer is never
 * chunked: its body ends at Content-Length or at the close, which keeps
 * the reader small.
 */
#include "checkers/checker.h"

#include "checkers/target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEAD_MAX 16384
#define BODY_MAX 65536

HEALTH_EXPORT void health_http_options_init(health_http_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->method = "GET";
  o->status_min = 200;
  o->status_max = 299;
}

typedef health__http_target_t target_t;

typedef struct http_state {
  health__checker_t *ck; /* the handle, the name, the timeout (checkers/checker.h) */
  char *display_url;     /* password masked, for debug logs */
  target_t first;
  char *auth; /* "Authorization: Basic ...\r\n" or NULL (wiped on free) */
  char *method, *expect, *server_name;
  unsigned status_min, status_max, max_redirects;
  int verify, client_cert;
  health__tls_files_t *tls; /* https: the context and its files */
  char head[HEAD_MAX + 1];
  char body[BODY_MAX + 1];
} http_state_t;

#define target_free health__http_target_free
#define parse_url health__http_url_parse

static void http_free(void *arg) {
  http_state_t *st = arg;
  if (!st) return;
  target_free(&st->first);
  if (st->auth) {
    health__wipe(st->auth, strlen(st->auth));
    free(st->auth);
  }
  health__tls_files_free(st->tls);
  free(st->display_url);
  free(st->method);
  free(st->expect);
  free(st->server_name);
  health__checker_free(st->ck);
  free(st);
}

/* ---- one exchange ---- */

typedef struct run {
  http_state_t *st;
  health__conn_t conn;
  uint64_t deadline;
  const char *phase;
  health_result_t *res; /* the engine's run, told each phase */
  char out[HEALTH_ERROR_TEXT_LENGTH];
  size_t hlen, blen; /* bytes in st->head / st->body */
  unsigned status;
  long long content_length; /* -1: until close */
  char location[HEALTH__HTTP_PATH_MAX + 1];
} run_t;

static void set_phase(run_t *r, const char *phase) {
  r->phase = phase;
  health__checker_phase(r->res, phase);
}

static int fail(run_t *r, int rc, const char *fmt, ...) HEALTH_PRINTF(3, 4);
static int fail(run_t *r, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->out, sizeof r->out, fmt, ap);
  va_end(ap);
  return rc ? rc : HEALTH__IO_ERROR;
}

static int io_fail(run_t *r, int rc, const char *why) {
  if (rc == HEALTH__IO_TIMEOUT) {
    char t[96];
    health__checker_timeout_text(r->st->ck, r->phase, t, sizeof t);
    if (strcmp(r->phase, "dns") == 0 && why[0]) return fail(r, rc, "%s: %s", t, why);
    return fail(r, rc, "%s", t);
  }
  /* A TLS 1.3 server checks the client certificate after our side of the
   * handshake has completed; its alert is often lost to the reset. */
  if (rc == HEALTH__IO_CLOSED && r->conn.ssl && r->hlen == 0 &&
      (r->conn.cert_requested || r->st->client_cert))
    return fail(r, rc, "%s right after the TLS handshake (%s) (%s)", why,
                r->conn.cert_requested ? "the server requires a client certificate"
                                       : "was the client certificate rejected?",
                r->phase);
  return fail(r, rc, "%s (%s)", why[0] ? why : "I/O error", r->phase);
}

/* Case-insensitive header value of the response head, into buf. */
static int header(const char *head, const char *name, char *buf, size_t len) {
  size_t nl = strlen(name);
  for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
    l += 2;
    if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
      const char *v = l + nl + 1, *e = strstr(v, "\r\n");
      while (*v == ' ' || *v == '\t') v++;
      if (!e) e = v + strlen(v);
      while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
      snprintf(buf, len, "%.*s", (int)(e - v), v);
      return 1;
    }
  }
  return 0;
}

static int read_head(run_t *r) {
  http_state_t *st = r->st;
  char why[200] = "";
  set_phase(r, "response");
  r->hlen = r->blen = 0;
  for (;;) {
    if (r->hlen >= HEAD_MAX)
      return fail(r, HEALTH__IO_ERROR, "response headers larger than 16 KiB");
    ssize_t n = health__conn_read(&r->conn, st->head + r->hlen, HEAD_MAX - r->hlen, r->deadline,
                                  why, sizeof why);
    if (n < 0) {
      if (n == HEALTH__IO_CLOSED && r->hlen == 0 && r->conn.sys_errno == 0)
        return fail(r, (int)n, "%s before any response (response)", why);
      return io_fail(r, (int)n, why);
    }
    r->hlen += (size_t)n;
    st->head[r->hlen] = 0;
    if (r->hlen >= 5 && strncmp(st->head, "HTTP/", 5) != 0)
      return fail(r, HEALTH__IO_ERROR, "not an HTTP response (response)");
    char *e = memmem(st->head, r->hlen, "\r\n\r\n", 4);
    if (!e) continue;
    size_t hl = (size_t)(e - st->head) + 4;
    /* bytes after the head belong to the body */
    r->blen = r->hlen - hl;
    if (r->blen > BODY_MAX) r->blen = BODY_MAX;
    memcpy(st->body, st->head + hl, r->blen);
    st->body[r->blen] = 0;
    e[2] = 0;
    r->hlen = hl;
    break;
  }
  unsigned a, b, code;
  if (sscanf(st->head, "HTTP/%u.%u %3u", &a, &b, &code) != 3 || code < 100 || code > 599)
    return fail(r, HEALTH__IO_ERROR, "malformed HTTP status line (response)");
  r->status = code;
  char v[64];
  r->content_length = -1;
  if (header(st->head, "Content-Length", v, sizeof v)) r->content_length = atoll(v);
  if (!header(st->head, "Location", r->location, sizeof r->location)) r->location[0] = 0;
  return 0;
}

/* Read the body until `expect` shows up, the body ends, or BODY_MAX. */
static int find_text(run_t *r) {
  http_state_t *st = r->st;
  size_t el = strlen(st->expect);
  char why[200] = "";
  set_phase(r, "body");
  for (;;) {
    if (memmem(st->body, r->blen, st->expect, el)) return 0;
    if ((r->content_length >= 0 && (long long)r->blen >= r->content_length) || r->blen >= BODY_MAX)
      break;
    ssize_t n = health__conn_read(&r->conn, st->body + r->blen, BODY_MAX - r->blen, r->deadline,
                                  why, sizeof why);
    if (n == HEALTH__IO_CLOSED && r->content_length < 0 && r->conn.sys_errno == 0) break;
    if (n < 0) return io_fail(r, (int)n, why);
    r->blen += (size_t)n;
  }
  if (r->blen >= BODY_MAX)
    return fail(r, HEALTH__IO_ERROR, "expected text not found in the first 64 KiB of the body");
  return fail(r, HEALTH__IO_ERROR, "expected text not found in the body");
}

static int exchange(run_t *r, const target_t *t) {
  http_state_t *st = r->st;
  char why[200] = "", hostport[300];
  int fd = health__net_connect(st->ck, r->res, &t->hp, r->deadline, &r->phase, why, sizeof why);
  if (fd == HEALTH__IO_TIMEOUT) return io_fail(r, fd, why);
  if (fd < 0) return fail(r, fd, "%s", why);
  r->conn.fd = fd;
  if (t->tls) {
    const char *vn = st->server_name && t == &st->first ? st->server_name : t->hp.host;
    set_phase(r, "tls handshake");
    struct ssl_ctx_st *ctx = health__checker_tls_ctx(st->ck, st->tls);
    int rc = health__tls_handshake(&r->conn, ctx, vn, st->verify, r->deadline, why, sizeof why);
    if (rc == HEALTH__IO_TIMEOUT) return io_fail(r, rc, why);
    if (rc) return fail(r, rc, "%s", why);
  }
  int v6 = t->hp.host_is_ip == 6, dflt = t->hp.port == (t->tls ? 443u : 80u);
  snprintf(hostport, sizeof hostport, "%s%s%s", v6 ? "[" : "", t->hp.host, v6 ? "]" : "");
  if (!dflt)
    snprintf(hostport + strlen(hostport), sizeof hostport - strlen(hostport), ":%u", t->hp.port);
  char *req = NULL;
  int len = asprintf(&req,
                     "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: libhealth/%s\r\n"
                     "Accept: */*\r\nConnection: close\r\n%s\r\n",
                     st->method, t->path, hostport, HEALTH_VERSION_STRING,
                     st->auth && t == &st->first ? st->auth : "");
  set_phase(r, "request");
  int rc = len < 0 ? fail(r, HEALTH__IO_ERROR, "out of memory")
                   : health__conn_write(&r->conn, req, (size_t)len, r->deadline, why, sizeof why);
  if (len >= 0) {
    health__wipe(req, (size_t)len);
    free(req);
  }
  if (rc) return r->out[0] ? rc : io_fail(r, rc, why);
  return read_head(r);
}

/* Resolve a Location against the current target into `next`. */
static int redirect_target(run_t *r, const target_t *cur, target_t *next) {
  const char *why = NULL;
  memset(next, 0, sizeof *next);
  if (strncasecmp(r->location, "http://", 7) == 0 || strncasecmp(r->location, "https://", 8) == 0) {
    if (parse_url(r->location, next, NULL, &why) != 0)
      return fail(r, HEALTH__IO_ERROR, "HTTP %u: invalid redirect location (%s)", r->status, why);
    if (next->tls && !r->st->tls) {
      target_free(next);
      return fail(r, HEALTH__IO_ERROR, "HTTP %u: redirect from http to https not followed",
                  r->status);
    }
    return 0;
  }
  if (r->location[0] != '/' || r->location[1] == '/')
    return fail(r, HEALTH__IO_ERROR, "HTTP %u: unsupported redirect location", r->status);
  next->tls = cur->tls;
  next->hp.host = strdup(cur->hp.host);
  next->hp.host_is_ip = cur->hp.host_is_ip;
  next->hp.port = cur->hp.port;
  next->path = strndup(r->location, strcspn(r->location, "#"));
  if (!next->hp.host || !next->path) {
    target_free(next);
    return fail(r, HEALTH__IO_ERROR, "out of memory");
  }
  return 0;
}

static void http_run(health_result_t *res, void *arg) {
  http_state_t *st = arg;
  run_t r;
  memset(&r, 0, sizeof r);
  r.st = st;
  r.deadline = health__checker_deadline(res);
  r.res = res;
  set_phase(&r, "dns");
  health__conn_init(&r.conn);
  uint64_t t0 = health__now_us();
  target_t hop, *cur = &st->first;
  int rc, hops = 0, have_hop = 0;
  for (;;) {
    rc = exchange(&r, cur);
    if (rc || r.status < 300 || r.status > 399 || !r.location[0] ||
        (r.status >= st->status_min && r.status <= st->status_max) || st->max_redirects == 0)
      break;
    if (hops++ >= (int)st->max_redirects) {
      rc = fail(&r, HEALTH__IO_ERROR, "too many redirects (more than %u)", st->max_redirects);
      break;
    }
    target_t next;
    if ((rc = redirect_target(&r, cur, &next)) != 0) break;
    health__conn_close(&r.conn);
    if (have_hop) target_free(&hop);
    hop = next;
    have_hop = 1;
    cur = &hop;
  }
  if (rc == 0 && (r.status < st->status_min || r.status > st->status_max))
    rc = fail(&r, HEALTH__IO_ERROR, "HTTP %u (expected %u-%u%s)", r.status, st->status_min,
              st->status_max,
              r.status >= 300 && r.status <= 399 && !st->max_redirects
                  ? "; redirects are not followed"
                  : "");
  if (rc == 0 && st->expect) rc = find_text(&r);
  health__conn_close(&r.conn);
  if (have_hop) target_free(&hop);
  if (rc == 0) {
    health__checker_pass(res, (double)(health__now_us() - t0) / 1000.0);
    return;
  }
  health__checker_log(st->ck, HEALTH_LOG_DEBUG, "http_check_failed", "check",
                      health__checker_name(st->ck), "url", st->display_url, "phase", r.phase,
                      "output", r.out, NULL);
  health_result_set(res, HEALTH_FAIL, "%s", r.out);
}

/* ---- registration ---- */

HEALTH_EXPORT int health_http_add(health_t *h, const char *name, const char *url,
                                  const health_http_options_t *http,
                                  const health_check_options_t *opts, health_error_t *err) {
  health_http_options_t o;
  const char *why = NULL;
  char ebuf[200];
  int rc;
  if (!h || !name || !url)
    return health__err(err, HEALTH_EINVAL, "health_http_add: handle, name and url are required");
  if (http && HEALTH__RESERVED_CHECK(http, "health_http_options", err)) return HEALTH_EINVAL;
  if (http) o = *http;
  else health_http_options_init(&o);
  const char *method = o.method ? o.method : "GET";
  if (strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': method must be GET or HEAD", name);
  if (o.status_min < 100 || o.status_max > 599 || o.status_min > o.status_max)
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': status range must lie within 100-599, lowest first", name);
  if (o.expect && (!*o.expect || strlen(o.expect) > 1024))
    return health__err(err, HEALTH_EINVAL, "check '%.64s': expected text must be 1-1024 bytes",
                       name);
  if (o.expect && strcasecmp(method, "HEAD") == 0)
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': expected text needs GET (HEAD has no body)", name);
  if (o.max_redirects > 10)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': max_redirects must be 0-10", name);
  if (o.tls_server_name && !*o.tls_server_name)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': tls_server_name is empty", name);

  http_state_t *st = calloc(1, sizeof *st);
  if (!st) return health__err(err, HEALTH_ENOMEM, "out of memory");
  if (!(st->ck = health__checker_new(h, name))) {
    free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  st->status_min = o.status_min;
  st->status_max = o.status_max;
  st->max_redirects = o.max_redirects;
  st->verify = !o.insecure_skip_verify;
  st->client_cert = o.cert_file != NULL;
  rc = parse_url(url, &st->first, &st->auth, &why);
  if (rc) {
    rc = health__err(err, rc, "check '%.64s': invalid HTTP URL: %s", name, why);
    goto fail;
  }
  if (st->first.tls) {
    rc = health__tls_files_new(&st->tls, o.ca_file, o.ca_dir, o.cert_file, o.key_file, st->verify,
                               ebuf, sizeof ebuf);
    if (rc) {
      rc = health__err(err, rc, "check '%.64s': %s", name, ebuf);
      goto fail;
    }
  } else if (o.ca_file || o.ca_dir || o.cert_file || o.key_file || o.tls_server_name ||
             o.insecure_skip_verify) {
    health__checker_log(st->ck, HEALTH_LOG_WARN, "http_tls_options_ignored", "check", name,
                        "message", "TLS options given for an http:// URL; use https:// for TLS",
                        NULL);
  }
  char shown[1024];
  health__redact_url(url, shown, sizeof shown);
  st->display_url = strdup(shown);
  st->method = strdup(method);
  for (char *m = st->method; m && *m; m++)
    if (*m >= 'a' && *m <= 'z') *m = (char)(*m - 'a' + 'A');
  st->expect = o.expect ? strdup(o.expect) : NULL;
  st->server_name = o.tls_server_name ? strdup(o.tls_server_name) : NULL;
  if (!st->display_url || !st->method || (o.expect && !st->expect) ||
      (o.tls_server_name && !st->server_name)) {
    rc = health__err(err, HEALTH_ENOMEM, "out of memory");
    goto fail;
  }
  rc = health__checker_add(st->ck, http_run, st, http_free, opts, "component", err);
  if (rc) goto fail;
  if (st->first.tls && !st->verify) health__checker_warn_insecure(st->ck, "http_tls_insecure");
  return 0;
fail:
  http_free(st);
  return rc;
}
