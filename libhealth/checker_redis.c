/*
 * The Redis checker: one kept connection per check, plaintext or TLS, with
 * hiredis used only to format commands and parse replies (hiredis 0.14 has
 * no TLS, and owning the socket is what keeps every phase under the run's
 * deadline: DNS, connect, handshake, AUTH, SELECT, PING, ROLE).
 *
 * Outputs are short and say what to fix without naming hosts or users;
 * the full story (URL with the password masked, server error text) goes to
 * the debug log.
 */
#include "health-int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"
#include "url.h"

#ifdef HAVE_REDIS
#include <hiredis/hiredis.h>
#endif

HEALTH_EXPORT void health_redis_options_init(health_redis_options_t *o) {
  if (o) memset(o, 0, sizeof *o);
}

#ifndef HAVE_REDIS

HEALTH_EXPORT int health_add_redis(health_t *h, const char *name,
                                   const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts,
                                   health_error_t *err) {
  (void)h, (void)name, (void)url, (void)redis, (void)opts;
  return health__err(err, HEALTH_ENOTSUP,
                     "libhealth was built without the Redis checker "
                     "(needs hiredis and OpenSSL)");
}

#else

/* Our own outcome besides HEALTH__IO_*: the bytes are not RESP. */
#define IO_PROTOCOL (-4)

/* A TLS handshake that got no byte back for this long (or half the budget)
 * triggers a plaintext probe, which gets at most PROBE_MAX_MS. */
#define PROBE_AFTER_MS 500
#define PROBE_MAX_MS 250

#define NO_TLS_HINT "no Redis reply: server may require TLS (use rediss://)"
#define PLAIN_HINT \
  "TLS handshake failed: server does not speak TLS (plaintext Redis? use redis://)"

typedef struct redis_state {
  health_t *h;
  char *name;
  char *client_name;  /* CLIENT SETNAME, for operators reading CLIENT LIST */
  char *display_url;  /* password masked, for debug logs */
  char *verify_name;  /* tls_server_name or the URL host */
  health__redis_url_t url;
  int verify, require_master, client_cert;
  unsigned timeout_ms;
  struct ssl_ctx_st *ctx;

  health__repeat_t logrep; /* the same failure every interval is logged once */
  health__conn_t conn;
  redisReader *reader;
  unsigned replies; /* replies on this connection: 0 = fresh */
  health__backoff_t backoff; /* failed connection attempts (backoff.c) */
  struct sockaddr_storage addr;
  socklen_t addrlen;

  /* per run */
  uint64_t deadline;
  char out[HEALTH_ERROR_TEXT_LENGTH]; /* curated, for the result */
  char detail[512];                   /* for the debug log */
  const char *phase;
} redis_state_t;

static void drop(redis_state_t *st) {
  health__conn_close(&st->conn);
  if (st->reader) redisReaderFree(st->reader);
  st->reader = NULL;
  st->replies = 0;
}

static void state_free(void *arg) {
  redis_state_t *st = arg;
  if (!st) return;
  drop(st);
  health__tls_ctx_free(st->ctx);
  health__redis_url_free(&st->url);
  free(st->name);
  free(st->client_name);
  free(st->display_url);
  free(st->verify_name);
  free(st);
}

static int fail(redis_state_t *st, int rc, const char *fmt, ...)
    HEALTH_PRINTF(3, 4);
static int fail(redis_state_t *st, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->out, sizeof st->out, fmt, ap);
  va_end(ap);
  return rc;
}

static int timed_out(redis_state_t *st) {
  return fail(st, HEALTH__IO_TIMEOUT, "timeout after %u ms (%s)", st->timeout_ms,
              st->phase);
}

/* ---- resolution, bounded by the deadline ---- */

static int resolve(redis_state_t *st, struct addrinfo **out) {
  struct addrinfo hints;
  char port[8];
  snprintf(port, sizeof port, "%u", st->url.port);
  *out = NULL;
  st->phase = "dns";
  if (st->url.host_is_ip) {
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(st->url.host, port, &hints, out);
    if (rc) return fail(st, HEALTH__IO_ERROR, "invalid address: %s", gai_strerror(rc));
    return 0;
  }
  const char *why;
  int rc = health__resolve(st->url.host, port, st->deadline, out, &why);
  if (rc == 1) return timed_out(st);
  if (rc) return fail(st, HEALTH__IO_ERROR, "DNS resolution failed: %s", why);
  return 0;
}

/* ---- TCP ---- */

/* A connected non-blocking socket or -1; *err gets the errno. */
static int tcp_connect(const struct sockaddr *sa, socklen_t len,
                       uint64_t deadline, int *err) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1, soerr = 0;
  socklen_t sl = sizeof soerr;
  if (fd < 0) { *err = errno; return -1; }
  if (connect(fd, sa, len) < 0) {
    if (errno != EINPROGRESS) { *err = errno; close(fd); return -1; }
    int w = health__wait_fd(fd, POLLOUT, deadline);
    if (w <= 0) { *err = w == 0 ? ETIMEDOUT : errno; close(fd); return -1; }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    if (soerr) { *err = soerr; close(fd); return -1; }
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static const char *errno_text(int e, char *buf, size_t len) {
  snprintf(buf, len, "%s", strerror(e));
  if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

/* Does a plaintext Redis answer on this address?  Explains a TLS handshake
 * that got no reply at all. */
static int plaintext_probe(redis_state_t *st) {
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  health__conn_t pc;
  char b[1];
  int e;
  uint64_t until = health__now_ms() + PROBE_MAX_MS;
  if (until > st->deadline) until = st->deadline;
  health__conn_init(&pc);
  pc.fd = tcp_connect((struct sockaddr *)&st->addr, st->addrlen, until, &e);
  if (pc.fd < 0) return 0;
  int yes = health__conn_write(&pc, ping, sizeof ping - 1, until, NULL, 0) == 0 &&
            health__conn_read(&pc, b, 1, until, NULL, 0) == 1 &&
            (b[0] == '+' || b[0] == '-');
  health__conn_close(&pc);
  return yes;
}

/* ---- RESP round trips ---- */

/* Explain an I/O failure, knowing whether anything RESP ever came back. */
static int io_fail(redis_state_t *st, int rc, const char *why) {
  int fresh_plain = !st->url.tls && st->replies == 0;
  int tls_bytes = st->conn.npeek && st->conn.peek[0] >= 0x14 && st->conn.peek[0] <= 0x17;
  snprintf(st->detail, sizeof st->detail, "%s", why);
  if (fresh_plain && rc == HEALTH__IO_TIMEOUT && st->conn.npeek == 0)
    return fail(st, rc, "timeout after %u ms (%s): " NO_TLS_HINT, st->timeout_ms, st->phase);
  if (rc == HEALTH__IO_TIMEOUT) return timed_out(st);
  if (fresh_plain && tls_bytes) return fail(st, rc, NO_TLS_HINT);
  /* A TLS port drops a plaintext client, often with a reset (it closes
   * with our bytes unread): say what happened, and the likely cause. */
  if (fresh_plain && rc == HEALTH__IO_CLOSED && st->conn.npeek == 0)
    return fail(st, rc, "%s, " NO_TLS_HINT, why);
  if (rc == IO_PROTOCOL) return fail(st, rc, "protocol error: the server did not answer in RESP");
  /* A TLS 1.3 server checks the client certificate after our handshake
   * has completed; its alert is often lost to the reset that follows. */
  if (rc == HEALTH__IO_CLOSED && st->url.tls && st->replies == 0 &&
      (st->conn.cert_requested || st->client_cert))
    return fail(st, rc, "%s right after the TLS handshake (%s)", why,
                st->conn.cert_requested ? "the server requires a client certificate"
                                        : "was the client certificate rejected?");
  return fail(st, rc, "%s", why);
}

static int command(redis_state_t *st, int argc, const char **argv,
                   const size_t *lens, redisReply **out) {
  char *cmd = NULL, buf[4096], why[200] = "";
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  *out = NULL;
  if (n < 0) return fail(st, HEALTH__IO_ERROR, "out of memory");
  int rc = health__conn_write(&st->conn, cmd, (size_t)n, st->deadline, why, sizeof why);
  redisFreeCommand(cmd);
  if (rc) return io_fail(st, rc, why);
  for (;;) {
    void *reply = NULL;
    if (redisReaderGetReply(st->reader, &reply) != REDIS_OK) {
      snprintf(why, sizeof why, "RESP parse error: %s", st->reader->errstr);
      return io_fail(st, IO_PROTOCOL, why);
    }
    if (reply) {
      st->replies++;
      *out = reply;
      return 0;
    }
    ssize_t got = health__conn_read(&st->conn, buf, sizeof buf, st->deadline, why, sizeof why);
    if (got < 0) return io_fail(st, (int)got, why);
    if (redisReaderFeed(st->reader, buf, (size_t)got) != REDIS_OK)
      return io_fail(st, IO_PROTOCOL, "RESP reader failed");
  }
}

/* The error code of an error reply ("WRONGPASS"), at most 31 characters. */
static const char *err_code(const redisReply *rep, char *buf, size_t len) {
  size_t n = strcspn(rep->str, " \r\n");
  if (n >= len) n = len - 1;
  memcpy(buf, rep->str, n);
  buf[n] = 0;
  return buf;
}

/* A command that must not fail; `what` names it in the output. */
static int expect_ok(redis_state_t *st, const char *what, int argc,
                     const char **argv, const size_t *lens, redisReply **keep) {
  redisReply *rep;
  char code[32];
  int rc = command(st, argc, argv, lens, &rep);
  if (rc) return rc;
  if (rep->type == REDIS_REPLY_ERROR) {
    snprintf(st->detail, sizeof st->detail, "%s", rep->str);
    err_code(rep, code, sizeof code);
    if (strstr(rep->str, "without any password configured"))
      rc = fail(st, IO_PROTOCOL, "%s failed: the server has no password set (remove it from the URL)", what);
    else if (strcmp(code, "NOAUTH") == 0)
      rc = fail(st, IO_PROTOCOL, "%s failed: the server requires a password (NOAUTH)", what);
    else if (strstr(rep->str, "DB index is out of range"))
      rc = fail(st, IO_PROTOCOL, "%s failed: database number out of range", what);
    else
      rc = fail(st, IO_PROTOCOL, "%s failed (%s)", what, code);
    freeReplyObject(rep);
    return rc;
  }
  if (keep) *keep = rep;
  else freeReplyObject(rep);
  return 0;
}

/* ---- connect: resolve, TCP, TLS, AUTH, SETNAME, SELECT ---- */

static int handshake(redis_state_t *st) {
  char why[200] = "";
  uint64_t now = health__now_ms();
  uint64_t quiet = st->deadline > now ? (st->deadline - now) / 2 : 0;
  st->phase = "tls handshake";
  if (quiet > PROBE_AFTER_MS) quiet = PROBE_AFTER_MS;
  /* A TLS server answers the ClientHello within a round trip; a plaintext
   * Redis waits silently for a newline (the ClientHello has NULs before
   * any '\n').  After a quiet spell, ask the same address in plaintext. */
  int rc = health__tls_handshake(&st->conn, st->ctx, st->verify_name, st->verify,
                                 now + quiet, why, sizeof why);
  if (rc == HEALTH__IO_TIMEOUT && st->conn.npeek == 0 && plaintext_probe(st)) {
    snprintf(st->detail, sizeof st->detail, "no TLS reply; a plaintext PING was answered");
    return fail(st, rc, PLAIN_HINT);
  }
  if (rc == HEALTH__IO_TIMEOUT)
    rc = health__tls_handshake(&st->conn, st->ctx, st->verify_name, st->verify,
                               st->deadline, why, sizeof why);
  if (rc == 0) return 0;
  snprintf(st->detail, sizeof st->detail, "%s", why);
  if (rc == HEALTH__IO_TIMEOUT) return timed_out(st);
  if (st->conn.npeek && (st->conn.peek[0] < 0x14 || st->conn.peek[0] > 0x17))
    return fail(st, rc, PLAIN_HINT);
  return fail(st, rc, "%s", why);
}

static int redis_connect(redis_state_t *st) {
  struct addrinfo *res, *ai;
  char ebuf[96];
  int e = 0, rc;
  uint64_t t0 = health__now_ms();

  if ((rc = resolve(st, &res)) != 0) return rc;
  st->phase = "connect";
  for (ai = res; ai; ai = ai->ai_next) {
    st->conn.fd = tcp_connect(ai->ai_addr, ai->ai_addrlen, st->deadline, &e);
    if (st->conn.fd >= 0) {
      memcpy(&st->addr, ai->ai_addr, ai->ai_addrlen);
      st->addrlen = ai->ai_addrlen;
      break;
    }
    if (e == ETIMEDOUT && health__now_ms() >= st->deadline) break;
  }
  freeaddrinfo(res);
  if (st->conn.fd < 0) {
    if (e == ETIMEDOUT && health__now_ms() >= st->deadline) return timed_out(st);
    return fail(st, HEALTH__IO_ERROR, "connect failed: %s", errno_text(e, ebuf, sizeof ebuf));
  }
  if (!(st->reader = redisReaderCreate())) return fail(st, HEALTH__IO_ERROR, "out of memory");

  if (st->url.tls) {
    if (!st->verify)
      health__log(st->h, HEALTH_LOG_WARN, "redis_tls_insecure", "check", st->name,
                  "message", "connecting WITHOUT verifying the server certificate "
                  "(insecure_skip_verify)", NULL);
    if ((rc = handshake(st)) != 0) return rc;
  }
  if (st->url.password) {
    const char *argv[3] = {"AUTH", st->url.user, st->url.password};
    size_t lens[3] = {4, 0, strlen(st->url.password)};
    st->phase = "auth";
    if (st->url.user) {
      lens[1] = strlen(st->url.user);
      rc = expect_ok(st, "authentication", 3, argv, lens, NULL);
    } else {
      argv[1] = st->url.password;
      lens[1] = lens[2];
      rc = expect_ok(st, "authentication", 2, argv, lens, NULL);
    }
    if (rc) return rc;
  }
  {
    /* Naming the connection is a courtesy; an ACL may forbid it. */
    const char *argv[3] = {"CLIENT", "SETNAME", st->client_name};
    size_t lens[3] = {6, 7, strlen(st->client_name)};
    redisReply *rep;
    st->phase = "client setname";
    if ((rc = command(st, 3, argv, lens, &rep)) != 0) return rc;
    if (rep->type == REDIS_REPLY_ERROR)
      health__log(st->h, HEALTH_LOG_DEBUG, "redis_setname_refused", "check", st->name,
                  "reply", rep->str, NULL);
    freeReplyObject(rep);
  }
  if (st->url.db) {
    char db[16];
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, 0};
    lens[1] = (size_t)snprintf(db, sizeof db, "%u", st->url.db);
    st->phase = "select";
    if ((rc = expect_ok(st, "SELECT", 2, argv, lens, NULL)) != 0) return rc;
  }
  char ms[32];
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(health__now_ms() - t0));
  health__log(st->h, HEALTH_LOG_DEBUG, "redis_connected", "check", st->name,
              "url", st->display_url, "#connect_ms", ms, NULL);
  return 0;
}

/* ---- the run ---- */

static int ping_and_role(redis_state_t *st, double *rtt_ms) {
  const char *ping[1] = {"PING"}, *role[1] = {"ROLE"};
  size_t plen[1] = {4};
  redisReply *rep = NULL;
  int rc;
  uint64_t t0 = health__now_us();

  st->phase = "ping";
  if ((rc = expect_ok(st, "PING", 1, ping, plen, &rep)) != 0) return rc;
  *rtt_ms = (double)(health__now_us() - t0) / 1000.0;
  int pong = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
  freeReplyObject(rep);
  if (!pong) return fail(st, IO_PROTOCOL, "unexpected reply to PING");
  if (!st->require_master) return 0;

  st->phase = "role";
  if ((rc = expect_ok(st, "ROLE", 1, role, plen, &rep)) != 0) return rc;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
      rep->element[0]->type != REDIS_REPLY_STRING) {
    rc = fail(st, IO_PROTOCOL, "unexpected reply to ROLE");
  } else if (strcmp(rep->element[0]->str, "master") != 0) {
    /* Dropping the connection matters here: after a failover the DNS name
     * points at the new master, and only a reconnect re-resolves it. */
    rc = fail(st, IO_PROTOCOL, "not a master (role: %.16s)", rep->element[0]->str);
  }
  freeReplyObject(rep);
  return rc;
}

static void redis_run(health_result_t *r, void *arg) {
  redis_state_t *st = arg;
  unsigned left = health_result_remaining_ms(r);
  /* Finish a little early: a result published after the deadline is
   * discarded in favour of the scheduler's plain "timeout". */
  unsigned margin = left / 20 < 25 ? left / 20 : 25;
  double rtt = 0;
  int rc = 0;

  st->deadline = health__now_ms() + left - margin;
  st->out[0] = st->detail[0] = 0;
  st->phase = "ping";
  if (st->conn.fd >= 0 && health__conn_stale(&st->conn)) {
    health__log(st->h, HEALTH_LOG_DEBUG, "redis_reconnect", "check", st->name,
                "reason", "connection closed while idle", NULL);
    drop(st);
  }
  if (st->conn.fd < 0) {
    /* A failed attempt asks for a jittered retry (backoff.c). */
    rc = redis_connect(st);
    if (rc) health__backoff_failed(&st->backoff, r);
    else health__backoff_reset(&st->backoff);
  }
  if (rc == 0) rc = ping_and_role(st, &rtt);
  if (rc == 0) {
    health_result_observe(r, rtt, "ms");
    health_result_set(r, HEALTH_PASS, NULL);
    /* Without kept connections (health_set_fleet): connect, check, close. */
    if (!health__keep_connections(r)) drop(st);
    return;
  }
  drop(st); /* the next run starts over, re-resolving the host */
  char detail[sizeof st->detail];
  health__redact_secret(st->detail, st->url.password, detail, sizeof detail);
  health__log_repeat(st->h, &st->logrep, st->name, HEALTH_LOG_DEBUG, "redis_check_failed", "check",
                     st->name, "url", st->display_url, "phase", st->phase, "output", st->out,
                     "detail", detail, NULL);
  health_result_set(r, HEALTH_FAIL, "%s", st->out);
}

/* ---- registration ---- */

static char *display_url(const health__redis_url_t *u) {
  char *s = NULL;
  int v6 = u->host_is_ip == 6;
  if (asprintf(&s, "%s://%s%s%s%s%s%s:%u/%u", u->tls ? "rediss" : "redis",
               u->user ? u->user : "", u->password ? ":***" : "",
               u->password ? "@" : "", v6 ? "[" : "", u->host, v6 ? "]" : "",
               u->port, u->db) < 0)
    return NULL;
  return s;
}

HEALTH_EXPORT int health_add_redis(health_t *h, const char *name,
                                   const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts,
                                   health_error_t *err) {
  health_redis_options_t o;
  redis_state_t *st;
  char ebuf[200];
  int rc;

  if (!h || !name || !url)
    return health__err(err, HEALTH_EINVAL, "health_add_redis: handle, name and url are required");
  if (redis) o = *redis;
  else health_redis_options_init(&o);
  if ((o.insecure_skip_verify != 0 && o.insecure_skip_verify != 1) ||
      (o.require_master != 0 && o.require_master != 1))
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': insecure_skip_verify and require_master must be 0 or 1 (got %d, %d)",
                       name, o.insecure_skip_verify, o.require_master);
  if (o.tls_server_name && !*o.tls_server_name)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': tls_server_name is empty", name);
  if (!(st = calloc(1, sizeof *st))) return health__err(err, HEALTH_ENOMEM, "out of memory");
  health__conn_init(&st->conn);
  st->h = h;
  st->verify = !o.insecure_skip_verify;
  st->require_master = o.require_master;
  st->client_cert = o.cert_file != NULL;

  rc = health__redis_url_parse(url, &st->url, ebuf, sizeof ebuf);
  if (rc) {
    rc = health__err(err, rc, "check '%.64s': invalid Redis URL: %s", name, ebuf);
    goto fail;
  }
  if (st->url.tls) {
    rc = health__tls_ctx_new(&st->ctx, o.ca_file, o.ca_dir, o.cert_file, o.key_file,
                             st->verify, ebuf, sizeof ebuf);
    if (rc) {
      rc = health__err(err, rc, "check '%.64s': %s", name, ebuf);
      goto fail;
    }
  } else if (o.ca_file || o.ca_dir || o.cert_file || o.key_file || o.tls_server_name ||
             o.insecure_skip_verify) {
    health__log(h, HEALTH_LOG_WARN, "redis_tls_options_ignored", "check", name,
                "message", "TLS options given for a redis:// URL (plaintext); "
                "use rediss:// for TLS", NULL);
  }
  st->name = strdup(name);
  st->verify_name = strdup(o.tls_server_name ? o.tls_server_name : st->url.host);
  st->display_url = display_url(&st->url);
  if (asprintf(&st->client_name, "libhealth-%s", name) < 0) st->client_name = NULL;
  if (!st->name || !st->verify_name || !st->display_url || !st->client_name) {
    rc = health__err(err, HEALTH_ENOMEM, "out of memory");
    goto fail;
  }

  rc = health__add_check(h, name, redis_run, st, state_free, opts, "datastore", err);
  if (rc) goto fail;
  /* The timeout as the engine resolved it, for "timeout after N ms". */
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->eng.nchecks; i++)
    if (h->eng.checks[i]->arg == st) st->timeout_ms = h->eng.checks[i]->timeout_ms;
  pthread_mutex_unlock(&h->lock);

  if (st->url.tls && !st->verify)
    health__log(h, HEALTH_LOG_WARN, "redis_tls_insecure", "check", name, "message",
                "TLS certificate verification is DISABLED (insecure_skip_verify): "
                "anyone on the path can impersonate the server", NULL);
  health__log(h, HEALTH_LOG_DEBUG, "redis_check_added", "check", name, "url",
              st->display_url, NULL);
  return 0;
fail:
  state_free(st);
  return rc;
}

#endif /* HAVE_REDIS */
