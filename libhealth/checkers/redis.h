/*
 * The Redis checker's private header, shared by its two files:
 *   checkers/redis.c      registration and the run (PING, ROLE);
 *   checkers/redis_conn.c connecting (DNS, TCP, TLS, AUTH, SELECT) and the
 *                        RESP round trips, with the wording of failures.
 * Only built with hiredis (HAVE_REDIS).
 */
#ifndef HEALTH_CHECKER_REDIS_H
#define HEALTH_CHECKER_REDIS_H

#include "checkers/checker.h"

#ifdef HAVE_REDIS

#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "net/url.h"

/* Our own outcome besides HEALTH__IO_*: the bytes are not RESP. */
#define IO_PROTOCOL (-4)

/* A TLS handshake that got no byte back for this long (or half the budget)
 * triggers a plaintext probe, which gets at most PROBE_MAX_MS. */
#define PROBE_AFTER_MS 500
#define PROBE_MAX_MS 250

#define NO_TLS_HINT "no Redis reply: server may require TLS (use rediss://)"
#define PLAIN_HINT "TLS handshake failed: server does not speak TLS (plaintext Redis? use redis://)"

typedef struct redis_state {
  health__checker_t *ck;
  char *client_name; /* CLIENT SETNAME, for operators reading CLIENT LIST */
  char *display_url; /* password masked, for debug logs */
  char *verify_name; /* tls_server_name or the URL host */
  health__redis_url_t url;
  int verify, require_master, client_cert;
  health__tls_files_t *tls; /* rediss://: the context and its files */

  health__conn_t conn;
  redisReader *reader;
  unsigned replies; /* replies on this connection: 0 = fresh */
  struct sockaddr_storage addr;
  socklen_t addrlen;

  /* per run */
  uint64_t deadline;
  char out[HEALTH_ERROR_TEXT_LENGTH]; /* curated, for the result */
  char detail[512];                   /* for the debug log */
  const char *phase;
  health_result_t *r; /* the run in progress (redis_run), for its phase */
} redis_state_t;

/* Close the connection and forget its parser. */
void health__redis_drop(redis_state_t *st);
/* Connect and prepare the session (st->phase says how far it got).
 * @return 0, or HEALTH__IO_* / IO_PROTOCOL with st->out and st->detail set. */
int health__redis_connect(redis_state_t *st);
/* A command that must not fail; `what` names it in the output.  `keep`
 * (optional) receives the reply. */
int health__redis_expect_ok(redis_state_t *st, const char *what, int argc, const char **argv,
                            const size_t *lens, redisReply **keep);
/* st->out = the formatted message; returns rc. */
int health__redis_fail(redis_state_t *st, int rc, const char *fmt, ...) HEALTH_PRINTF(3, 4);

/* The step the run is in: kept for the checker's messages and published
 * to the engine (health__checker_phase). */
static inline void health__redis_phase(redis_state_t *st, const char *phase) {
  st->phase = phase;
  health__checker_phase(st->r, phase);
}

#endif /* HAVE_REDIS */
#endif
