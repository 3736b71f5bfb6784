/*
 * The Redis checker's connection and round trips (checkers/redis.h):
 * resolve, TCP, TLS handshake (with a plaintext probe that explains a
 * silent handshake), AUTH, CLIENT SETNAME, SELECT, and RESP commands read
 * with hiredis's parser, every step ending at the run's deadline.
 */
#include "checkers/redis.h"

#ifdef HAVE_REDIS

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int health__redis_fail(redis_state_t *st, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->out, sizeof st->out, fmt, ap);
  va_end(ap);
  return rc;
}

static int timed_out(redis_state_t *st) {
  health__checker_timeout_text(st->ck, st->phase, st->out, sizeof st->out);
  return HEALTH__IO_TIMEOUT;
}

/* ---- resolution, bounded by the deadline ---- */

static int resolve(redis_state_t *st, struct addrinfo **out) {
  struct addrinfo hints;
  char port[8];
  snprintf(port, sizeof port, "%u", st->url.port);
  *out = NULL;
  health__redis_phase(st, "dns");
  if (st->url.host_is_ip) {
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(st->url.host, port, &hints, out);
    if (rc)
      return health__redis_fail(st, HEALTH__IO_ERROR, "invalid address: %s", gai_strerror(rc));
    return 0;
  }
  const char *why;
  int rc =
      health__resolve(health__checker_dns(st->ck), st->url.host, port, st->deadline, out, &why);
  if (rc == 1) {
    timed_out(st);
    if (why) {
      size_t n = strlen(st->out);
      snprintf(st->out + n, sizeof st->out - n, ": %s", why);
    }
    return HEALTH__IO_TIMEOUT;
  }
  if (rc) return health__redis_fail(st, HEALTH__IO_ERROR, "DNS resolution failed: %s", why);
  return 0;
}

/* ---- TCP ---- */

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
  pc.fd = health__tcp_connect((struct sockaddr *)&st->addr, st->addrlen, until, &e);
  if (pc.fd < 0) return 0;
  int yes = health__conn_write(&pc, ping, sizeof ping - 1, until, NULL, 0) == 0 &&
            health__conn_read(&pc, b, 1, until, NULL, 0) == 1 && (b[0] == '+' || b[0] == '-');
  health__conn_close(&pc);
  return yes;
}

/* ---- RESP round trips ---- */

/* Explain an I/O failure, knowing whether anything RESP ever came back. */
static int io_fail(redis_state_t *st, int rc, const char *why) {
  int fresh_plain = !st->url.tls && st->replies == 0;
  int tls_bytes = st->conn.npeek && st->conn.peek[0] >= 0x14 && st->conn.peek[0] <= 0x17;
  snprintf(st->detail, sizeof st->detail, "%s", why);
  if (fresh_plain && rc == HEALTH__IO_TIMEOUT && st->conn.npeek == 0) {
    char t[96];
    health__checker_timeout_text(st->ck, st->phase, t, sizeof t);
    return health__redis_fail(st, rc, "%s: " NO_TLS_HINT, t);
  }
  if (rc == HEALTH__IO_TIMEOUT) return timed_out(st);
  if (fresh_plain && tls_bytes) return health__redis_fail(st, rc, NO_TLS_HINT);
  /* A TLS port drops a plaintext client, often with a reset (it closes
   * with our bytes unread): say what happened, and the likely cause. */
  if (fresh_plain && rc == HEALTH__IO_CLOSED && st->conn.npeek == 0)
    return health__redis_fail(st, rc, "%s, " NO_TLS_HINT, why);
  if (rc == IO_PROTOCOL)
    return health__redis_fail(st, rc, "protocol error: the server did not answer in RESP");
  /* A TLS 1.3 server checks the client certificate after our handshake
   * has completed; its alert is often lost to the reset that follows. */
  if (rc == HEALTH__IO_CLOSED && st->url.tls && st->replies == 0 &&
      (st->conn.cert_requested || st->client_cert))
    return health__redis_fail(st, rc, "%s right after the TLS handshake (%s)", why,
                              st->conn.cert_requested ? "the server requires a client certificate"
                                                      : "was the client certificate rejected?");
  return health__redis_fail(st, rc, "%s", why);
}

static int command(redis_state_t *st, int argc, const char **argv, const size_t *lens,
                   redisReply **out) {
  char *cmd = NULL, buf[4096], why[200] = "";
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  *out = NULL;
  if (n < 0) return health__redis_fail(st, HEALTH__IO_ERROR, "out of memory");
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
int health__redis_expect_ok(redis_state_t *st, const char *what, int argc, const char **argv,
                            const size_t *lens, redisReply **keep) {
  redisReply *rep;
  char code[32];
  int rc = command(st, argc, argv, lens, &rep);
  if (rc) return rc;
  if (rep->type == REDIS_REPLY_ERROR) {
    snprintf(st->detail, sizeof st->detail, "%s", rep->str);
    err_code(rep, code, sizeof code);
    if (strstr(rep->str, "without any password configured"))
      rc = health__redis_fail(st, IO_PROTOCOL,
                              "%s failed: the server has no password set (remove it from the URL)",
                              what);
    else if (strcmp(code, "NOAUTH") == 0)
      rc = health__redis_fail(st, IO_PROTOCOL, "%s failed: the server requires a password (NOAUTH)",
                              what);
    else if (strstr(rep->str, "DB index is out of range"))
      rc = health__redis_fail(st, IO_PROTOCOL, "%s failed: database number out of range", what);
    else rc = health__redis_fail(st, IO_PROTOCOL, "%s failed (%s)", what, code);
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
  health__redis_phase(st, "tls handshake");
  if (quiet > PROBE_AFTER_MS) quiet = PROBE_AFTER_MS;
  struct ssl_ctx_st *ctx = health__checker_tls_ctx(st->ck, st->tls);
  /* A TLS server answers the ClientHello within a round trip; a plaintext
   * Redis waits silently for a newline (the ClientHello has NULs before
   * any '\n').  After a quiet spell, ask the same address in plaintext. */
  int rc = health__tls_handshake(&st->conn, ctx, st->verify_name, st->verify, now + quiet, why,
                                 sizeof why);
  if (rc == HEALTH__IO_TIMEOUT && st->conn.npeek == 0 && plaintext_probe(st)) {
    snprintf(st->detail, sizeof st->detail, "no TLS reply; a plaintext PING was answered");
    return health__redis_fail(st, rc, PLAIN_HINT);
  }
  if (rc == HEALTH__IO_TIMEOUT)
    rc = health__tls_handshake(&st->conn, ctx, st->verify_name, st->verify, st->deadline, why,
                               sizeof why);
  if (rc == 0) return 0;
  snprintf(st->detail, sizeof st->detail, "%s", why);
  if (rc == HEALTH__IO_TIMEOUT) return timed_out(st);
  if (st->conn.npeek && (st->conn.peek[0] < 0x14 || st->conn.peek[0] > 0x17))
    return health__redis_fail(st, rc, PLAIN_HINT);
  return health__redis_fail(st, rc, "%s", why);
}

int health__redis_connect(redis_state_t *st) {
  const char *name = health__checker_name(st->ck);
  struct addrinfo *res, *ai;
  char ebuf[96];
  int e = 0, rc;
  uint64_t t0 = health__now_ms();

  if ((rc = resolve(st, &res)) != 0) return rc;
  health__redis_phase(st, "connect");
  for (ai = res; ai; ai = ai->ai_next) {
    st->conn.fd = health__tcp_connect(ai->ai_addr, ai->ai_addrlen, st->deadline, &e);
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
    return health__redis_fail(st, HEALTH__IO_ERROR, "connect failed: %s",
                              health__errno_text(e, ebuf, sizeof ebuf));
  }
  if (!(st->reader = redisReaderCreate()))
    return health__redis_fail(st, HEALTH__IO_ERROR, "out of memory");

  if (st->url.tls) {
    if (!st->verify)
      health__checker_log(st->ck, HEALTH_LOG_WARN, "redis_tls_insecure", "check", name, "message",
                          "connecting WITHOUT verifying the server certificate "
                          "(insecure_skip_verify)",
                          NULL);
    if ((rc = handshake(st)) != 0) return rc;
  }
  if (st->url.password) {
    const char *argv[3] = {"AUTH", st->url.user, st->url.password};
    size_t lens[3] = {4, 0, strlen(st->url.password)};
    health__redis_phase(st, "auth");
    if (st->url.user) {
      lens[1] = strlen(st->url.user);
      rc = health__redis_expect_ok(st, "authentication", 3, argv, lens, NULL);
    } else {
      argv[1] = st->url.password;
      lens[1] = lens[2];
      rc = health__redis_expect_ok(st, "authentication", 2, argv, lens, NULL);
    }
    if (rc) return rc;
  }
  {
    /* Naming the connection is a courtesy; an ACL may forbid it. */
    const char *argv[3] = {"CLIENT", "SETNAME", st->client_name};
    size_t lens[3] = {6, 7, strlen(st->client_name)};
    redisReply *rep;
    health__redis_phase(st, "client setname");
    if ((rc = command(st, 3, argv, lens, &rep)) != 0) return rc;
    if (rep->type == REDIS_REPLY_ERROR)
      health__checker_log(st->ck, HEALTH_LOG_DEBUG, "redis_setname_refused", "check", name, "reply",
                          rep->str, NULL);
    freeReplyObject(rep);
  }
  if (st->url.db) {
    char db[16];
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, 0};
    lens[1] = (size_t)snprintf(db, sizeof db, "%u", st->url.db);
    health__redis_phase(st, "select");
    if ((rc = health__redis_expect_ok(st, "SELECT", 2, argv, lens, NULL)) != 0) return rc;
  }
  char ms[32];
  snprintf(ms, sizeof ms, "%llu", (unsigned long long)(health__now_ms() - t0));
  health__checker_log(st->ck, HEALTH_LOG_DEBUG, "redis_connected", "check", name, "url",
                      st->display_url, "#connect_ms", ms, NULL);
  return 0;
}

#endif /* HAVE_REDIS */
