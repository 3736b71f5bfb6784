/*
 * The PostgreSQL checker's private header, shared by its four files:
 *   checkers/pg.c          registration and the run (what is checked);
 *   checkers/pg_conninfo.c the connection string (parsing, validation) and
 *                         the wording of every error (libpq's, SQLSTATEs);
 *   checkers/pg_hosts.c    host names resolved under the deadline and given
 *                         to libpq as hostaddr;
 *   checkers/pg_io.c       libpq's non-blocking connect and query, bounded
 *                         by the run's deadline.
 * Only built with libpq (HAVE_LIBPQ).
 */
#ifndef HEALTH_CHECKER_PG_H
#define HEALTH_CHECKER_PG_H

#include "checkers/checker.h"

#ifdef HAVE_LIBPQ

#include <libpq-fe.h>

typedef struct pg_state {
  health__checker_t *ck;
  PQconninfoOption *info; /* parsed conninfo; keys/vals point into it */
  const char **keys, **vals;
  const char *password; /* into info, for redaction; "" if none */
  char *query;
  int require_writable;
  uint64_t deadline; /* of the current run (monotonic ms) */
  PGconn *conn;      /* kept between runs once connected */
} pg_state_t;

/* ---- checkers/pg_conninfo.c ---- */
/* Parse and check `conninfo` into s->info/keys/vals/password.
 * @return 0 or HEALTH_EURL / HEALTH_ENOMEM with `err` naming the problem
 * (never quoting a piece that may be the password). */
int health__pg_conninfo(pg_state_t *s, const char *conninfo, health_error_t *err);
/* libpq's full text to the debug log (password masked), once per repeat. */
void health__pg_log(pg_state_t *s, const char *phase, const char *text);
/* Publish a failed connection attempt as a safe phrase. */
void health__pg_connect_failed(pg_state_t *s, health_result_t *r, PGconn *c);
/* Publish a failed command ("query" or "connect" phase). */
void health__pg_query_failed(pg_state_t *s, health_result_t *r, const char *phase,
                             const PGresult *res);
/* Publish "timeout after N ms (phase)"; returns -1. */
int health__pg_timeout(pg_state_t *s, health_result_t *r, const char *phase);

/* ---- checkers/pg_hosts.c ---- */
typedef struct pg_list {
  char *buf;
  size_t len, cap;
} pg_list_t;

typedef struct pg_resolved {
  pg_list_t host, hostaddr, port;
  const char **keys, **vals;
} pg_resolved_t;

/* 0: p->keys/vals are ready (or NULL: use s->keys as they are); -1: the
 * result is set (timeout or no name resolved). */
int health__pg_resolve(pg_state_t *s, health_result_t *r, pg_resolved_t *p);
void health__pg_resolved_free(pg_resolved_t *p);

/* ---- checkers/pg_io.c ---- */
/* Connect (resolving names first) and bound the server's statement time;
 * 0 with s->conn set, or -1 with the result set. */
int health__pg_connect(pg_state_t *s, health_result_t *r);
/* Send `sql` and read all its results; -1 with the result set (drop the
 * connection then).  `keep` (optional) receives the last row-returning
 * result. */
int health__pg_exec(pg_state_t *s, health_result_t *r, const char *sql, const char *phase,
                    PGresult **keep);
/* 0 if an idle connection was ended by the server meanwhile. */
int health__pg_alive(PGconn *c);
/* Close the kept connection, if any. */
void health__pg_drop(pg_state_t *s);

#endif /* HAVE_LIBPQ */
#endif
