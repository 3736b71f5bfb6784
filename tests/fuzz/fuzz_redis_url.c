/*
 * libFuzzer target: the redis:// / rediss:// URL parser (net/url.c).
 *
 * Invariants:
 *  - the result is 0, HEALTH_EURL or HEALTH_ENOMEM; the error text is
 *    NUL-terminated, empty on success and not on failure;
 *  - on success: a non-empty host of sane characters, port 1-65535, tls
 *    matching the scheme, IP literals that really are IP literals, a
 *    password that is non-empty when present;
 *  - error texts never quote the input (so never a piece of a password):
 *    the same URL with its letters permuted (a<->b, c<->d, e<->f keep hex
 *    digits hex; g..z rotate; the scheme is kept) must give the same result
 *    and the very same message.  A message that quoted any part of the
 *    input would differ.
 *  - health__redis_url_free() after success or failure leaves nothing
 *    behind (LeakSanitizer) and may be called twice.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "health.h"
#include "net/url.h"

#define ERRLEN 256

static void die(const char *what, const char *url) {
  fprintf(stderr, "fuzz_redis_url: %s\n  url: ", what);
  for (const unsigned char *p = (const unsigned char *)url; *p; p++)
    fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", *p);
  fprintf(stderr, "\n");
  abort();
}

static char permute(char c) {
  if (c >= 'a' && c <= 'f') return (char)('a' + ((c - 'a') ^ 1));
  if (c >= 'A' && c <= 'F') return (char)('A' + ((c - 'A') ^ 1));
  if (c >= 'g' && c <= 'z') return (char)(c == 'z' ? 'g' : c + 1);
  if (c >= 'G' && c <= 'Z') return (char)(c == 'Z' ? 'G' : c + 1);
  return c;
}

static int prefix_ci(const char *s, const char *p) { return strncasecmp(s, p, strlen(p)) == 0; }

static void check_success(const char *url, const health__redis_url_t *u, const char *err) {
  if (err[0]) die("error text set on success", url);
  if (!u->host || !u->host[0]) die("success with an empty host", url);
  if (u->port < 1 || u->port > 65535) die("success with a port out of range", url);
  if (u->tls != prefix_ci(url, "rediss://")) die("tls does not match the scheme", url);
  if (u->password && !u->password[0]) die("empty password reported as present", url);
  unsigned char addr[16];
  if (u->host_is_ip == 4 && inet_pton(AF_INET, u->host, addr) != 1) die("bad IPv4 host", url);
  if (u->host_is_ip == 6 && inet_pton(AF_INET6, u->host, addr) != 1) die("bad IPv6 host", url);
  if (u->host_is_ip != 0 && u->host_is_ip != 4 && u->host_is_ip != 6) die("host_is_ip", url);
  for (const unsigned char *p = (const unsigned char *)u->host; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '@' || *p == '/' || *p == '?' || *p == '#' ||
        (*p == ':' && u->host_is_ip != 6))
      die("host with a character that cannot be meant", url);
}

static int parse(const char *url, health__redis_url_t *u, char *err) {
  memset(err, 'X', ERRLEN);
  int rc = health__redis_url_parse(url, u, err, ERRLEN);
  if (!memchr(err, 0, ERRLEN)) die("error text not NUL-terminated", url);
  if (rc != 0 && rc != HEALTH_EURL && rc != HEALTH_ENOMEM) die("unexpected return code", url);
  if (rc != 0 && !err[0]) die("failure without an error text", url);
  if (rc != 0 && (u->host || u->user || u->password)) die("strings left after a failure", url);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *url = malloc(size + 1), *alt = malloc(size + 1);
  if (!url || !alt) abort();
  memcpy(url, data, size);
  url[size] = 0; /* an embedded NUL simply ends the URL, as in C */

  health__redis_url_t u, v;
  char err[ERRLEN], err2[ERRLEN];
  int rc = parse(url, &u, err);
  if (rc == 0) check_success(url, &u, err);

  /* The differential: letters permuted after the scheme. */
  strcpy(alt, url);
  const char *sep = strstr(url, "://");
  size_t from = sep ? (size_t)(sep - url) + 3 : 0;
  for (size_t i = from; alt[i]; i++) alt[i] = permute(alt[i]);
  int rc2 = parse(alt, &v, err2);
  if (rc2 == 0) check_success(alt, &v, err2);
  if (rc != HEALTH_ENOMEM && rc2 != HEALTH_ENOMEM) {
    if (rc != rc2) die("permuting letters changed the result", url);
    if (strcmp(err, err2) != 0) {
      fprintf(stderr, "  err1: %s\n  err2: %s\n", err, err2);
      die("the error text depends on the input's letters (it quotes the input)", url);
    }
    if (rc == 0 &&
        (u.port != v.port || u.db != v.db || u.tls != v.tls || u.host_is_ip != v.host_is_ip ||
         !u.user != !v.user || !u.password != !v.password || strlen(u.host) != strlen(v.host)))
      die("permuting letters changed what was parsed", url);
  }

  health__redis_url_free(&u);
  health__redis_url_free(&u); /* idempotent */
  health__redis_url_free(&v);
  free(url);
  free(alt);
  return 0;
}
