/*
 * The probe's request side: an http:// URL parsed the way curl reads it
 * (RFC 3986), turned into an RFC 9112 request: origin-form target with the
 * query kept and the fragment dropped, dot segments removed, bytes outside
 * ASCII percent-encoded, and a Host header that carries the port when it is
 * not 80 and brackets around an IPv6 literal.  Pure functions: the
 * conformance test compares their bytes with curl's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "probe/probe_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int bad(char *why, size_t wl, const char *fmt, ...) {
  if (why && wl) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* RFC 3986 §5.2.4 on the path alone (in place; percent-encoded dots are not
 * dot segments, as in curl). */
static void remove_dot_segments(char *path) {
  char *in = path, *out = path;
  while (*in) {
    if (strncmp(in, "../", 3) == 0) in += 3;
    else if (strncmp(in, "./", 2) == 0) in += 2;
    else if (strncmp(in, "/./", 3) == 0) in += 2;
    else if (strcmp(in, "/.") == 0) in[1] = 0; /* becomes "/" */
    else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
      in += 3;
      if (!*in) *--in = '/'; /* "/.." becomes "/" */
      while (out > path && *--out != '/') {}
    } else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
      in += strlen(in);
    } else {
      do *out++ = *in++;
      while (*in && *in != '/');
    }
  }
  *out = 0;
}

static int is_unreserved_host(int c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int health__probe_parse_url(const char *url, health__probe_url_t *u, char *why, size_t wl) {
  memset(u, 0, sizeof *u);
  if (!url || !*url) return bad(why, wl, "no URL");
  size_t ulen = strlen(url);
  if (ulen > HEALTH__PROBE_URL_MAX)
    return bad(why, wl, "URL longer than %d bytes", HEALTH__PROBE_URL_MAX);
  for (size_t i = 0; i < ulen; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= 0x20 || c == 0x7F)
      return bad(why, wl, "malformed URL: %s at offset %zu (percent-encode it: %%%02X)",
                 c == ' ' ? "a space" : "a control character", i, c);
  }
  const char *sep = strstr(url, "://");
  size_t sl = sep ? (size_t)(sep - url) : 0;
  if (!sep || sl == 0 || strcspn(url, ":/?#") != sl)
    return bad(why, wl, "malformed URL (expected http://host[:port][/path])");
  if (sl == 5 && strncasecmp(url, "https", 5) == 0)
    return bad(why, wl, "https:// is not supported: probe the plain health port (http://)");
  if (sl != 4 || strncasecmp(url, "http", 4) != 0)
    return bad(why, wl, "unsupported scheme '%.*s' (expected http://)", (int)(sl > 16 ? 16 : sl),
               url);
  const char *p = sep + 3;
  size_t alen = strcspn(p, "/?#");
  const char *at = memchr(p, '@', alen);
  if (at)
    return bad(why, wl,
               "user information (user@host) in the URL is not supported: "
               "send credentials in a header (-H 'Authorization: ...')");
  const char *aend = p + alen, *hend;
  char *authority = u->authority;
  if (*p == '[') {
    hend = memchr(p, ']', alen);
    if (!hend) return bad(why, wl, "malformed URL: '[' without ']' around the IPv6 address");
    size_t hl = (size_t)(hend - p - 1);
    if (memchr(p, '%', hl + 1))
      return bad(why, wl, "IPv6 zone identifiers (%%25...) are not supported");
    if (hl == 0 || hl >= sizeof u->host) return bad(why, wl, "malformed URL: bad IPv6 address");
    memcpy(u->host, p + 1, hl);
    u->host[hl] = 0;
    if (inet_pton(AF_INET6, u->host, u->addr) != 1)
      return bad(why, wl, "malformed URL: '%s' is not an IPv6 address", u->host);
    u->numeric = 6;
    snprintf(authority, sizeof u->authority, "[%s]", u->host);
    hend++;
  } else {
    size_t hl = strcspn(p, ":/?#");
    hend = p + hl;
    if (hl == 0) return bad(why, wl, "malformed URL: no host");
    if (hl >= sizeof u->host - 2) return bad(why, wl, "host name longer than 253 bytes");
    int hexish = isdigit((unsigned char)*p);
    for (size_t i = 0; i < hl; i++) {
      unsigned char c = (unsigned char)p[i];
      if (c >= 0x80) return bad(why, wl, "host name must be ASCII (use its punycode form)");
      if (c == '%') return bad(why, wl, "percent-encoded host names are not supported");
      if (!is_unreserved_host(c))
        return bad(why, wl, "malformed URL: character '%c' in the host", c);
      if (!isxdigit(c) && c != '.' && c != 'x' && c != 'X') hexish = 0;
    }
    memcpy(u->host, p, hl);
    u->host[hl] = 0;
    struct in_addr a4;
    /* 127.1, 0x7f.0.0.1 and 2130706433 are IPv4 addresses to curl and to
     * getaddrinfo alike; the Host header gets the dotted form, as curl's. */
    if (hexish && inet_aton(u->host, &a4)) {
      u->numeric = 4;
      memcpy(u->addr, &a4, 4);
      inet_ntop(AF_INET, &a4, u->host, sizeof u->host);
    }
    snprintf(authority, sizeof u->authority, "%s", u->host); /* as typed, like curl */
  }
  u->port_num = 80;
  if (hend < aend) {
    if (*hend != ':') return bad(why, wl, "malformed URL: unexpected '%c' after the host", *hend);
    const char *d = hend + 1;
    size_t dl = (size_t)(aend - d);
    if (strspn(d, "0123456789") != dl)
      return bad(why, wl, "malformed URL: port '%.*s' is not a number", (int)(dl > 16 ? 16 : dl),
                 d);
    if (dl) { /* ":" alone means the default port (RFC 3986 §3.2.3) */
      while (dl > 1 && *d == '0') d++, dl--; /* leading zeros are allowed */
      unsigned long v = 0;
      for (size_t i = 0; i < dl && v <= 65535; i++) v = v * 10 + (unsigned)(d[i] - '0');
      if (v < 1 || v > 65535) return bad(why, wl, "port out of range (1-65535)");
      u->port_num = (unsigned)v;
    }
  }
  snprintf(u->port, sizeof u->port, "%u", u->port_num);
  if (u->port_num != 80) {
    size_t n = strlen(authority);
    snprintf(authority + n, sizeof u->authority - n, ":%u", u->port_num);
  }
  /* path and query, fragment dropped; bytes beyond ASCII percent-encoded */
  const char *r = aend;
  size_t rl = strcspn(r, "#");
  char *t = u->target, *tend = u->target + sizeof u->target - 4;
  if (*r != '/') *t++ = '/';
  int in_query = 0;
  char *query_at = NULL;
  for (size_t i = 0; i < rl; i++) {
    unsigned char c = (unsigned char)r[i];
    if (t >= tend) return bad(why, wl, "URL longer than %d bytes", HEALTH__PROBE_URL_MAX);
    if (c == '?' && !in_query) {
      in_query = 1;
      *t = 0;
      query_at = t;
    }
    if (c >= 0x80) {
      static const char hex[] = "0123456789ABCDEF";
      *t++ = '%';
      *t++ = hex[c >> 4];
      *t++ = hex[c & 15];
    } else {
      *t++ = (char)c;
    }
  }
  *t = 0;
  if (query_at) {
    /* the path is the part before '?': clean it and move the query up */
    char q[sizeof u->target];
    snprintf(q, sizeof q, "%s", query_at + 1);
    *query_at = 0;
    remove_dot_segments(u->target);
    size_t n = strlen(u->target);
    snprintf(u->target + n, sizeof u->target - n, "?%s", q);
  } else {
    remove_dot_segments(u->target);
  }
  if (u->target[0] != '/') { /* only the query or nothing was left */
    memmove(u->target + 1, u->target, strlen(u->target) + 1);
    u->target[0] = '/';
  }
  return 0;
}

/* ---- accepted status codes ---- */

static void expect_set(health__probe_expect_t *e, int lo, int hi) {
  for (int c = lo; c <= hi; c++) e->bits[(c - 200) / 64] |= 1ULL << ((c - 200) % 64);
}

int health__probe_expect_has(const health__probe_expect_t *e, int code) {
  if (code < 200 || code > 599) return 0;
  return (int)((e->bits[(code - 200) / 64] >> ((code - 200) % 64)) & 1);
}

static int code3(const char *s, size_t n, int *out) {
  if (n != 3 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
      !isdigit((unsigned char)s[2]))
    return -1;
  *out = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  return 0;
}

int health__probe_parse_expect(const char *spec, health__probe_expect_t *e, char *why, size_t wl) {
  memset(e, 0, sizeof *e);
  if (!spec || !*spec) return bad(why, wl, "empty list of accepted status codes");
  for (const char *p = spec;;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, ",");
    size_t m = n;
    while (m && p[m - 1] == ' ') m--;
    const char *dash = memchr(p, '-', m);
    int lo, hi;
    if (m == 3 && isdigit((unsigned char)p[0]) && (p[1] == 'x' || p[1] == 'X') &&
        (p[2] == 'x' || p[2] == 'X')) {
      lo = (p[0] - '0') * 100;
      hi = lo + 99;
    } else if (dash ? code3(p, (size_t)(dash - p), &lo) ||
                          code3(dash + 1, m - (size_t)(dash - p) - 1, &hi)
                    : code3(p, m, &lo)) {
      return bad(why, wl,
                 "bad status code list '%.40s' (expected codes and ranges "
                 "like 200-399 or 200,204 or 2xx)",
                 spec);
    } else if (!dash) {
      hi = lo;
    }
    if (lo < 200 || hi > 599 || lo > hi)
      return bad(why, wl,
                 "'%.*s' in the status code list is not a range of final "
                 "status codes (200-599)",
                 (int)(m > 16 ? 16 : m), p);
    expect_set(e, lo, hi);
    if (!p[n]) break;
    p += n + 1;
  }
  return 0;
}

/* ---- request headers ---- */

static int is_tchar(int c) { return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c)); }

int health__probe_check_header(const char *h, char *why, size_t wl) {
  size_t n = 0;
  while (h[n] && is_tchar((unsigned char)h[n])) n++;
  if (n == 0 || (h[n] != ':' && !(h[n] == ';' && !h[n + 1])))
    return bad(why, wl, "bad header '%.40s' (expected 'Name: value')", h);
  for (const char *v = h + n + 1; *v; v++)
    if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7F)
      return bad(why, wl, "bad header '%.*s': a control character in its value", (int)n, h);
  if (n == 4 && strncasecmp(h, "Host", 4) == 0 && !h[n + 1 + strspn(h + n + 1, " \t")])
    return bad(why, wl, "an empty Host header is not allowed (HTTP/1.1 requires one)");
  return 0;
}

static int header_is(const char *h, const char *name) {
  size_t n = strlen(name);
  return strncasecmp(h, name, n) == 0 && (h[n] == ':' || h[n] == ';');
}

/* "Name:" with nothing after it removes a default (curl's rule) and is
 * never sent itself; "Name;" sends an empty "Name:". */
static int header_removes(const char *h) {
  const char *c = h + strcspn(h, ":;");
  return *c == ':' && !c[1 + strspn(c + 1, " \t")];
}

typedef struct {
  char *p, *end;
  int overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if ((size_t)(o->end - o->p) <= n) {
    o->overflow = 1;
    return;
  }
  memcpy(o->p, s, n);
  o->p += n;
}
static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void put_header(out_t *o, const char *h) {
  size_t n = strcspn(h, ":;");
  if (h[n] == ';') { /* "Name;" */
    put(o, h, n);
    puts_(o, ":");
  } else {
    puts_(o, h);
  }
  puts_(o, "\r\n");
}

static const char *given(const char *const *headers, const char *name) {
  const char *last = NULL;
  for (const char *const *h = headers; h && *h; h++)
    if (header_is(*h, name)) last = *h;
  return last;
}

/* The order is curl's, so that the conformance test can compare bytes:
 * Host in place (a given one replaces it), then the defaults that were not
 * given, then the given headers in their order. */
int health__probe_request(const health__probe_url_t *u, const char *const *headers, char *buf,
                          size_t len) {
  out_t o = {buf, buf + len, 0};
  const char *host = given(headers, "Host");
  puts_(&o, "GET ");
  puts_(&o, u->target);
  puts_(&o, " HTTP/1.1\r\nHost: ");
  puts_(&o, host ? host + 5 + strspn(host + 5, " \t") : u->authority);
  puts_(&o, "\r\n");
  if (!given(headers, "User-Agent"))
    puts_(&o, "User-Agent: health-probe/" HEALTH_VERSION_STRING "\r\n");
  if (!given(headers, "Accept")) puts_(&o, "Accept: */*\r\n");
  /* One request per connection: say so, so the server closes at once. */
  if (!given(headers, "Connection")) puts_(&o, "Connection: close\r\n");
  for (const char *const *h = headers; h && *h; h++)
    if (!header_is(*h, "Host") && !header_removes(*h)) put_header(&o, *h);
  puts_(&o, "\r\n");
  if (o.overflow) return -1;
  *o.p = 0;
  return (int)(o.p - buf);
}
