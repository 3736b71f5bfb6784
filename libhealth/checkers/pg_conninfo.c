/* The PostgreSQL checker's words: the connection string parsed and checked
 * at registration, and every failure reduced to a phrase that is safe to
 * publish (libpq's full text goes to the debug log, password masked). */
#include "checkers/pg.h"

#ifdef HAVE_LIBPQ

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The full libpq text goes to the debug log only: it names hosts, users
 * and databases, which the health output must not reveal. */
void health__pg_log(pg_state_t *s, const char *phase, const char *text) {
  char clean[1024];
  health__redact_secret(text ? text : "", s->password, clean, sizeof clean);
  size_t n = strlen(clean);
  while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' ')) clean[--n] = 0;
  health__checker_log_once(s->ck, HEALTH_LOG_DEBUG, "pg_error", "check",
                           health__checker_name(s->ck), "phase", phase, "error", clean, NULL);
}

/* libpq's reason, reduced to a phrase that is safe to publish. Order
 * matters: TLS and authentication texts also contain generic words. */
static const struct {
  const char *needle, *phrase;
} pg_phrases[] = {
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

void health__pg_connect_failed(pg_state_t *s, health_result_t *r, PGconn *c) {
  const char *msg = c ? PQerrorMessage(c) : "out of memory";
  const char *phrase = "connect failed";
  health__pg_log(s, "connect", msg);
  for (size_t i = 0; i < sizeof pg_phrases / sizeof pg_phrases[0]; i++)
    if (strstr(msg, pg_phrases[i].needle)) {
      phrase = pg_phrases[i].phrase;
      break;
    }
  health_result_set(r, HEALTH_FAIL, "%s", phrase);
}

int health__pg_timeout(pg_state_t *s, health_result_t *r, const char *phase) {
  health__pg_log(s, phase, "deadline reached");
  health__checker_timeout(s->ck, r, phase);
  return -1;
}

/* A SQLSTATE is safe to show and precise; a few get a name too. */
static const struct {
  const char *code, *name;
} pg_states[] = {
    {"57014", "statement timeout"},      {"57P01", "server shutting down"},
    {"57P02", "crash shutdown"},         {"57P03", "server not accepting connections"},
    {"25006", "read-only transaction"},  {"42P01", "undefined table"},
    {"42501", "insufficient privilege"}, {"42601", "syntax error"},
    {"42883", "undefined function"},     {"53300", "too many connections"},
    {"08006", "connection failure"},
};

void health__pg_query_failed(pg_state_t *s, health_result_t *r, const char *phase,
                             const PGresult *res) {
  const char *pre = strcmp(phase, "query") == 0 ? "query failed" : "connect failed";
  const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  health__pg_log(s, phase, res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn));
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
    health_result_set(r, HEALTH_FAIL, "%s: unexpected %s", pre, PQresStatus(PQresultStatus(res)));
  } else {
    health_result_set(r, HEALTH_FAIL, "%s", pre);
  }
}

static const char *pg_kind(const char *conninfo) {
  return strstr(conninfo, "://") ? "malformed PostgreSQL URL"
                                 : "malformed PostgreSQL connection string";
}

/* libpq's parse errors quote pieces of the input, and a piece of a
 * malformed string can be part of the password: keep libpq's own words,
 * never the quoted input (except an unknown keyword, which is what the
 * user needs to see). */
static int pg_parse_error(const char *conninfo, const char *perr, health_error_t *err) {
  if (!perr) return health__err(err, HEALTH_ENOMEM, "postgres check: out of memory");
  const char *kind = pg_kind(conninfo);
  static const struct {
    const char *prefix, *text;
  } known[] = {
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
static int pg_validate(const char *kw, const char *val, const char *kind, health_error_t *err) {
  static const char *const modes[] = {"disable", "allow",     "prefer",
                                      "require", "verify-ca", "verify-full"};
  if (strcmp(kw, "port") == 0 && !pg_valid_ports(val))
    return health__err(err, HEALTH_EURL, "%s: invalid port number", kind);
  /* What follows a password's unencoded '@' lands in the host. */
  if (strcmp(kw, "host") == 0 && strchr(val, '@'))
    return health__err(err, HEALTH_EURL, "%s: '@' in the host (write '@' in a password as %%40)",
                       kind);
  if (strcmp(kw, "sslmode") == 0) {
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
      if (strcmp(val, modes[i]) == 0) return 0;
    /* Not quoted: in a mangled string the value can be a piece of the
     * password (an unencoded '&' in ?password=...). */
    return health__err(err, HEALTH_EURL,
                       "%s: invalid sslmode (disable, allow, prefer, require, verify-ca "
                       "or verify-full)",
                       kind);
  }
  return 0;
}

int health__pg_conninfo(pg_state_t *s, const char *conninfo, health_error_t *err) {
  char *perr = NULL;
  s->info = PQconninfoParse(conninfo, &perr);
  if (!s->info) {
    int rc = pg_parse_error(conninfo, perr, err);
    PQfreemem(perr);
    return rc;
  }
  const char *kind = pg_kind(conninfo);
  size_t n = 0;
  for (PQconninfoOption *o = s->info; o->keyword; o++) n++;
  /* +2: a fallback application_name and the terminating NULL. */
  s->keys = calloc(n + 2, sizeof *s->keys);
  s->vals = calloc(n + 2, sizeof *s->vals);
  if (!s->keys || !s->vals) return health__err(err, HEALTH_ENOMEM, "postgres check: out of memory");
  size_t k = 0;
  int has_app = 0;
  for (PQconninfoOption *o = s->info; o->keyword; o++) {
    if (!o->val) continue;
    int rc = pg_validate(o->keyword, o->val, kind, err);
    if (rc != 0) return rc;
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

  return 0;
}

#endif /* HAVE_LIBPQ */
