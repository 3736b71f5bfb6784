/* Secrets never leave the process.  Against a throwaway PostgreSQL and a TLS
 * Redis (tests/pg-server.sh, tests/redis-server.sh), with passwords and a
 * detail token made up for this run, every way a password can be given
 * (keyword/value, URL user info, ?password=, percent-encoded specials,
 * redis:// and rediss:// with and without a user) goes through every path:
 * pass, wrong password, TLS errors, timeouts, refused connections and
 * malformed input at registration.  Every log line (debug level), every
 * /ready and /health body at full detail, every check output and every
 * error text is captured; none may hold a password, its encoded form or the
 * token, and what is published (bodies, outputs, error texts) names no
 * user. */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"

/* ------------------------------------------------------------------ */
/* Secrets of this run                                                 */
/* ------------------------------------------------------------------ */

/* Every secret holds g_mark (random hex) and starts with "S3cr3t"; user
 * names hold g_umark (other random hex).  Checking for the marks as well
 * as the whole strings catches a secret leaked in part. */
static char g_mark[17], g_umark[9];
/* The URL-special part of the "x" passwords, raw and percent-encoded. */
#define SPECIAL "/p@ss:w%rd?&=#+ ;"

static char pg_pw[64], pg_pw_x[96], pg_pw_x_enc[192], pg_wrong[64], pg_wrong_x[96],
    pg_wrong_x_enc[192];
static char rd_pw[64], rd_pw_x[96], rd_pw_x_enc[192], rd_wrong[64], rd_wrong_x[96],
    rd_wrong_x_enc[192];
static char tok[64], tok_wrong[64], tok_bad[64];
static char pg_user[32], pg_user_x[32], pg_nobody[32], rd_user[32];

static const char *g_secrets[32];
static size_t g_nsecrets;
static const char *g_users[8];
static size_t g_nusers;

static void hex(char *out, size_t bytes) {
  unsigned char b[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, b, bytes) != (ssize_t)bytes) {
    perror("check_secrets: /dev/urandom");
    exit(99);
  }
  close(fd);
  for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void enc(const char *in, char *out, size_t len) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < len; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p))
      out[o++] = (char)*p;
    else o += (size_t)sprintf(out + o, "%%%02X", *p);
  }
  out[o] = 0;
}

static void make_secrets(void) {
  hex(g_mark, 8);
  hex(g_umark, 4);
  snprintf(pg_pw, sizeof pg_pw, "S3cr3t-PG-%s", g_mark);
  snprintf(pg_pw_x, sizeof pg_pw_x, "S3cr3t-PGX-%s%s%s", g_mark, SPECIAL, g_mark);
  snprintf(pg_wrong, sizeof pg_wrong, "S3cr3t-PGW-%s", g_mark);
  snprintf(pg_wrong_x, sizeof pg_wrong_x, "S3cr3t-PGWX-%s%s%s", g_mark, SPECIAL, g_mark);
  snprintf(rd_pw, sizeof rd_pw, "S3cr3t-RD-%s", g_mark);
  snprintf(rd_pw_x, sizeof rd_pw_x, "S3cr3t-RDX-%s%s%s", g_mark, SPECIAL, g_mark);
  snprintf(rd_wrong, sizeof rd_wrong, "S3cr3t-RDW-%s", g_mark);
  snprintf(rd_wrong_x, sizeof rd_wrong_x, "S3cr3t-RDWX-%s%s%s", g_mark, SPECIAL, g_mark);
  snprintf(tok, sizeof tok, "S3cr3t-TK-%s", g_mark);
  snprintf(tok_wrong, sizeof tok_wrong, "S3cr3t-TKW-%s", g_mark);
  snprintf(tok_bad, sizeof tok_bad, "S3cr3t-TKB-%s\x01", g_mark); /* not printable */
  enc(pg_pw_x, pg_pw_x_enc, sizeof pg_pw_x_enc);
  enc(pg_wrong_x, pg_wrong_x_enc, sizeof pg_wrong_x_enc);
  enc(rd_pw_x, rd_pw_x_enc, sizeof rd_pw_x_enc);
  enc(rd_wrong_x, rd_wrong_x_enc, sizeof rd_wrong_x_enc);
  /* Role names go into SQL unquoted: lower case only. */
  snprintf(pg_user, sizeof pg_user, "usr_pg_%s", g_umark);
  snprintf(pg_user_x, sizeof pg_user_x, "usr_pgx_%s", g_umark);
  snprintf(pg_nobody, sizeof pg_nobody, "usr_nobody_%s", g_umark);
  snprintf(rd_user, sizeof rd_user, "usr_rd_%s", g_umark);

  const char *s[] = {pg_pw, pg_pw_x,   pg_pw_x_enc, pg_wrong, pg_wrong_x,  pg_wrong_x_enc,
                     rd_pw, rd_pw_x,   rd_pw_x_enc, rd_wrong, rd_wrong_x,  rd_wrong_x_enc,
                     tok,   tok_wrong, g_mark,      "S3cr3t", "p@ss:w%rd", "p%40ss%3Aw%25rd"};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) g_secrets[g_nsecrets++] = s[i];
  const char *u[] = {pg_user, pg_user_x, pg_nobody, rd_user, g_umark};
  for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) g_users[g_nusers++] = u[i];
}

/* ------------------------------------------------------------------ */
/* What the library said                                               */
/* ------------------------------------------------------------------ */

typedef struct text {
  pthread_mutex_t lock;
  char *data;
  size_t len;
  unsigned items;
} text_t;

static text_t g_log = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
/* Published: bodies, check outputs, error texts. */
static text_t g_pub = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void text_add(text_t *t, const char *what, const char *s, size_t n) {
  size_t wl = strlen(what);
  pthread_mutex_lock(&t->lock);
  char *p = realloc(t->data, t->len + wl + n + 3);
  if (p) {
    memcpy(p + t->len, what, wl);
    p[t->len + wl] = ' ';
    memcpy(p + t->len + wl + 1, s, n);
    p[t->len + wl + 1 + n] = '\n';
    p[t->len + wl + 2 + n] = 0;
    t->data = p;
    t->len += wl + n + 2;
    t->items++;
  }
  pthread_mutex_unlock(&t->lock);
}

static void text_clear(text_t *t) {
  pthread_mutex_lock(&t->lock);
  free(t->data);
  t->data = NULL;
  t->len = 0;
  t->items = 0;
  pthread_mutex_unlock(&t->lock);
}

static void capture_log(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)arg;
  if (getenv("HEALTH_TEST_LOG")) fprintf(stderr, "%s\n", line); /* for debugging */
  text_add(&g_log, "log", line, strlen(line));
}

static void publish(const char *what, const char *s) { text_add(&g_pub, what, s, strlen(s)); }

/* The line of `data` holding `needle`, for the failure message. */
static const char *line_with(const char *data, const char *needle, char *buf, size_t len) {
  const char *p = strstr(data, needle);
  if (!p) return "";
  const char *b = p, *e = p;
  while (b > data && b[-1] != '\n') b--;
  while (*e && *e != '\n') e++;
  snprintf(buf, len, "%.*s", (int)(e - b), b);
  return buf;
}

/* No secret in the log or in anything published; no user name published. */
static void assert_clean(void) {
  char ctx[1024];
  pthread_mutex_lock(&g_log.lock);
  pthread_mutex_lock(&g_pub.lock);
  const char *log = g_log.data ? g_log.data : "";
  const char *pub = g_pub.data ? g_pub.data : "";
  for (size_t i = 0; i < g_nsecrets; i++) {
    ck_assert_msg(!strstr(log, g_secrets[i]), "a log line holds \"%s\": %s", g_secrets[i],
                  line_with(log, g_secrets[i], ctx, sizeof ctx));
    ck_assert_msg(!strstr(pub, g_secrets[i]), "published text holds \"%s\": %s", g_secrets[i],
                  line_with(pub, g_secrets[i], ctx, sizeof ctx));
  }
  for (size_t i = 0; i < g_nusers; i++)
    ck_assert_msg(!strstr(pub, g_users[i]), "published text names user \"%s\": %s", g_users[i],
                  line_with(pub, g_users[i], ctx, sizeof ctx));
  pthread_mutex_unlock(&g_pub.lock);
  pthread_mutex_unlock(&g_log.lock);
}

static void clear_texts(void) {
  text_clear(&g_log);
  text_clear(&g_pub);
}

/* ------------------------------------------------------------------ */
/* Servers                                                             */
/* ------------------------------------------------------------------ */

static char *g_pg_dir;
static unsigned g_pg_port;
static char *g_rd_dir;
static unsigned g_rd_tls, g_rd_plain;
static int g_have_pg, g_have_rd;   /* the server runs */
static int g_pg_built, g_rd_built; /* the checker is compiled in */

static int pg_cmd(const char *cmd, const char *extra) {
  char args[2048], sink[256];
  snprintf(args, sizeof args, "%s '%s' %s", cmd, g_pg_dir, extra ? extra : "");
  return th_script("pg-server.sh", args, sink, sizeof sink);
}

static int rd_cmd(const char *cmd, const char *extra, char *out, size_t len) {
  char args[2048], sink[256];
  snprintf(args, sizeof args, "%s '%s' %s", cmd, g_rd_dir, extra ? extra : "");
  return th_script("redis-server.sh", args, out ? out : sink, out ? len : sizeof sink);
}

/* 0, 77 (not available: skip) or another failure. */
static int pg_up(void) {
  char out[256], sql[512];
  if (!(g_pg_dir = th_tmpdir("pgsecret"))) return 1;
  snprintf(out, sizeof out, "start '%s'", g_pg_dir);
  int rc = th_script("pg-server.sh", out, out, sizeof out);
  if (rc != 0) return rc; /* servers_down() removes the directory */
  g_pg_port = (unsigned)atoi(out);
  /* The passwords go into SQL inside sh double quotes: none holds '"',
   * '$', '`', '\\' or '\''. */
  snprintf(sql, sizeof sql, "\"CREATE ROLE %s LOGIN PASSWORD '%s'\"", pg_user, pg_pw);
  if ((rc = pg_cmd("sql", sql)) != 0) return rc;
  snprintf(sql, sizeof sql, "\"CREATE ROLE %s LOGIN PASSWORD '%s'\"", pg_user_x, pg_pw_x);
  return pg_cmd("sql", sql);
}

static int rd_up(void) {
  char out[128], extra[512];
  if (!(g_rd_dir = th_tmpdir("rdsecret"))) return 1;
  int rc = rd_cmd("start", NULL, out, sizeof out);
  if (rc != 0) return rc;
  if (sscanf(out, "%u %u", &g_rd_tls, &g_rd_plain) != 2) return 1;
  /* One more password for "default" (the ":password" form), and an ACL
   * user with the URL-special one.  Single quotes for sh: none holds '\''. */
  snprintf(extra, sizeof extra, "ACL SETUSER default '>%s'", rd_pw);
  if ((rc = rd_cmd("cli", extra, out, sizeof out)) != 0 || !strstr(out, "OK")) return rc ? rc : 1;
  snprintf(extra, sizeof extra, "ACL SETUSER %s on '>%s' '~*' '+@all'", rd_user, rd_pw_x);
  if ((rc = rd_cmd("cli", extra, out, sizeof out)) != 0 || !strstr(out, "OK")) return rc ? rc : 1;
  return 0;
}

static void servers_down(void) {
  if (g_pg_dir) {
    pg_cmd("stop", NULL);
    free(g_pg_dir);
    g_pg_dir = NULL;
  }
  if (g_rd_dir) {
    rd_cmd("stop", NULL, NULL, 0);
    th_remove_dir("check_secrets", g_rd_dir);
    free(g_rd_dir);
    g_rd_dir = NULL;
  }
}

/* ------------------------------------------------------------------ */
/* Handles and checks                                                  */
/* ------------------------------------------------------------------ */

/* A handle at full detail behind the token, which comes from the
 * environment as it would on ECS. */
static health_t *new_handle(void) {
  th_threads_mark(); /* free_handle() waits for the threads started from here */
  health_options_t o;
  health_error_t err = {0};
  health_t *h = NULL;
  health_options_init(&o);
  o.port = 0;
  o.address = "127.0.0.1";
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  setenv("HEALTH_DETAIL", "token", 1);
  setenv("HEALTH_DETAIL_TOKEN", tok, 1);
  int rc = health_options_from_env(&o, &err);
  publish("options_from_env", err.text);
  ck_assert_msg(rc == 0, "health_options_from_env: %s", err.text);
  ck_assert_int_eq(o.detail, HEALTH_DETAIL_TOKEN);
  rc = health_new(&h, &o, &err);
  publish("health_new", err.text);
  ck_assert_msg(rc == 0, "health_new: %s", err.text);
  unsetenv("HEALTH_DETAIL");
  unsetenv("HEALTH_DETAIL_TOKEN");
  return h;
}

/* As in check_postgres: let the library's threads (and libcrypto's
 * per-thread cleanup) finish before Check's child exits. */
static void free_handle(health_t *h) {
  health_free(h);
  th_wait_until(th_single_thread, NULL, TS(2000));
}

/* What a check must show after its runs: pass, or fail with `text`. */
typedef struct expect {
  char name[40];
  int pass;
  char text[64];
  char last_output[HEALTH_ERROR_TEXT_LENGTH]; /* to publish each new output once */
  int seen;
} expect_t;

#define MAX_CHECKS 24
typedef struct run {
  health_t *h;
  expect_t ex[MAX_CHECKS];
  size_t n;
  uint64_t min_runs;
} run_t;

static unsigned g_slack_ms; /* a timeout long enough for a healthy exchange */
static unsigned g_short_ms; /* the timeout of the checks meant to time out */

static health_check_options_t check_opts(run_t *r, unsigned timeout_ms) {
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 250;
  co.timeout_ms = timeout_ms;
  co.failure_threshold = 1;
  /* Half of them in liveness too, so /health shows outputs as well. */
  if (r->n % 2) co.endpoints = HEALTH_READINESS | HEALTH_LIVENESS;
  return co;
}

static expect_t *expect(run_t *r, const char *name, int pass, const char *text) {
  ck_assert_uint_lt(r->n, MAX_CHECKS);
  expect_t *e = &r->ex[r->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->pass = pass;
  snprintf(e->text, sizeof e->text, "%s", text ? text : "");
  return e;
}

static void add_pg(run_t *r, const char *name, const char *conninfo, const char *query,
                   unsigned timeout_ms, int pass, const char *text) {
  health_check_options_t co = check_opts(r, timeout_ms);
  health_postgres_options_t pg;
  health_postgres_options_init(&pg);
  if (query) pg.query = query;
  health_error_t err = {0};
  int rc = health_postgres_add(r->h, name, conninfo, &pg, &co, &err);
  publish("health_postgres_add", err.text);
  ck_assert_msg(rc == 0, "health_postgres_add(%s): %d %s", name, rc, err.text);
  expect(r, name, pass, text);
}

static void add_rd(run_t *r, const char *name, const char *url, const health_redis_options_t *ro,
                   unsigned timeout_ms, int pass, const char *text) {
  health_check_options_t co = check_opts(r, timeout_ms);
  health_error_t err = {0};
  int rc = health_redis_add(r->h, name, url, ro, &co, &err);
  publish("health_redis_add", err.text);
  ck_assert_msg(rc == 0, "health_redis_add(%s): %d %s", name, rc, err.text);
  expect(r, name, pass, text);
}

/* Every check has min_runs results and the passing ones pass; publishes
 * each new output on the way. */
static int cond_all(void *arg) {
  run_t *r = arg;
  int done = 1;
  for (size_t k = 0; k < r->n; k++) {
    expect_t *e = &r->ex[k];
    health_check_info_t i;
    if (health_check_find(r->h, e->name, &i, NULL) != 0) return 0;
    if (!e->seen || strcmp(i.output, e->last_output) != 0) {
      snprintf(e->last_output, sizeof e->last_output, "%s", i.output);
      e->seen = 1;
      publish(e->name, i.output);
    }
    if (i.runs < r->min_runs || (e->pass && i.last_status != HEALTH_PASS)) done = 0;
  }
  return done;
}

/* GET `path` with an optional bearer token; publishes the body. */
static th_response_t get(health_t *h, const char *path, const char *bearer) {
  char req[512];
  int n;
  if (bearer)
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                 "Connection: close\r\n\r\n",
                 path, bearer);
  else
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 path);
  th_response_t resp;
  int rc = th_http_raw(health_port(h), req, (size_t)n, 0, TS(5000), &resp);
  ck_assert_msg(rc == 0, "GET %s failed", path);
  publish(path, resp.head);
  publish(path, resp.body);
  return resp;
}

/* Both endpoints with the token (full detail), without it and with a
 * wrong one (status only). */
static void fetch_bodies(health_t *h, int expect_checks) {
  static const char *const paths[] = {"/ready", "/health"};
  for (size_t k = 0; k < 2; k++) {
    th_response_t r = get(h, paths[k], tok);
    ck_assert_msg(r.status == 200 || r.status == 503, "%s: %d", paths[k], r.status);
    if (expect_checks)
      ck_assert_msg(strstr(r.body, "\"checks\""), "%s at full detail: %s", paths[k], r.body);
    th_response_free(&r);
    const char *others[] = {NULL, tok_wrong};
    for (size_t j = 0; j < 2; j++) {
      r = get(h, paths[k], others[j]);
      ck_assert_msg(!strstr(r.body, "\"checks\""), "%s without the token: %s", paths[k], r.body);
      th_response_free(&r);
    }
  }
}

/* Start, wait for every check to have two results, check what each
 * says, fetch every body, free, and look for leaks. */
static void run_all(run_t *r) {
  health_error_t err = {0};
  int rc = health_start(r->h, &err);
  publish("health_start", err.text);
  ck_assert_msg(rc == 0, "health_start: %s", err.text);
  fetch_bodies(r->h, 1); /* pending */
  r->min_runs = 2;
  int ok = th_wait_until(cond_all, r, TS(15000));
  for (size_t k = 0; k < r->n; k++) {
    expect_t *e = &r->ex[k];
    health_check_info_t i;
    ck_assert_int_eq(health_check_find(r->h, e->name, &i, NULL), 0);
    publish(e->name, i.output);
    ck_assert_msg(ok || i.runs >= r->min_runs, "%s: only %llu runs", e->name,
                  (unsigned long long)i.runs);
    if (e->pass) {
      ck_assert_msg(i.last_status == HEALTH_PASS, "%s: expected pass, got \"%s\"", e->name,
                    i.output);
    } else {
      /* The path meant was taken: the output says why. */
      ck_assert_msg(i.last_status == HEALTH_FAIL, "%s: expected a failure", e->name);
      ck_assert_msg(strstr(i.output, e->text), "%s: \"%s\" lacks \"%s\"", e->name, i.output,
                    e->text);
    }
    /* Not even the host is published. */
    ck_assert_msg(!strstr(i.output, "127.0.0.1") && !strstr(i.output, "localhost") &&
                      !strstr(i.output, "wrong.example"),
                  "%s: %s", e->name, i.output);
  }
  fetch_bodies(r->h, 1);
  th_response_t resp = get(r->h, "/ready", tok);
  for (size_t k = 0; k < r->n; k++)
    ck_assert_msg(strstr(resp.body, r->ex[k].name), "/ready lacks %s: %s", r->ex[k].name,
                  resp.body);
  ck_assert_msg(!strstr(resp.body, "127.0.0.1") && !strstr(resp.body, "localhost"), "%s",
                resp.body);
  th_response_free(&resp);
  free_handle(r->h);
  r->h = NULL;
  ck_assert_msg(g_log.items > 0, "no log line captured");
  assert_clean();
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

START_TEST(test_postgres) {
  if (!g_have_pg) return;
  static run_t r;
  memset(&r, 0, sizeof r);
  r.h = new_handle();
  char s[512];
  unsigned hole_port, closed_port;
  int hole = th_blackhole(&hole_port);
  ck_assert_int_ge(hole, 0);
  int closed = th_blackhole(&closed_port);
  ck_assert_int_ge(closed, 0);
  close(closed); /* nothing listens there now */
  const unsigned P = g_pg_port, T = g_slack_ms;

  /* passing: every way of giving the password */
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password=%s dbname=postgres", P, pg_user,
           pg_pw);
  add_pg(&r, "pg-kv", s, NULL, T, 1, NULL);
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password = '%s' dbname=postgres", P,
           pg_user_x, pg_pw_x);
  add_pg(&r, "pg-kv-quoted", s, NULL, T, 1, NULL);
  snprintf(s, sizeof s, "postgresql://%s:%s@127.0.0.1:%u/postgres", pg_user, pg_pw, P);
  add_pg(&r, "pg-url", s, NULL, T, 1, NULL);
  snprintf(s, sizeof s, "postgres://%s:%s@127.0.0.1:%u/postgres?connect_timeout=10", pg_user_x,
           pg_pw_x_enc, P);
  add_pg(&r, "pg-url-encoded", s, NULL, T, 1, NULL);
  snprintf(s, sizeof s, "postgresql://%s@127.0.0.1:%u/postgres?password=%s", pg_user_x, P,
           pg_pw_x_enc);
  add_pg(&r, "pg-url-query", s, NULL, T, 1, NULL);
  snprintf(s, sizeof s, "postgresql://127.0.0.1:%u/postgres?user=%s&password=%s&sslmode=disable", P,
           pg_user, pg_pw);
  add_pg(&r, "pg-url-query2", s, NULL, T, 1, NULL);

  /* wrong password, unknown user */
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password=%s dbname=postgres", P, pg_user,
           pg_wrong);
  add_pg(&r, "pg-wrong-kv", s, NULL, T, 0, "authentication failed");
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password='%s' dbname=postgres", P,
           pg_user_x, pg_wrong_x);
  add_pg(&r, "pg-wrong-kv-quoted", s, NULL, T, 0, "authentication failed");
  snprintf(s, sizeof s, "postgresql://%s:%s@127.0.0.1:%u/postgres", pg_user_x, pg_wrong_x_enc, P);
  add_pg(&r, "pg-wrong-url", s, NULL, T, 0, "authentication failed");
  snprintf(s, sizeof s, "postgresql://%s@127.0.0.1:%u/postgres?password=%s", pg_user, P,
           pg_wrong_x_enc);
  add_pg(&r, "pg-wrong-query", s, NULL, T, 0, "authentication failed");
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password=%s dbname=postgres", P, pg_nobody,
           pg_pw);
  add_pg(&r, "pg-no-user", s, NULL, T, 0, "authentication failed");
  /* A role named like the password: the server's message quotes it, so
   * the redaction of libpq's text in the log is exercised too. */
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password=%s dbname=postgres", P, pg_wrong,
           pg_wrong);
  add_pg(&r, "pg-echo", s, NULL, T, 0, "authentication failed");

  /* TLS demanded from a server without it */
  snprintf(s, sizeof s, "postgresql://%s:%s@127.0.0.1:%u/postgres?sslmode=require", pg_user_x,
           pg_pw_x_enc, P);
  add_pg(&r, "pg-tls", s, NULL, T, 0, "TLS failed");

  /* refused, timeouts in connect and in the query */
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password=%s", closed_port, pg_user, pg_pw);
  add_pg(&r, "pg-refused", s, NULL, T, 0, "connection refused");
  snprintf(s, sizeof s, "host=127.0.0.1 port=%u user=%s password='%s'", hole_port, pg_user_x,
           pg_pw_x);
  add_pg(&r, "pg-hole-kv", s, NULL, g_short_ms, 0, "timeout after");
  snprintf(s, sizeof s, "postgresql://%s:%s@127.0.0.1:%u/postgres", pg_user_x, pg_pw_x_enc,
           hole_port);
  add_pg(&r, "pg-hole-url", s, NULL, g_short_ms, 0, "timeout after");
  snprintf(s, sizeof s, "postgresql://%s:%s@127.0.0.1:%u/postgres", pg_user, pg_pw, P);
  add_pg(&r, "pg-slow-query", s, "SELECT pg_sleep(3600)", g_short_ms * 2, 0, "timeout after");

  run_all(&r);
  close(hole);
  /* The failures went to the debug log, redacted. */
  ck_assert_msg(strstr(g_log.data, "password authentication failed for user \\\"***\\\""), "%s",
                g_log.data);
  ck_assert_msg(strstr(g_log.data, "pg_error"), "%s", g_log.data);
}
END_TEST

static void ca(char *buf, size_t len, const char *file) {
  snprintf(buf, len, "%s/%s", g_rd_dir, file);
}

START_TEST(test_redis) {
  if (!g_have_rd) return;
  static run_t r;
  memset(&r, 0, sizeof r);
  r.h = new_handle();
  char u[512], cafile[512], wrongca[512];
  unsigned hole_port, closed_port;
  int hole = th_blackhole(&hole_port);
  ck_assert_int_ge(hole, 0);
  int closed = th_blackhole(&closed_port);
  ck_assert_int_ge(closed, 0);
  close(closed);
  ca(cafile, sizeof cafile, "ca.crt");
  ca(wrongca, sizeof wrongca, "wrongca.crt");
  health_redis_options_t ro, wro, mro, iro;
  health_redis_options_init(&ro);
  ro.ca_file = cafile;
  wro = ro;
  wro.ca_file = wrongca;
  mro = ro;
  mro.tls_server_name = "wrong.example";
  iro = wro;
  iro.insecure_skip_verify = 1;
  const unsigned TLS = g_rd_tls, PL = g_rd_plain, T = g_slack_ms;

  /* passing */
  snprintf(u, sizeof u, "rediss://:%s@localhost:%u", rd_pw, TLS);
  add_rd(&r, "rd-tls-pw", u, &ro, T, 1, NULL);
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:%u/1", rd_user, rd_pw_x_enc, TLS);
  add_rd(&r, "rd-tls-user", u, &ro, T, 1, NULL);
  snprintf(u, sizeof u, "redis://%s:%s@127.0.0.1:%u", rd_user, rd_pw_x_enc, PL);
  add_rd(&r, "rd-plain-user", u, NULL, T, 1, NULL);
  snprintf(u, sizeof u, "redis://:%s@127.0.0.1:%u/2", rd_pw, PL);
  add_rd(&r, "rd-plain-pw", u, NULL, T, 1, NULL);
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:%u", rd_user, rd_pw_x_enc, TLS);
  add_rd(&r, "rd-insecure", u, &iro, T, 1, NULL);

  /* wrong password */
  snprintf(u, sizeof u, "rediss://:%s@localhost:%u", rd_wrong, TLS);
  add_rd(&r, "rd-wrong-pw", u, &ro, T, 0, "authentication failed");
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:%u", rd_user, rd_wrong_x_enc, TLS);
  add_rd(&r, "rd-wrong-user-pw", u, &ro, T, 0, "authentication failed");
  snprintf(u, sizeof u, "redis://%s:%s@127.0.0.1:%u", rd_user, rd_wrong, PL);
  add_rd(&r, "rd-wrong-plain", u, NULL, T, 0, "authentication failed");

  /* TLS errors */
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:%u", rd_user, rd_pw_x_enc, TLS);
  add_rd(&r, "rd-wrong-ca", u, &wro, T, 0, "TLS certificate verify failed");
  snprintf(u, sizeof u, "rediss://:%s@localhost:%u", rd_pw, TLS);
  add_rd(&r, "rd-host-mismatch", u, &mro, T, 0, "hostname mismatch");
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:%u", rd_user, rd_pw_x_enc, PL);
  add_rd(&r, "rd-tls-to-plain", u, &ro, T, 0, "does not speak TLS");
  snprintf(u, sizeof u, "redis://:%s@127.0.0.1:%u", rd_pw, TLS);
  add_rd(&r, "rd-plain-to-tls", u, NULL, T, 0, "may require TLS");
  snprintf(u, sizeof u, "redis://%s:%s@127.0.0.1:%u", rd_user, rd_pw_x_enc, TLS);
  add_rd(&r, "rd-plain-to-tls-user", u, NULL, T, 0, "may require TLS");

  /* refused and timeouts */
  snprintf(u, sizeof u, "redis://%s:%s@127.0.0.1:%u", rd_user, rd_pw_x_enc, closed_port);
  add_rd(&r, "rd-refused", u, NULL, T, 0, "connection refused");
  snprintf(u, sizeof u, "redis://:%s@127.0.0.1:%u", rd_pw, hole_port);
  add_rd(&r, "rd-hole", u, NULL, g_short_ms, 0, "timeout after");
  snprintf(u, sizeof u, "rediss://%s:%s@127.0.0.1:%u", rd_user, rd_pw_x_enc, hole_port);
  add_rd(&r, "rd-hole-tls", u, &ro, g_short_ms, 0, "timeout after");

  run_all(&r);
  close(hole);
  ck_assert_msg(strstr(g_log.data, "redis_check_failed"), "%s", g_log.data);
  ck_assert_msg(strstr(g_log.data, "redis_connected"), "%s", g_log.data);
}
END_TEST

/* Malformed input at registration: the error text quotes no secret and no
 * user name; nothing is registered. */
START_TEST(test_malformed) {
  char b[40][256];
  size_t n = 0;
#define BAD(...) snprintf(b[n++], sizeof b[0], __VA_ARGS__)
  /* PostgreSQL */
  BAD("postgresql://%s:%s@127.0.0.1:notaport/postgres", pg_user_x, pg_pw_x_enc);
  BAD("postgresql://%s:%s@[::1/postgres", pg_user, pg_pw);
  BAD("postgresql://%s:%s%%zz@h/db", pg_user, pg_pw);
  BAD("postgresql://%s@h/db?password=%s&bogus=1", pg_user, pg_pw_x_enc);
  BAD("postgresql://%s@h/db?password=%s&sslmode=%s", pg_user, pg_pw, pg_pw);
  BAD("postgresql://%s@h/db?password=%s=x", pg_user, pg_pw);
  BAD("postgresql://%s:%s@h:5432/db", pg_user, pg_pw_x); /* unencoded specials */
  BAD("host=127.0.0.1 user=%s password='%s", pg_user_x, pg_pw_x);
  BAD("host=127.0.0.1 user=%s password=%s bogus", pg_user, pg_pw);
  BAD("host=127.0.0.1 user=%s password=%s port=99999", pg_user, pg_pw);
  BAD("host=127.0.0.1 user=%s password=%s port=%s", pg_user, pg_pw, pg_pw);
  BAD("user=%s password=%s nosuchkeyword=%s", pg_user, pg_pw, pg_pw);
  BAD("host=%s@h password=%s", pg_user, pg_pw);
  BAD("host=h password=%s\"x y", pg_pw);
  size_t npg = n;
  /* Redis */
  BAD("redis://%s:%s@h:99999", rd_user, rd_pw);
  BAD("rediss://%s:%s@h:abc", rd_user, rd_pw_x_enc);
  BAD("redis://:%s%%zz@h", rd_pw);
  BAD("redis://%s:%s@h?db=1", rd_user, rd_pw);
  BAD("redis://%s:%s@h/%s", rd_user, rd_pw, rd_pw);
  BAD("redis://%s:%s@h", rd_user, rd_pw_x); /* unencoded specials */
  BAD("rediss://:%s@h", rd_pw_x);
  BAD("http://%s:%s@h", rd_user, rd_pw);
  BAD("redis://%s:%s@[::1", rd_user, rd_pw);
  BAD("redis://%s:%s@ho st", rd_user, rd_pw);
  BAD("redis://%s@h", rd_user);
  BAD("redis://%s:@h", rd_user);
  BAD("redis://%s:%s%%00@h", rd_user, rd_pw);
  BAD("%s:%s@h:6379", rd_user, rd_pw);
#undef BAD
  health_t *h = new_handle();
  for (size_t k = 0; k < n; k++) {
    if (!(k < npg ? g_pg_built : g_rd_built)) continue;
    health_error_t err = {0};
    int rc = k < npg ? health_postgres_add(h, "bad", b[k], NULL, NULL, &err)
                     : health_redis_add(h, "bad", b[k], NULL, NULL, &err);
    publish(k < npg ? "health_postgres_add" : "health_redis_add", err.text);
    ck_assert_msg(rc == HEALTH_EURL, "#%zu accepted (%d): %s", k, rc, err.text);
    ck_assert_int_eq(err.code, HEALTH_EURL);
    ck_assert_msg(strstr(err.text, k < npg ? "malformed PostgreSQL" : "invalid Redis URL"),
                  "#%zu: %s", k, err.text);
    health_check_info_t i;
    ck_assert_int_eq(health_check_find(h, "bad", &i, NULL), HEALTH_ENOENT);
  }
  /* The checks that do register log their URL at debug level, masked. */
  char u[256];
  health_error_t err = {0};
  snprintf(u, sizeof u, "rediss://%s:%s@localhost:1", rd_user, rd_pw_x_enc);
  if (g_rd_built) ck_assert_int_eq(health_redis_add(h, "good-rd", u, NULL, NULL, &err), 0);
  snprintf(u, sizeof u, "postgresql://%s:%s@localhost:1/db?password=%s", pg_user_x, pg_pw_x_enc,
           pg_pw);
  if (g_pg_built) ck_assert_int_eq(health_postgres_add(h, "good-pg", u, NULL, NULL, &err), 0);
  free_handle(h);
  assert_clean();
}
END_TEST

/* The token itself: a malformed one is rejected without being quoted, a
 * wrong one gets no detail, and neither lands in the log. */
START_TEST(test_token) {
  health_options_t o;
  health_error_t err = {0};
  health_options_init(&o);
  setenv("HEALTH_DETAIL", "token", 1);
  setenv("HEALTH_DETAIL_TOKEN", tok_bad, 1);
  ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
  publish("options_from_env", err.text);
  ck_assert_msg(strstr(err.text, "HEALTH_DETAIL_TOKEN"), "%s", err.text);
  unsetenv("HEALTH_DETAIL");
  unsetenv("HEALTH_DETAIL_TOKEN");
  /* The same through the struct. */
  health_options_init(&o);
  o.detail = HEALTH_DETAIL_TOKEN;
  o.detail_token = tok_bad;
  health_t *h = NULL;
  int rc = health_new(&h, &o, &err);
  publish("health_new", err.text);
  if (rc == 0) health_free(h);
  ck_assert_int_eq(rc, HEALTH_EINVAL);

  h = new_handle();
  health_error_t e2 = {0};
  ck_assert_int_eq(health_start(h, &e2), 0);
  fetch_bodies(h, 1);
  /* An Authorization header that is all token, or mangled. */
  char bearer[128];
  snprintf(bearer, sizeof bearer, "%s%s", tok, tok);
  th_response_t r = get(h, "/ready", bearer);
  ck_assert_ptr_null(strstr(r.body, "\"checks\""));
  th_response_free(&r);
  free_handle(h);
  assert_clean();
}
END_TEST

static Suite *secrets_suite(void) {
  Suite *s = suite_create("secrets");
  TCase *tc = tcase_create("secrets");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, clear_texts, NULL);
  tcase_add_test(tc, test_malformed);
  tcase_add_test(tc, test_token);
  tcase_add_test(tc, test_postgres);
  tcase_add_test(tc, test_redis);
  suite_add_tcase(s, tc);
  return s;
}

/* 1 if this build has the checker `pg` (1) or Redis (0). */
static int compiled_in(int pg) {
  health_t *h = NULL;
  health_options_t o;
  health_options_init(&o);
  o.handle_signals = 0;
  if (health_new(&h, &o, NULL) != 0) return 1; /* let the tests say why */
  int rc = pg ? health_postgres_add(h, "probe", "host=127.0.0.1", NULL, NULL, NULL)
              : health_redis_add(h, "probe", "redis://localhost", NULL, NULL, NULL);
  health_free(h);
  return rc != HEALTH_ENOTSUP;
}

int main(void) {
  make_secrets();
  g_slack_ms = TS(3000);
  g_short_ms = TS(300);
  int missing = 0, rc;
  g_pg_built = compiled_in(1);
  g_rd_built = compiled_in(0);
  if (!g_pg_built) {
    fprintf(stderr, "check_secrets: built without libpq; PostgreSQL skipped\n");
    missing++;
  } else if ((rc = pg_up()) == 0) {
    g_have_pg = 1;
  } else if (th_server_skip(rc, "check_secrets",
                            "PostgreSQL is not installed; PostgreSQL skipped")) {
    missing++;
  } else {
    fprintf(stderr, "check_secrets: could not start PostgreSQL (%d)\n", rc);
    servers_down();
    return 1;
  }
  if (!g_rd_built) {
    fprintf(stderr, "check_secrets: built without the Redis checker; Redis skipped\n");
    missing++;
  } else if ((rc = rd_up()) == 0) {
    g_have_rd = 1;
  } else if (th_server_skip(rc, "check_secrets",
                            "redis-server with TLS is not available; Redis skipped")) {
    missing++;
  } else {
    fprintf(stderr, "check_secrets: could not start Redis (%d)\n", rc);
    servers_down();
    return 1;
  }
  if (missing == 2) {
    servers_down();
    return 77;
  }
  int failed = th_run_suite(secrets_suite(), CK_ENV, CK_FORK_GETENV);
  servers_down();
  return failed ? 1 : 0;
}
