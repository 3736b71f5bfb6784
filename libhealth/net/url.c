/*
 * redis:// and rediss:// URL parser.
 *
 * Strict on purpose: a URL that the parser half-understands would make the
 * checker probe something other than what the operator meant, and the
 * secret usually arrives through an environment variable nobody looks at.
 * Error texts are fixed strings that never quote the input: a stray '/' in a
 * password shifts every later part of the URL, so any quoted fragment could
 * be a piece of the password.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "net/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "health.h"

void health__wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}

static int fail(char *errbuf, size_t errlen, const char *msg) {
  if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
  return HEALTH_EURL;
}

int health__hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int health__pct_decode(const char *s, const char *e, char *out) {
  size_t n = 0;
  for (; s < e; s++) {
    if (*s == '%') {
      int hi = s + 1 < e ? health__hexval(s[1]) : -1, lo = s + 2 < e ? health__hexval(s[2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
      out[n++] = (char)(hi * 16 + lo);
      s += 2;
    } else {
      out[n++] = *s;
    }
  }
  out[n] = 0;
  return 0;
}

/* Percent-decode [s, e) into a fresh string.  Returns NULL with *why set on
 * a malformed escape or an unencoded character that cannot be meant. */
static char *decode(const char *s, const char *e, const char **why, const char *what_bad_escape,
                    const char *what_bad_char, const char *what_nul) {
  char *out = malloc((size_t)(e - s) + 1);
  size_t n = 0;
  if (!out) {
    *why = NULL;
    return NULL;
  }
  for (; s < e; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '%') {
      int hi = s + 1 < e ? health__hexval(s[1]) : -1;
      int lo = s + 2 < e ? health__hexval(s[2]) : -1;
      if (hi < 0 || lo < 0) {
        *why = what_bad_escape;
        goto bad;
      }
      c = (unsigned char)(hi * 16 + lo);
      if (c == 0) {
        *why = what_nul;
        goto bad;
      }
      s += 2;
    } else if (c <= 0x20 || c == 0x7f) {
      *why = what_bad_char;
      goto bad;
    }
    out[n++] = (char)c;
  }
  out[n] = 0;
  return out;
bad:
  health__wipe(out, n);
  free(out);
  return NULL;
}

/* Parse 1-maxdigits decimal digits spanning exactly [s, e). */
static int parse_uint(const char *s, const char *e, unsigned long max, unsigned long *v) {
  unsigned long n = 0;
  if (s == e) return -1;
  for (; s < e; s++) {
    if (*s < '0' || *s > '9') return -1;
    n = n * 10 + (unsigned long)(*s - '0');
    if (n > max) return -2;
  }
  *v = n;
  return 0;
}

static int valid_name(const char *s, const char *e) {
  if (e - s > 253) return 0;
  for (; s < e; s++) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_'))
      return 0;
  }
  return 1;
}

static int only_digits_and_dots(const char *s) {
  for (; *s; s++)
    if (!(*s == '.' || (*s >= '0' && *s <= '9'))) return 0;
  return 1;
}

int health__redis_url_parse(const char *url, health__redis_url_t *out, char *errbuf,
                            size_t errlen) {
  const char *p, *end, *at = NULL, *q, *why = NULL;
  unsigned long v = 0;
  int rc;

  memset(out, 0, sizeof *out);
  out->port = HEALTH__REDIS_DEFAULT_PORT;
  if (errbuf && errlen) errbuf[0] = 0;
  if (!url || !*url) return fail(errbuf, errlen, "empty URL");

  if (strncasecmp(url, "redis://", 8) == 0) {
    p = url + 8;
  } else if (strncasecmp(url, "rediss://", 9) == 0) {
    p = url + 9;
    out->tls = 1;
  } else if (strstr(url, "://")) {
    return fail(errbuf, errlen, "unsupported scheme (expected redis:// or rediss://)");
  } else {
    return fail(errbuf, errlen, "not a URL (expected redis://host[:port][/db] or rediss://...)");
  }

  /* The authority ends at the first '/', '?' or '#'; the user info at its
   * last '@' (so an unencoded '@' in a password still works). */
  end = p + strcspn(p, "/?#");
  for (q = p; q < end; q++)
    if (*q == '@') at = q;
  if (!at && strchr(end, '@'))
    return fail(errbuf, errlen,
                "'@' after the host part: percent-encode '/', '?' and '#' "
                "in the user name and password");

  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
      return fail(errbuf, errlen,
                  "user name without a password (use user:password@ or "
                  ":password@)");
    if (colon > p) {
      out->user = decode(p, colon, &why, "invalid percent-encoding in the user name",
                         "invalid character in the user name (percent-encode it)",
                         "NUL byte in the user name");
      if (!out->user) goto bad_decode;
    }
    if (colon + 1 == at) {
      rc = fail(errbuf, errlen, "empty password");
      goto out_fail;
    }
    out->password =
        decode(colon + 1, at, &why, "invalid percent-encoding in the password",
               "invalid character in the password (percent-encode it)", "NUL byte in the password");
    if (!out->password) goto bad_decode;
    p = at + 1;
  }

  /* host */
  if (*p == '[') {
    const char *close = memchr(p, ']', (size_t)(end - p));
    unsigned char addr[16];
    if (!close) {
      rc = fail(errbuf, errlen, "unterminated '[' in the host");
      goto out_fail;
    }
    out->host = strndup(p + 1, (size_t)(close - p - 1));
    if (!out->host) goto nomem;
    if (!*out->host) {
      rc = fail(errbuf, errlen, "empty host");
      goto out_fail;
    }
    if (inet_pton(AF_INET6, out->host, addr) != 1) {
      rc = fail(errbuf, errlen, "invalid IPv6 address in the host");
      goto out_fail;
    }
    out->host_is_ip = 6;
    p = close + 1;
  } else {
    const char *hend = memchr(p, ':', (size_t)(end - p));
    unsigned char addr[4];
    if (!hend) hend = end;
    if (hend == p) {
      rc = fail(errbuf, errlen, "empty host");
      goto out_fail;
    }
    if (!valid_name(p, hend)) {
      rc = fail(errbuf, errlen,
                "invalid host (expected a DNS name, an IPv4 address or "
                "[IPv6]; percent-encode reserved characters in the password)");
      goto out_fail;
    }
    out->host = strndup(p, (size_t)(hend - p));
    if (!out->host) goto nomem;
    if (only_digits_and_dots(out->host)) {
      if (inet_pton(AF_INET, out->host, addr) != 1) {
        rc = fail(errbuf, errlen, "invalid IPv4 address in the host");
        goto out_fail;
      }
      out->host_is_ip = 4;
    }
    p = hend;
  }

  /* port */
  if (p < end) {
    if (*p != ':') {
      rc = fail(errbuf, errlen, "unexpected characters after the host");
      goto out_fail;
    }
    p++;
    rc = parse_uint(p, end, 65535, &v);
    if (p == end) {
      rc = fail(errbuf, errlen, "empty port after ':'");
      goto out_fail;
    }
    if (rc == -1) {
      rc = fail(errbuf, errlen, "port is not a number");
      goto out_fail;
    }
    if (rc == -2 || v == 0) {
      rc = fail(errbuf, errlen, "port out of range (1-65535)");
      goto out_fail;
    }
    out->port = (unsigned)v;
    p = end;
  }

  /* database */
  if (*p == '/') {
    const char *dend;
    p++;
    dend = p + strcspn(p, "?#");
    if (dend > p) {
      rc = parse_uint(p, dend, 2147483647ul, &v);
      if (rc == -1) {
        rc = fail(errbuf, errlen, "database is not a non-negative number (expected /0, /1...)");
        goto out_fail;
      }
      if (rc == -2) {
        rc = fail(errbuf, errlen, "database number too large");
        goto out_fail;
      }
      out->db = (unsigned)v;
    }
    p = dend;
  }
  if (*p == '?') {
    rc = fail(errbuf, errlen, "query parameters are not supported");
    goto out_fail;
  }
  if (*p == '#') {
    rc = fail(errbuf, errlen, "a fragment ('#') is not supported");
    goto out_fail;
  }
  if (*p) {
    rc = fail(errbuf, errlen, "trailing characters");
    goto out_fail;
  }
  return 0;

bad_decode:
  if (!why) goto nomem;
  rc = fail(errbuf, errlen, why);
  goto out_fail;
nomem:
  rc = HEALTH_ENOMEM;
  if (errbuf && errlen) snprintf(errbuf, errlen, "out of memory");
out_fail:
  health__redis_url_free(out);
  return rc;
}

void health__redis_url_free(health__redis_url_t *u) {
  if (!u) return;
  if (u->password) {
    health__wipe(u->password, strlen(u->password));
    free(u->password);
  }
  free(u->user);
  free(u->host);
  memset(u, 0, sizeof *u);
}
