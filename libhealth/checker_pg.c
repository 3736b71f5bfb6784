/* PostgreSQL checker: one kept libpq connection per check, driven only
 * through libpq's non-blocking API so that every phase (connect, TLS,
 * authentication, query) ends at the run's deadline. */
#include "health-int.h"

#include <stdlib.h>
#include <string.h>

HEALTH_EXPORT void health_pg_options_init(health_pg_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->query = "SELECT 1";
}

#ifndef HAVE_LIBPQ

HEALTH_EXPORT int health_add_postgres(health_t *h, const char *name,
                                      const char *conninfo,
                                      const health_pg_options_t *pg,
                                      const health_check_options_t *opts,
                                      health_error_t *err) {
  (void)h, (void)name, (void)conninfo, (void)pg, (void)opts;
  return health__err(err, HEALTH_ENOTSUP,
                     "PostgreSQL checks need libhealth built with libpq");
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include <libpq-fe.h>

/* Give up this long before the run's deadline (a twentieth of short
 * timeouts, as the Redis checker does), so that our "timeout ... (phase)"
 * result reaches the scheduler before its generic one does, even on a
 * loaded machine or under valgrind (10 ms was not enough there). */
#define PG_SLACK_MS 25

typedef struct pg_state {
  health_t *h;
  char name[HEALTH__NAME_MAX + 1];
  PQconninfoOption *info;   /* parsed conninfo; keys/vals point into it */
  const char **keys, **vals;
  const char *password;     /* into info, for redaction; "" if none */
  char *query;
  int require_writable;
  unsigned timeout_ms, slack_ms;
  PGconn *conn;             /* kept between runs once connected */
  health__backoff_t backoff; /* failed connection attempts (backoff.c) */
  health__repeat_t logrep;  /* the same error every interval is logged once */
} pg_state_t;

static void pg_drop(pg_state_t *s) {
  if (s->conn) PQfinish(s->conn);
  s->conn = NULL;
}

static void pg_free(void *arg) {
  pg_state_t *s = arg;
  if (!s) return;
  pg_drop(s);
  if (s->info) PQconninfoFree(s->info);
  free(s->keys);
  free(s->vals);
  free(s->query);
  free(s);
}

/* The full libpq text goes to the debug log only: it names hosts, users
 * and databases, which the health output must not reveal. */
static void pg_log(pg_state_t *s, const char *phase, const char *text) {
  char clean[1024];
  health__redact_secret(text ? text : "", s->password, clean, sizeof clean);
  size_t n = strlen(clean);
  while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' ')) clean[--n] = 0;
  health__log_repeat(s->h, &s->logrep, s->name, HEALTH_LOG_DEBUG, "pg_error", "check", s->name,
                     "phase", phase, "error", clean, NULL);
}

/* libpq's reason, reduced to a phrase that is safe to publish. Order
 * matters: TLS and authentication texts also contain generic words. */
static const struct { const char *needle, *phrase; } pg_phrases[] = {
    /* Something else answers on the port (an HTTP server, a proxy). */
    {"invalid response to SSL negotiation", "connect failed: not a PostgreSQL server"},
    {"expected authentication request", "connect failed: not a PostgreSQL server"},
    {"server does not support SSL", "TLS failed: server does not support TLS"},
    {"certificate verify failed", "TLS failed: certificate verify failed"},
    {"does not match host name", "TLS failed: certificate does not match the host name"},
    {"root certificate file", "TLS failed: no root certificate file"},
    {"SSL", "TLS failed"},
    {"no password supplied", "authentication failed: no password supplied"},
    {"pg_hba.conf", "authentication failed: rejected by pg_hba.conf"},
    {"authentication failed", "authentication failed"},
    {"not permitted to log in", "authentication failed: login not permitted"},
    {"role \"", "authentication failed: unknown role"},
    {"database \"", "connect failed: database does not exist or is not accepting connections"},
    {"Connection refused", "connect failed: connection refused"},
    {"could not translate host name", "connect failed: could not resolve the host name"},
    {"Connection timed out", "connect failed: connection timed out"},
    {"No route to host", "connect failed: no route to host"},
    {"Network is unreachable", "connect failed: network unreachable"},
    {"No such file or directory", "connect failed: no server socket"},
    {"starting up", "connect failed: server is starting up"},
    {"shutting down", "connect failed: server is shutting down"},
    {"in recovery mode", "connect failed: server is in recovery mode"},
    {"too many clients", "connect failed: too many connections"},
    {"connection slots are reserved", "connect failed: too many connections"},
    {"read-only", "connect failed: server is read-only"},
    {"hot standby", "connect failed: server is in hot standby"},
    {"closed the connection", "connect failed: server closed the connection"},
    {"Connection reset", "connect failed: connection reset"},
};

static void pg_connect_failed(pg_state_t *s, health_result_t *r, PGconn *c) {
  const char *msg = c ? PQerrorMessage(c) : "out of memory";
  const char *phrase = "connect failed";
  pg_log(s, "connect", msg);
  for (size_t i = 0; i < sizeof pg_phrases / sizeof pg_phrases[0]; i++)
    if (strstr(msg, pg_phrases[i].needle)) {
      phrase = pg_phrases[i].phrase;
      break;
    }
  health_result_set(r, HEALTH_FAIL, "%s", phrase);
}

/* A SQLSTATE is safe to show and precise; a few get a name too. */
static const struct { const char *code, *name; } pg_states[] = {
    {"57014", "statement timeout"},   {"57P01", "server shutting down"},
    {"57P02", "crash shutdown"},      {"57P03", "server not accepting connections"},
    {"25006", "read-only transaction"}, {"42P01", "undefined table"},
    {"42501", "insufficient privilege"}, {"42601", "syntax error"},
    {"42883", "undefined function"},  {"53300", "too many connections"},
    {"08006", "connection failure"},
};

static void pg_query_failed(pg_state_t *s, health_result_t *r,
                            const char *phase, const PGresult *res) {
  const char *pre = strcmp(phase, "query") == 0 ? "query failed" : "connect failed";
  const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  pg_log(s, phase, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
  if (code) {
    for (size_t i = 0; i < sizeof pg_states / sizeof pg_states[0]; i++)
      if (strcmp(code, pg_states[i].code) == 0) {
        health_result_set(r, HEALTH_FAIL, "%s: %s (%s)", pre, code, pg_states[i].name);
        return;
      }
    health_result_set(r, HEALTH_FAIL, "%s: SQLSTATE %s", pre, code);
  } else if (PQstatus(s->conn) == CONNECTION_BAD) {
    health_result_set(r, HEALTH_FAIL, "%s: connection lost", pre);
  } else if (res) {
    health_result_set(r, HEALTH_FAIL, "%s: unexpected %s", pre,
                      PQresStatus(PQresultStatus(res)));
  } else {
    health_result_set(r, HEALTH_FAIL, "%s", pre);
  }
}

static int pg_timeout(pg_state_t *s, health_result_t *r, const char *phase) {
  pg_log(s, phase, "deadline reached");
  health_result_set(r, HEALTH_FAIL, "timeout after %u ms (%s)", s->timeout_ms, phase);
  return -1;
}

/* Wait until the socket is ready for `events` or the run's time is up.
 * Returns 1 ready (or in error: libpq finds out which), 0 out of time,
 * -1 no socket or poll failed. */
static int pg_wait(const pg_state_t *s, PGconn *c, short events,
                   const health_result_t *r) {
  for (;;) {
    unsigned rem = health_result_remaining_ms(r);
    if (rem <= s->slack_ms) return 0;
    struct pollfd p = {PQsocket(c), events, 0};
    if (p.fd < 0) return -1;
    int n = poll(&p, 1, (int)(rem - s->slack_ms));
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

/* Send `sql` and read all its results.  On failure sets the result and
 * returns -1; the caller drops the connection, whose protocol state is then
 * unknown.  `keep` (optional) receives the last row-returning result. */
static int pg_exec(pg_state_t *s, health_result_t *r, const char *sql,
                   const char *phase, PGresult **keep) {
  PGconn *c = s->conn;
  if (!PQsendQuery(c, sql)) {
    pg_query_failed(s, r, phase, NULL);
    return -1;
  }
  int f;
  while ((f = PQflush(c)) == 1) {
    int w = pg_wait(s, c, POLLIN | POLLOUT, r);
    if (w == 0) return pg_timeout(s, r, phase);
    if (w < 0 || !PQconsumeInput(c)) break;
  }
  if (f != 0) {
    pg_query_failed(s, r, phase, NULL);
    return -1;
  }
  PGresult *bad = NULL, *res;
  for (;;) {
    while (PQisBusy(c)) {
      int w = pg_wait(s, c, POLLIN, r);
      if (w == 0) {
        PQclear(bad);
        return pg_timeout(s, r, phase);
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
  pg_query_failed(s, r, phase, bad);
  PQclear(bad);
  return -1;
}

/* Notices (and a server's goodbye that arrives while idle) would otherwise
 * be printed on the application's stderr. */
static void pg_notice(void *arg, const char *message) {
  pg_log(arg, "notice", message);
}

/* A server that ends a session (restart, idle timeout, pooler recycling)
 * sends an ErrorResponse and closes; libpq notices the close only when it
 * reads again, so read until nothing is pending. */
static int pg_alive(PGconn *c) {
  for (int i = 0; i < 4 && PQstatus(c) == CONNECTION_OK; i++) {
    struct pollfd p = {PQsocket(c), POLLIN, 0};
    if (p.fd < 0 || poll(&p, 1, 0) <= 0) break;
    if (!PQconsumeInput(c)) return 0;
    (void)PQisBusy(c); /* parses what came in */
  }
  return PQstatus(c) == CONNECTION_OK;
}

/* ---- host names, resolved under the deadline ----
 *
 * libpq resolves host names synchronously inside PQconnectStartParams, so a
 * hung resolver would hold the run past its deadline.  So the names are
 * resolved here, on a thread we can walk away from (health__resolve), and
 * libpq gets the addresses as hostaddr= with the names kept in host= (for
 * certificate verification and .pgpass).  A name with several addresses
 * becomes several entries, tried in order as libpq would; a name that does
 * not resolve is skipped as libpq would skip it.  Socket directories and
 * IP literals need no lookup.  When the user gave hostaddr (or a service
 * file) libpq is left to do as told. */

#define PG_MAX_ENTRIES 32

typedef struct pg_list {
  char *buf;
  size_t len, cap;
} pg_list_t;

static int pg_list_add(pg_list_t *l, const char *item, size_t n) {
  if (l->len + n + 2 > l->cap) {
    size_t cap = (l->cap ? l->cap * 2 : 128) + n;
    char *b = realloc(l->buf, cap);
    if (!b) return -1;
    l->buf = b;
    l->cap = cap;
  }
  if (l->len) l->buf[l->len++] = ',';
  memcpy(l->buf + l->len, item, n);
  l->len += n;
  l->buf[l->len] = 0;
  return 0;
}

static const char *pg_param(const pg_state_t *s, const char *key, const char *env) {
  for (size_t i = 0; s->keys[i]; i++)
    if (strcmp(s->keys[i], key) == 0) return s->vals[i];
  return env ? getenv(env) : NULL;
}

static int pg_needs_lookup(const char *h, size_t n) {
  char ip[64];
  struct in6_addr a6;
  if (n == 0 || h[0] == '/' || h[0] == '@' || n >= sizeof ip) return 0;
  memcpy(ip, h, n);
  ip[n] = 0;
  return inet_pton(AF_INET, ip, &a6) != 1 && inet_pton(AF_INET6, ip, &a6) != 1;
}

/* The i-th item of a comma-separated list (its start; *n its length). */
static const char *pg_item(const char *list, size_t i, size_t *n) {
  while (i-- > 0) list = strchr(list, ',') + 1;
  *n = strcspn(list, ",");
  return list;
}

static size_t pg_count(const char *list) {
  size_t n = 1;
  for (; *list; list++) n += *list == ',';
  return n;
}

typedef struct pg_resolved {
  pg_list_t host, hostaddr, port;
  const char **keys, **vals;
} pg_resolved_t;

static void pg_resolved_free(pg_resolved_t *p) {
  free(p->host.buf);
  free(p->hostaddr.buf);
  free(p->port.buf);
  free(p->keys);
  free(p->vals);
}

/* 0: p->keys/vals are ready (or NULL: use s->keys as they are); -1: the
 * result is set (timeout or no name resolved). */
static int pg_resolve(pg_state_t *s, health_result_t *r, pg_resolved_t *p) {
  memset(p, 0, sizeof *p);
  const char *hosts = pg_param(s, "host", "PGHOST");
  const char *addrs = pg_param(s, "hostaddr", "PGHOSTADDR");
  const char *ports = pg_param(s, "port", "PGPORT");
  const char *service = pg_param(s, "service", "PGSERVICE");
  if (!hosts || !*hosts || (addrs && *addrs) || (service && *service)) return 0;
  size_t nhosts = pg_count(hosts), nports = ports && *ports ? pg_count(ports) : 0;
  if (nports > 1 && nports != nhosts) return 0; /* libpq reports the mismatch */
  int lookups = 0;
  for (size_t i = 0; i < nhosts; i++) {
    size_t n;
    const char *h = pg_item(hosts, i, &n);
    lookups += pg_needs_lookup(h, n);
  }
  if (!lookups) return 0;

  const char *why = NULL;
  size_t entries = 0;
  for (size_t i = 0; i < nhosts && entries < PG_MAX_ENTRIES; i++) {
    size_t n, pn = 0;
    const char *h = pg_item(hosts, i, &n);
    const char *port = nports > 1 ? pg_item(ports, i, &pn) : "";
    if (!pg_needs_lookup(h, n)) {
      if (pg_list_add(&p->host, h, n) || pg_list_add(&p->hostaddr, "", 0) ||
          pg_list_add(&p->port, port, pn))
        goto nomem;
      entries++;
      continue;
    }
    char name[256];
    if (n >= sizeof name) {
      why = "host name too long";
      continue;
    }
    memcpy(name, h, n);
    name[n] = 0;
    unsigned rem = health_result_remaining_ms(r);
    if (rem <= s->slack_ms) goto timeout;
    struct addrinfo *res = NULL;
    const char *e = NULL;
    int rc = health__resolve(name, NULL, health__now_ms() + rem - s->slack_ms, &res, &e);
    if (rc == 1) goto timeout;
    if (rc != 0) {
      why = e;
      continue;
    }
    char seen[PG_MAX_ENTRIES][INET6_ADDRSTRLEN];
    size_t nseen = 0;
    for (struct addrinfo *ai = res; ai && entries < PG_MAX_ENTRIES; ai = ai->ai_next) {
      char ip[INET6_ADDRSTRLEN];
      if (getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST))
        continue;
      size_t k = 0;
      while (k < nseen && strcmp(seen[k], ip) != 0) k++;
      if (k < nseen) continue;
      memcpy(seen[nseen++], ip, sizeof ip);
      if (pg_list_add(&p->host, h, n) || pg_list_add(&p->hostaddr, ip, strlen(ip)) ||
          pg_list_add(&p->port, port, pn)) {
        freeaddrinfo(res);
        goto nomem;
      }
      entries++;
    }
    freeaddrinfo(res);
  }
  if (!entries) {
    pg_log(s, "dns", why ? why : "no address");
    health_result_set(r, HEALTH_FAIL, "connect failed: could not resolve the host name");
    pg_resolved_free(p);
    return -1;
  }

  size_t nk = 0;
  while (s->keys[nk]) nk++;
  p->keys = calloc(nk + 4, sizeof *p->keys);
  p->vals = calloc(nk + 4, sizeof *p->vals);
  if (!p->keys || !p->vals) goto nomem;
  size_t k = 0;
  for (size_t i = 0; i < nk; i++) {
    const char *key = s->keys[i];
    if (strcmp(key, "host") == 0 || strcmp(key, "hostaddr") == 0 ||
        (nports > 1 && strcmp(key, "port") == 0))
      continue;
    p->keys[k] = key;
    p->vals[k++] = s->vals[i];
  }
  p->keys[k] = "host";
  p->vals[k++] = p->host.buf;
  p->keys[k] = "hostaddr";
  p->vals[k++] = p->hostaddr.buf;
  if (nports > 1) {
    p->keys[k] = "port";
    p->vals[k++] = p->port.buf;
  }
  return 0;

timeout:
  pg_resolved_free(p);
  return pg_timeout(s, r, "dns");
nomem:
  pg_resolved_free(p);
  health_result_set(r, HEALTH_FAIL, "connect failed: out of memory");
  return -1;
}

static int pg_connect(pg_state_t *s, health_result_t *r) {
  /* Start anew each time so that the host name is resolved again: after a
   * failover the same name points at another server. */
  pg_resolved_t rv;
  if (pg_resolve(s, r, &rv) != 0) return -1;
  PGconn *c = PQconnectStartParams(rv.keys ? rv.keys : s->keys, rv.keys ? rv.vals : s->vals, 0);
  pg_resolved_free(&rv);
  if (!c || PQstatus(c) == CONNECTION_BAD) {
    pg_connect_failed(s, r, c);
    if (c) PQfinish(c);
    return -1;
  }
  PQsetNoticeProcessor(c, pg_notice, s);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    int w = pg_wait(s, c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, r);
    if (w == 0) {
      PQfinish(c);
      return pg_timeout(s, r, "connect");
    }
    if (w < 0) break;
    st = PQconnectPoll(c);
  }
  if (PQstatus(c) != CONNECTION_OK) {
    pg_connect_failed(s, r, c);
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
  snprintf(sql, sizeof sql, "SET statement_timeout = %u", s->timeout_ms);
  if (pg_exec(s, r, sql, "connect", NULL) != 0) {
    pg_drop(s);
    return -1;
  }
  return 0;
}

static int pg_writable(pg_state_t *s, health_result_t *r) {
  PGresult *res = NULL;
  if (pg_exec(s, r, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
              "query", &res) != 0)
    return -1;
  const char *why = NULL;
  if (!res || PQntuples(res) != 1 || PQnfields(res) != 2)
    why = "query failed: unexpected answer to the read-only check";
  else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
    why = "read-only: in recovery";
  else if (strcmp(PQgetvalue(res, 0, 1), "on") == 0)
    why = "read-only: transaction_read_only is on";
  PQclear(res);
  if (!why) return 0;
  pg_log(s, "query", why);
  health_result_set(r, HEALTH_FAIL, "%s", why);
  return -1;
}

static void pg_check(pg_state_t *s, health_result_t *r) {
  /* A session the server ended between runs is replaced at once rather
   * than reported as a failure of a healthy server. */
  if (s->conn && !pg_alive(s->conn)) {
    pg_log(s, "idle", PQerrorMessage(s->conn));
    pg_drop(s);
  }
  if (!s->conn) {
    /* A failed attempt asks for a jittered retry, so that a fleet whose
     * database restarts does not come back in one herd (backoff.c). */
    if (pg_connect(s, r) != 0) {
      health__backoff_failed(&s->backoff, r);
      return;
    }
    health__backoff_reset(&s->backoff);
  }
  uint64_t t0 = health__now_us();
  if (pg_exec(s, r, s->query, "query", NULL) != 0) {
    pg_drop(s);
    return;
  }
  double ms = (double)(health__now_us() - t0) / 1000.0;
  /* A kept connection survives a failover on a node that is now a replica:
   * drop it so that the next run resolves the name and lands on the writer. */
  if (s->require_writable && pg_writable(s, r) != 0) {
    pg_drop(s);
    return;
  }
  health_result_observe(r, ms, "ms");
  health_result_set(r, HEALTH_PASS, NULL);
}

static void pg_run(health_result_t *r, void *arg) {
  pg_state_t *s = arg;
  pg_check(s, r);
  /* Without kept connections (health_set_fleet) every run connects,
   * checks and closes: no server slot is held between runs. */
  if (!health__keep_connections(r)) pg_drop(s);
}

static const char *pg_kind(const char *conninfo) {
  return strstr(conninfo, "://") ? "malformed PostgreSQL URL"
                                 : "malformed PostgreSQL connection string";
}

/* libpq's parse errors quote pieces of the input, and a piece of a
 * malformed string can be part of the password: keep libpq's own words,
 * never the quoted input (except an unknown keyword, which is what the
 * user needs to see). */
static int pg_parse_error(const char *conninfo, const char *perr,
                          health_error_t *err) {
  if (!perr) return health__err(err, HEALTH_ENOMEM, "postgres check: out of memory");
  const char *kind = pg_kind(conninfo);
  static const struct { const char *prefix, *text; } known[] = {
      {"missing \"=\" after", "a keyword is missing \"=\""},
      {"unterminated quoted string", "unterminated quoted string"},
      {"end of string reached when looking for matching \"]\"", "unterminated IPv6 address"},
      {"extra key/value separator", "extra \"=\" in a query parameter"},
      {"missing key/value separator", "missing \"=\" in a query parameter"},
      {"unexpected character", "unexpected character in the URL"},
  };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strncmp(perr, known[i].prefix, strlen(known[i].prefix)) == 0)
      return health__err(err, HEALTH_EURL, "%s: %s", kind, known[i].text);
  const char *opt = "invalid connection option \"";
  if (strncmp(perr, opt, strlen(opt)) == 0) {
    const char *k = perr + strlen(opt);
    size_t n = strspn(k, "abcdefghijklmnopqrstuvwxyz_");
    if (n > 0 && n <= 40 && k[n] == '"')
      return health__err(err, HEALTH_EURL, "%s: unknown keyword \"%.*s\"", kind, (int)n, k);
    return health__err(err, HEALTH_EURL, "%s: unknown keyword", kind);
  }
  size_t n = strcspn(perr, "\"\n");
  while (n && (perr[n - 1] == ' ' || perr[n - 1] == ':')) n--;
  return health__err(err, HEALTH_EURL, "%s: %.*s", kind, (int)(n > 120 ? 120 : n), perr);
}

/* "5432" or "5432,5433,": each non-empty item a port number. */
static int pg_valid_ports(const char *p) {
  for (;;) {
    size_t n = strspn(p, "0123456789");
    if (n > 5 || (n && (atoi(p) < 1 || atoi(p) > 65535))) return 0;
    if (p[n] == 0) return 1;
    if (p[n] != ',') return 0;
    p += n + 1;
  }
}

/* libpq checks these only when connecting; a typo should fail now. */
static int pg_validate(const char *kw, const char *val, const char *kind,
                       health_error_t *err) {
  static const char *const modes[] = {"disable", "allow", "prefer", "require",
                                      "verify-ca", "verify-full"};
  if (strcmp(kw, "port") == 0 && !pg_valid_ports(val))
    return health__err(err, HEALTH_EURL, "%s: invalid port number", kind);
  /* What follows a password's unencoded '@' lands in the host. */
  if (strcmp(kw, "host") == 0 && strchr(val, '@'))
    return health__err(err, HEALTH_EURL,
                       "%s: '@' in the host (write '@' in a password as %%40)", kind);
  if (strcmp(kw, "sslmode") == 0) {
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
      if (strcmp(val, modes[i]) == 0) return 0;
    /* Not quoted: in a mangled string the value can be a piece of the
     * password (an unencoded '&' in ?password=...). */
    return health__err(err, HEALTH_EURL,
                       "%s: invalid sslmode (disable, allow, prefer, require, verify-ca "
                       "or verify-full)", kind);
  }
  return 0;
}

static int pg_nomem(pg_state_t *s, health_error_t *err) {
  pg_free(s);
  return health__err(err, HEALTH_ENOMEM, "postgres check: out of memory");
}

HEALTH_EXPORT int health_add_postgres(health_t *h, const char *name,
                                      const char *conninfo,
                                      const health_pg_options_t *pg,
                                      const health_check_options_t *opts,
                                      health_error_t *err) {
  if (!h || !name || !conninfo)
    return health__err(err, HEALTH_EINVAL, "postgres check: handle, name and conninfo are required");
  if (pg && pg->require_writable != 0 && pg->require_writable != 1)
    return health__err(err, HEALTH_EINVAL, "check '%.64s': require_writable must be 0 or 1 (got %d)",
                       name, pg->require_writable);
  pg_state_t *s = calloc(1, sizeof *s);
  if (!s) return pg_nomem(NULL, err);
  s->h = h;
  snprintf(s->name, sizeof s->name, "%s", name);
  s->password = "";
  s->require_writable = pg ? pg->require_writable : 0;
  s->query = strdup(pg && pg->query && *pg->query ? pg->query : "SELECT 1");
  s->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : h->opt.check_timeout_ms;
  s->slack_ms = s->timeout_ms / 20 < PG_SLACK_MS ? s->timeout_ms / 20 : PG_SLACK_MS;
  if (!s->query) return pg_nomem(s, err);

  char *perr = NULL;
  s->info = PQconninfoParse(conninfo, &perr);
  if (!s->info) {
    int rc = pg_parse_error(conninfo, perr, err);
    PQfreemem(perr);
    pg_free(s);
    return rc;
  }
  const char *kind = pg_kind(conninfo);
  size_t n = 0;
  for (PQconninfoOption *o = s->info; o->keyword; o++) n++;
  /* +2: a fallback application_name and the terminating NULL. */
  s->keys = calloc(n + 2, sizeof *s->keys);
  s->vals = calloc(n + 2, sizeof *s->vals);
  if (!s->keys || !s->vals) return pg_nomem(s, err);
  size_t k = 0;
  int has_app = 0;
  for (PQconninfoOption *o = s->info; o->keyword; o++) {
    if (!o->val) continue;
    int rc = pg_validate(o->keyword, o->val, kind, err);
    if (rc != 0) {
      pg_free(s);
      return rc;
    }
    if (strcmp(o->keyword, "password") == 0) s->password = o->val;
    if (strcmp(o->keyword, "application_name") == 0 ||
        strcmp(o->keyword, "fallback_application_name") == 0)
      has_app = 1;
    s->keys[k] = o->keyword;
    s->vals[k++] = o->val;
  }
  /* Lets a DBA tell the health check's session from the application's. */
  if (!has_app) {
    s->keys[k] = "fallback_application_name";
    s->vals[k++] = "libhealth";
  }

  int rc = health__add_check(h, name, pg_run, s, pg_free, opts, "datastore", err);
  if (rc != 0) pg_free(s);
  return rc;
}

#endif /* HAVE_LIBPQ */
