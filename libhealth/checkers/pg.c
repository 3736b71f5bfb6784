/* PostgreSQL checker: one kept libpq connection per check, driven only
 * through libpq's non-blocking API so that every phase (connect, TLS,
 * authentication, query) ends at the run's deadline.  This file: the
 * registration and what a run checks; the rest is in checker_pg_*.c
 * (checkers/pg.h says which). */
#include "checkers/checker.h"

#include <stdlib.h>
#include <string.h>

HEALTH_EXPORT void health_postgres_options_init(health_postgres_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->query = "SELECT 1";
}

#ifndef HAVE_LIBPQ

HEALTH_EXPORT int health_postgres_add(health_t *h, const char *name, const char *conninfo,
                                      const health_postgres_options_t *pg,
                                      const health_check_options_t *opts, health_error_t *err) {
  (void)h, (void)name, (void)conninfo, (void)pg, (void)opts;
  return health__err(err, HEALTH_ENOTSUP, "PostgreSQL checks need libhealth built with libpq");
}

#else

#include "checkers/pg.h"

static void pg_free(void *arg) {
  pg_state_t *s = arg;
  if (!s) return;
  health__pg_drop(s);
  if (s->info) PQconninfoFree(s->info);
  free(s->keys);
  free(s->vals);
  free(s->query);
  health__checker_free(s->ck);
  free(s);
}

static int pg_writable(pg_state_t *s, health_result_t *r) {
  PGresult *res = NULL;
  if (health__pg_exec(s, r, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                      "query", &res) != 0)
    return -1;
  const char *why = NULL;
  if (!res || PQntuples(res) != 1 || PQnfields(res) != 2)
    why = "query failed: unexpected answer to the read-only check";
  else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) why = "read-only: in recovery";
  else if (strcmp(PQgetvalue(res, 0, 1), "on") == 0) why = "read-only: transaction_read_only is on";
  PQclear(res);
  if (!why) return 0;
  health__pg_log(s, "query", why);
  health_result_set(r, HEALTH_FAIL, "%s", why);
  return -1;
}

static void pg_check(pg_state_t *s, health_result_t *r) {
  /* A session the server ended between runs is replaced at once rather
   * than reported as a failure of a healthy server. */
  if (s->conn && !health__pg_alive(s->conn)) {
    health__pg_log(s, "idle", PQerrorMessage(s->conn));
    health__pg_drop(s);
  }
  if (!s->conn) {
    /* A failed attempt asks for a jittered retry, so that a fleet whose
     * database restarts does not come back in one herd (engine/backoff.c). */
    if (health__pg_connect(s, r) != 0) {
      health__checker_connect_failed(s->ck, r);
      return;
    }
    health__checker_connected(s->ck);
  }
  uint64_t t0 = health__now_us();
  if (health__pg_exec(s, r, s->query, "query", NULL) != 0) {
    health__pg_drop(s);
    return;
  }
  double ms = (double)(health__now_us() - t0) / 1000.0;
  /* A kept connection survives a failover on a node that is now a replica:
   * drop it so that the next run resolves the name and lands on the writer. */
  if (s->require_writable && pg_writable(s, r) != 0) {
    health__pg_drop(s);
    return;
  }
  health__checker_pass(r, ms);
}

static void pg_run(health_result_t *r, void *arg) {
  pg_state_t *s = arg;
  /* Finish a little early (a twentieth, at most 25 ms): a result published
   * after the deadline is discarded in favour of the engine's plain
   * "timeout" (10 ms was not enough under valgrind). */
  s->deadline = health__checker_deadline_slack(r, 20, 25);
  pg_check(s, r);
  /* Without kept connections (health_fleet_set) every run connects,
   * checks and closes: no server slot is held between runs. */
  if (!health__checker_keep_connection(r)) health__pg_drop(s);
}

static int pg_nomem(pg_state_t *s, health_error_t *err) {
  pg_free(s);
  return health__err(err, HEALTH_ENOMEM, "postgres check: out of memory");
}

HEALTH_EXPORT int health_postgres_add(health_t *h, const char *name, const char *conninfo,
                                      const health_postgres_options_t *pg,
                                      const health_check_options_t *opts, health_error_t *err) {
  if (!h || !name || !conninfo)
    return health__err(err, HEALTH_EINVAL,
                       "postgres check: handle, name and conninfo are required");
  if (pg && HEALTH__RESERVED_CHECK(pg, "health_postgres_options", err)) return HEALTH_EINVAL;
  if (pg && pg->require_writable != 0 && pg->require_writable != 1)
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': require_writable must be 0 or 1 (got %d)", name,
                       pg->require_writable);
  pg_state_t *s = calloc(1, sizeof *s);
  if (!s) return pg_nomem(NULL, err);
  s->password = "";
  s->require_writable = pg ? pg->require_writable : 0;
  s->query = strdup(pg && pg->query && *pg->query ? pg->query : "SELECT 1");
  s->ck = health__checker_new(h, name);
  if (!s->query || !s->ck) return pg_nomem(s, err);
  int rc = health__pg_conninfo(s, conninfo, err);
  if (rc == 0) rc = health__checker_add(s->ck, pg_run, s, pg_free, opts, "datastore", err);
  if (rc != 0) pg_free(s);
  return rc;
}

#endif /* HAVE_LIBPQ */
