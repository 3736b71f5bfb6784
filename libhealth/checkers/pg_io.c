/* The PostgreSQL checker's I/O: libpq driven only through its non-blocking
 * API, so that every phase (connect, TLS, authentication, query) ends at
 * the run's deadline (checkers/pg.h). */
#include "checkers/pg.h"

#ifdef HAVE_LIBPQ

#include <poll.h>
#include <stdio.h>
#include <string.h>

void health__pg_drop(pg_state_t *s) {
  if (s->conn) PQfinish(s->conn);
  s->conn = NULL;
}

/* Wait until the socket is ready for `events` or the run's time is up.
 * Returns 1 ready (or in error: libpq finds out which), 0 out of time,
 * -1 no socket or poll failed. */
static int pg_wait(const pg_state_t *s, PGconn *c, short events) {
  if (health__now_ms() >= s->deadline) return 0;
  int fd = PQsocket(c);
  if (fd < 0) return -1;
  return health__wait_fd(fd, events, s->deadline);
}

/* Send `sql` and read all its results.  On failure sets the result and
 * returns -1; the caller drops the connection, whose protocol state is then
 * unknown.  `keep` (optional) receives the last row-returning result. */
int health__pg_exec(pg_state_t *s, health_result_t *r, const char *sql, const char *phase,
                    PGresult **keep) {
  PGconn *c = s->conn;
  health__checker_phase(r, phase);
  if (!PQsendQuery(c, sql)) {
    health__pg_query_failed(s, r, phase, NULL);
    return -1;
  }
  int f;
  while ((f = PQflush(c)) == 1) {
    int w = pg_wait(s, c, POLLIN | POLLOUT);
    if (w == 0) return health__pg_timeout(s, r, phase);
    if (w < 0 || !PQconsumeInput(c)) break;
  }
  if (f != 0) {
    health__pg_query_failed(s, r, phase, NULL);
    return -1;
  }
  PGresult *bad = NULL, *res;
  for (;;) {
    while (PQisBusy(c)) {
      int w = pg_wait(s, c, POLLIN);
      if (w == 0) {
        PQclear(bad);
        return health__pg_timeout(s, r, phase);
      }
      if (w < 0 || !PQconsumeInput(c)) goto failed;
    }
    if ((res = PQgetResult(c)) == NULL) break;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) {
      if (keep) {
        PQclear(*keep);
        *keep = res;
      } else {
        PQclear(res);
      }
    } else if (bad) {
      PQclear(res);
    } else {
      bad = res;
      /* COPY would keep the connection busy forever; stop reading. */
      if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) break;
    }
  }
  if (!bad) return 0;
failed:
  health__pg_query_failed(s, r, phase, bad);
  PQclear(bad);
  return -1;
}

/* Notices (and a server's goodbye that arrives while idle) would otherwise
 * be printed on the application's stderr. */
static void pg_notice(void *arg, const char *message) { health__pg_log(arg, "notice", message); }

/* A server that ends a session (restart, idle timeout, pooler recycling)
 * sends an ErrorResponse and closes; libpq notices the close only when it
 * reads again, so read until nothing is pending. */
int health__pg_alive(PGconn *c) {
  for (int i = 0; i < 4 && PQstatus(c) == CONNECTION_OK; i++) {
    struct pollfd p = {PQsocket(c), POLLIN, 0};
    if (p.fd < 0 || poll(&p, 1, 0) <= 0) break;
    if (!PQconsumeInput(c)) return 0;
    (void)PQisBusy(c); /* parses what came in */
  }
  return PQstatus(c) == CONNECTION_OK;
}

int health__pg_connect(pg_state_t *s, health_result_t *r) {
  /* Start anew each time so that the host name is resolved again: after a
   * failover the same name points at another server. */
  pg_resolved_t rv;
  health__checker_phase(r, "dns");
  if (health__pg_resolve(s, r, &rv) != 0) return -1;
  health__checker_phase(r, "connect");
  PGconn *c = PQconnectStartParams(rv.keys ? rv.keys : s->keys, rv.keys ? rv.vals : s->vals, 0);
  health__pg_resolved_free(&rv);
  if (!c || PQstatus(c) == CONNECTION_BAD) {
    health__pg_connect_failed(s, r, c);
    if (c) PQfinish(c);
    return -1;
  }
  PQsetNoticeProcessor(c, pg_notice, s);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    int w = pg_wait(s, c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT);
    if (w == 0) {
      PQfinish(c);
      return health__pg_timeout(s, r, "connect");
    }
    if (w < 0) break;
    st = PQconnectPoll(c);
  }
  if (PQstatus(c) != CONNECTION_OK) {
    health__pg_connect_failed(s, r, c);
    PQfinish(c);
    return -1;
  }
  PQsetnonblocking(c, 1);
  s->conn = c;
  /* Bound the server's side too: a query we abandon at the deadline is
   * cancelled by the server instead of running on.  (PQcancel would open a
   * blocking connection with no timeout, so it is never used.)  A SET, not
   * the "options" startup parameter, because poolers such as PgBouncer
   * reject unknown startup parameters. */
  char sql[64];
  snprintf(sql, sizeof sql, "SET statement_timeout = %u", health__checker_timeout_ms(s->ck));
  if (health__pg_exec(s, r, sql, "connect", NULL) != 0) {
    health__pg_drop(s);
    return -1;
  }
  return 0;
}

#endif /* HAVE_LIBPQ */
