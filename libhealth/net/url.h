/* redis:// and rediss:// URL parser (no library dependency: fuzzable alone). */
#ifndef HEALTH_URL_H
#define HEALTH_URL_H

#include <stddef.h>

#define HEALTH__REDIS_DEFAULT_PORT 6379u

typedef struct health__redis_url {
  int tls;        /* 1 for rediss:// */
  char *user;     /* percent-decoded; NULL when absent */
  char *password; /* percent-decoded; NULL when absent */
  char *host;     /* name or IP literal, IPv6 without brackets */
  int host_is_ip; /* 4 or 6 for an IP literal, 0 for a name */
  unsigned port;  /* 1-65535, default 6379 */
  unsigned db;    /* 0 unless /N given */
} health__redis_url_t;

/**
 * Parse `url` strictly:
 *   redis[s]://[[user]:password@]host[:port][/db]
 * host is a DNS name, an IPv4 address or a bracketed IPv6 address; user and
 * password may be percent-encoded (reserved characters must be).  No query
 * string or fragment.
 * @param out    zeroed and filled on success; release with
 *               health__redis_url_free() (also safe after a failure).
 * @param errbuf receives a one-line reason on failure.  It never quotes any
 *               part of `url`, so it cannot leak the password.
 * @return 0, HEALTH_EURL (malformed) or HEALTH_ENOMEM.
 */
int health__redis_url_parse(const char *url, health__redis_url_t *out, char *errbuf, size_t errlen);

/** Free the strings of `u` (wiping the password) and zero it. */
void health__redis_url_free(health__redis_url_t *u);

/** Overwrite `n` bytes in a way the compiler may not drop. */
void health__wipe(void *p, size_t n);

/** The value of the hex digit `c` (0-15), or -1: the one copy for every
 * percent-decoder of the library. */
int health__hexval(char c);

/**
 * Percent-decode [s, e) into `out` (room for e - s + 1 bytes), ending it
 * with a NUL.
 * @return 0, or -1 for a malformed escape or an escaped NUL (%00).
 */
int health__pct_decode(const char *s, const char *e, char *out);

#endif
