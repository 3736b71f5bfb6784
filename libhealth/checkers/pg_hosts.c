/* The PostgreSQL checker's host names, resolved under the run's deadline
 * and handed to libpq as hostaddr (checkers/pg.h). */
#include "checkers/pg.h"

#ifdef HAVE_LIBPQ

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

void health__pg_resolved_free(pg_resolved_t *p) {
  free(p->host.buf);
  free(p->hostaddr.buf);
  free(p->port.buf);
  free(p->keys);
  free(p->vals);
}

/* 0: p->keys/vals are ready (or NULL: use s->keys as they are); -1: the
 * result is set (timeout or no name resolved). */
int health__pg_resolve(pg_state_t *s, health_result_t *r, pg_resolved_t *p) {
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
    if (health__now_ms() >= s->deadline) goto timeout;
    struct addrinfo *res = NULL;
    const char *e = NULL;
    int rc = health__resolve(health__checker_dns(s->ck), name, NULL, s->deadline, &res, &e);
    if (rc == 1 && e) { /* waited for the lookup an earlier run started */
      char t[96];
      health__pg_resolved_free(p);
      health__pg_log(s, "dns", "deadline reached");
      health__checker_timeout_text(s->ck, "dns", t, sizeof t);
      health_result_set(r, HEALTH_FAIL, "%s: %s", t, e);
      return -1;
    }
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
    health__pg_log(s, "dns", why ? why : "no address");
    health_result_set(r, HEALTH_FAIL, "connect failed: could not resolve the host name");
    health__pg_resolved_free(p);
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
  health__pg_resolved_free(p);
  return health__pg_timeout(s, r, "dns");
nomem:
  health__pg_resolved_free(p);
  health_result_set(r, HEALTH_FAIL, "connect failed: out of memory");
  return -1;
}

#endif /* HAVE_LIBPQ */
