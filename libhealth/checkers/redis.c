/*
 * The Redis checker: one kept connection per check, plaintext or TLS, with
 * hiredis used only to format commands and parse replies (hiredis 0.14 has
 * no TLS, and owning the socket is what keeps every phase under the run's
 * deadline: DNS, connect, handshake, AUTH, SELECT, PING, ROLE).
 *
 * Outputs are short and say what to fix without naming hosts or users;
 * the full story (URL with the password masked, server error text) goes to
 * the debug log.  This file: registration and the run; connecting and the
 * RESP round trips are in checkers/redis_conn.c.
 */
#include "checkers/checker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkers/redis.h"

HEALTH_EXPORT void health_redis_options_init(health_redis_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
}

#ifndef HAVE_REDIS

HEALTH_EXPORT int health_redis_add(health_t *h, const char *name, const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts, health_error_t *err) {
  (void)h, (void)name, (void)url, (void)redis, (void)opts;
  return health__err(err, HEALTH_ENOTSUP,
                     "libhealth was built without the Redis checker "
                     "(needs hiredis and OpenSSL)");
}

#else

void health__redis_drop(redis_state_t *st) {
  health__conn_close(&st->conn);
  if (st->reader) redisReaderFree(st->reader);
  st->reader = NULL;
  st->replies = 0;
}

static void state_free(void *arg) {
  redis_state_t *st = arg;
  if (!st) return;
  health__redis_drop(st);
  health__tls_files_free(st->tls);
  health__redis_url_free(&st->url);
  free(st->client_name);
  free(st->display_url);
  free(st->verify_name);
  health__checker_free(st->ck);
  free(st);
}

/* ---- the run ---- */

static int ping_and_role(redis_state_t *st, double *rtt_ms) {
  const char *ping[1] = {"PING"}, *role[1] = {"ROLE"};
  size_t plen[1] = {4};
  redisReply *rep = NULL;
  int rc;
  uint64_t t0 = health__now_us();

  health__redis_phase(st, "ping");
  if ((rc = health__redis_expect_ok(st, "PING", 1, ping, plen, &rep)) != 0) return rc;
  *rtt_ms = (double)(health__now_us() - t0) / 1000.0;
  int pong = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
  freeReplyObject(rep);
  if (!pong) return health__redis_fail(st, IO_PROTOCOL, "unexpected reply to PING");
  if (!st->require_master) return 0;

  health__redis_phase(st, "role");
  if ((rc = health__redis_expect_ok(st, "ROLE", 1, role, plen, &rep)) != 0) return rc;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
      rep->element[0]->type != REDIS_REPLY_STRING) {
    rc = health__redis_fail(st, IO_PROTOCOL, "unexpected reply to ROLE");
  } else if (strcmp(rep->element[0]->str, "master") != 0) {
    /* Dropping the connection matters here: after a failover the DNS name
     * points at the new master, and only a reconnect re-resolves it. */
    rc = health__redis_fail(st, IO_PROTOCOL, "not a master (role: %.16s)", rep->element[0]->str);
  }
  freeReplyObject(rep);
  return rc;
}

static void redis_run(health_result_t *r, void *arg) {
  redis_state_t *st = arg;
  const char *name = health__checker_name(st->ck);
  double rtt = 0;
  int rc = 0;

  /* Finish a little early (a twentieth, at most 25 ms): a result published
   * after the deadline is discarded in favour of the scheduler's plain
   * "timeout". */
  st->r = r;
  st->deadline = health__checker_deadline_slack(r, 20, 25);
  st->out[0] = st->detail[0] = 0;
  health__redis_phase(st, "ping");
  if (st->conn.fd >= 0 && health__conn_stale(&st->conn)) {
    health__checker_log(st->ck, HEALTH_LOG_DEBUG, "redis_reconnect", "check", name, "reason",
                        "connection closed while idle", NULL);
    health__redis_drop(st);
  }
  if (st->conn.fd < 0) {
    /* A failed attempt asks for a jittered retry (engine/backoff.c). */
    rc = health__redis_connect(st);
    if (rc) health__checker_connect_failed(st->ck, r);
    else health__checker_connected(st->ck);
  }
  if (rc == 0) rc = ping_and_role(st, &rtt);
  if (rc == 0) {
    health__checker_pass(r, rtt);
    /* Without kept connections (health_fleet_set): connect, check, close. */
    if (!health__checker_keep_connection(r)) health__redis_drop(st);
    return;
  }
  health__redis_drop(st); /* the next run starts over, re-resolving the host */
  char detail[sizeof st->detail];
  health__redact_secret(st->detail, st->url.password, detail, sizeof detail);
  health__checker_log_once(st->ck, HEALTH_LOG_DEBUG, "redis_check_failed", "check", name, "url",
                           st->display_url, "phase", st->phase, "output", st->out, "detail", detail,
                           NULL);
  health_result_set(r, HEALTH_FAIL, "%s", st->out);
}

/* ---- registration ---- */

static char *display_url(const health__redis_url_t *u) {
  char *s = NULL;
  int v6 = u->host_is_ip == 6;
  if (asprintf(&s, "%s://%s%s%s%s%s%s:%u/%u", u->tls ? "rediss" : "redis", u->user ? u->user : "",
               u->password ? ":***" : "", u->password ? "@" : "", v6 ? "[" : "", u->host,
               v6 ? "]" : "", u->port, u->db) < 0)
    return NULL;
  return s;
}

HEALTH_EXPORT int health_redis_add(health_t *h, const char *name, const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts, health_error_t *err) {
  health_redis_options_t o;
  redis_state_t *st;
  char ebuf[200];
  int rc;

  if (!h || !name || !url)
    return health__err(err, HEALTH_EINVAL, "health_redis_add: handle, name and url are required");
  if (redis) o = *redis;
  else health_redis_options_init(&o);
  if (HEALTH__RESERVED_CHECK(&o, "health_redis_options", err)) return HEALTH_EINVAL;
  if ((o.insecure_skip_verify != 0 && o.insecure_skip_verify != 1) ||
      (o.require_master != 0 && o.require_master != 1))
    return health__err(
        err, HEALTH_EINVAL,
        "check '%.64s': insecure_skip_verify and require_master must be 0 or 1 (got %d, %d)", name,
        o.insecure_skip_verify, o.require_master);
  if (o.tls_server_name && !*o.tls_server_name)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': tls_server_name is empty", name);
  if (!(st = calloc(1, sizeof *st))) return health__err(err, HEALTH_ENOMEM, "out of memory");
  health__conn_init(&st->conn);
  if (!(st->ck = health__checker_new(h, name))) {
    free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  st->verify = !o.insecure_skip_verify;
  st->require_master = o.require_master;
  st->client_cert = o.cert_file != NULL;

  rc = health__redis_url_parse(url, &st->url, ebuf, sizeof ebuf);
  if (rc) {
    rc = health__err(err, rc, "check '%.64s': invalid Redis URL: %s", name, ebuf);
    goto fail;
  }
  if (st->url.tls) {
    rc = health__tls_files_new(&st->tls, o.ca_file, o.ca_dir, o.cert_file, o.key_file, st->verify,
                               ebuf, sizeof ebuf);
    if (rc) {
      rc = health__err(err, rc, "check '%.64s': %s", name, ebuf);
      goto fail;
    }
  } else if (o.ca_file || o.ca_dir || o.cert_file || o.key_file || o.tls_server_name ||
             o.insecure_skip_verify) {
    health__checker_log(st->ck, HEALTH_LOG_WARN, "redis_tls_options_ignored", "check", name,
                        "message",
                        "TLS options given for a redis:// URL (plaintext); "
                        "use rediss:// for TLS",
                        NULL);
  }
  st->verify_name = strdup(o.tls_server_name ? o.tls_server_name : st->url.host);
  st->display_url = display_url(&st->url);
  if (asprintf(&st->client_name, "libhealth-%s", name) < 0) st->client_name = NULL;
  if (!st->verify_name || !st->display_url || !st->client_name) {
    rc = health__err(err, HEALTH_ENOMEM, "out of memory");
    goto fail;
  }

  rc = health__checker_add(st->ck, redis_run, st, state_free, opts, "datastore", err);
  if (rc) goto fail;

  if (st->url.tls && !st->verify) health__checker_warn_insecure(st->ck, "redis_tls_insecure");
  health__checker_log(st->ck, HEALTH_LOG_DEBUG, "redis_check_added", "check", name, "url",
                      st->display_url, NULL);
  return 0;
fail:
  state_free(st);
  return rc;
}

#endif /* HAVE_REDIS */
