/*
 * Shared by the TCP and HTTP checkers: a host:port target, a connection
 * made under the run's deadline (DNS included), and numbers formatted
 * without the process locale.
 */
#ifndef HEALTH_CHECKER_NET_H
#define HEALTH_CHECKER_NET_H

#include <stddef.h>
#include <stdint.h>

#include "checkers/checker.h" /* health__checker_t */
#include "net/conn.h"         /* HEALTH__IO_*, health__errno_text */

typedef struct health__hostport {
  char *host;     /* name or IP literal, IPv6 without brackets */
  int host_is_ip; /* 4 or 6 for a literal, 0 for a name */
  unsigned port;
} health__hostport_t;

/**
 * Parse "host:port", "[v6]:port" or, with default_port != 0, "host" from
 * the n bytes at s.  Fixed reasons in *why (never quoting the input).
 * @return 0, HEALTH_EURL or HEALTH_ENOMEM.
 */
int health__hostport_parse(const char *s, size_t n, unsigned default_port, health__hostport_t *out,
                           const char **why);
void health__hostport_free(health__hostport_t *hp);

/**
 * Resolve (on a thread the run can walk away from) and connect, trying
 * every address, until `deadline` (monotonic ms).  *phase is set to the
 * phase that failed ("dns" or "connect"), and each phase is published to
 * the run `r` as it begins (health__checker_phase).
 * @return a connected non-blocking socket (TCP_NODELAY), or
 *         HEALTH__IO_TIMEOUT / HEALTH__IO_ERROR with a reason in why
 *         ("connect failed: connection refused", "DNS resolution failed: ...").
 *         A timeout in "dns" may leave a note in why ("previous lookup
 *         still running": the check's own lookup is reused, core/resolve.c).
 */
int health__net_connect(health__checker_t *ck, health_result_t *r, const health__hostport_t *hp,
                        uint64_t deadline, const char **phase, char *why, size_t len);

#define HEALTH__HTTP_PATH_MAX 2048

typedef struct health__http_target {
  int tls;
  health__hostport_t hp;
  char *path; /* "/..." with the query */
} health__http_target_t;

/**
 * Parse an absolute http:// or https:// URL.  Fixed reasons in *why, never
 * quoting the input (it may hold a password).
 * @param auth NULL, or receives the "Authorization: Basic ...\r\n" line
 *        when the URL has user info (the caller wipes and frees it).
 * @return 0, HEALTH_EURL or HEALTH_ENOMEM.
 */
int health__http_url_parse(const char *url, health__http_target_t *t, char **auth,
                           const char **why);
void health__http_target_free(health__http_target_t *t);

/* "12.5" with `decimals` (0-3) digits, rounded, whatever LC_NUMERIC says. */
void health__fmt_fixed(char *buf, size_t len, double v, int decimals);
/* A byte count for people: "512 B", "3.2 KiB", "1.5 GiB" (locale-free). */
void health__fmt_bytes(char *buf, size_t len, uint64_t bytes);

/* health__errno_text (lower-case strerror) is in net/conn.h. */

#endif
