/* Connection and formatting helpers shared by the built-in checkers. */
#include "checkers/checker.h"

#include "checkers/target.h"
#include "net/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

int health__hostport_parse(const char *s, size_t n, unsigned default_port, health__hostport_t *out,
                           const char **why) {
  const char *e = s + n, *hs, *he, *p;
  unsigned char addr[16];
  memset(out, 0, sizeof *out);
  if (n == 0) {
    *why = "empty host";
    return HEALTH_EURL;
  }
  if (*s == '[') {
    hs = s + 1;
    he = memchr(hs, ']', (size_t)(e - hs));
    if (!he) {
      *why = "unterminated '[' in the host";
      return HEALTH_EURL;
    }
    p = he + 1;
    out->host_is_ip = 6;
  } else {
    hs = s;
    he = memchr(s, ':', n);
    if (!he) he = e;
    p = he;
  }
  if (he == hs) {
    *why = "empty host";
    return HEALTH_EURL;
  }
  if (he - hs > 253) {
    *why = "host name too long";
    return HEALTH_EURL;
  }
  if (!out->host_is_ip)
    for (const char *q = hs; q < he; q++)
      if (!name_char(*q)) {
        *why = "invalid host (expected a DNS name, an IPv4 address or [IPv6])";
        return HEALTH_EURL;
      }
  if (!(out->host = strndup(hs, (size_t)(he - hs)))) {
    *why = "out of memory";
    return HEALTH_ENOMEM;
  }
  if (out->host_is_ip == 6 && inet_pton(AF_INET6, out->host, addr) != 1) {
    *why = "invalid IPv6 address in the host";
    goto bad;
  }
  if (!out->host_is_ip && strspn(out->host, "0123456789.") == strlen(out->host)) {
    if (inet_pton(AF_INET, out->host, addr) != 1) {
      *why = "invalid IPv4 address in the host";
      goto bad;
    }
    out->host_is_ip = 4;
  }
  if (p == e) {
    if (!default_port) {
      *why = "missing port (expected host:port)";
      goto bad;
    }
    out->port = default_port;
    return 0;
  }
  if (*p != ':') {
    *why = "unexpected characters after the host";
    goto bad;
  }
  p++;
  unsigned long v = 0;
  if (p == e) {
    *why = "empty port after ':'";
    goto bad;
  }
  for (const char *q = p; q < e; q++) {
    if (*q < '0' || *q > '9') {
      *why = "port is not a number";
      goto bad;
    }
    v = v * 10 + (unsigned long)(*q - '0');
    if (v > 65535) break;
  }
  if (v == 0 || v > 65535) {
    *why = "port out of range (1-65535)";
    goto bad;
  }
  out->port = (unsigned)v;
  return 0;
bad:
  health__hostport_free(out);
  return HEALTH_EURL;
}

void health__hostport_free(health__hostport_t *hp) {
  if (!hp) return;
  free(hp->host);
  memset(hp, 0, sizeof *hp);
}

int health__net_connect(health__checker_t *ck, health_result_t *r, const health__hostport_t *hp,
                        uint64_t deadline, const char **phase, char *why, size_t len) {
  struct addrinfo hints, *res = NULL, *ai;
  char port[8], eb[96];
  int rc, fd = -1, e = 0;
  snprintf(port, sizeof port, "%u", hp->port);
  *phase = "dns";
  health__checker_phase(r, *phase);
  if (hp->host_is_ip) {
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if ((rc = getaddrinfo(hp->host, port, &hints, &res)) != 0) {
      snprintf(why, len, "invalid address: %s", gai_strerror(rc));
      return HEALTH__IO_ERROR;
    }
  } else {
    const char *w;
    rc = health__resolve(health__checker_dns(ck), hp->host, port, deadline, &res, &w);
    if (rc == 1) {
      snprintf(why, len, "%s", w ? w : "");
      return HEALTH__IO_TIMEOUT;
    }
    if (rc) {
      snprintf(why, len, "DNS resolution failed: %s", w);
      return HEALTH__IO_ERROR;
    }
  }
  *phase = "connect";
  health__checker_phase(r, *phase);
  for (ai = res; ai; ai = ai->ai_next) {
    fd = health__tcp_connect(ai->ai_addr, ai->ai_addrlen, deadline, &e);
    if (fd >= 0 || health__now_ms() >= deadline) break;
  }
  freeaddrinfo(res);
  if (fd >= 0) return fd;
  if (e == ETIMEDOUT && health__now_ms() >= deadline) return HEALTH__IO_TIMEOUT;
  snprintf(why, len, "connect failed: %s", health__errno_text(e, eb, sizeof eb));
  return HEALTH__IO_ERROR;
}

void health__fmt_fixed(char *buf, size_t len, double v, int decimals) {
  static const unsigned pow10[] = {1, 10, 100, 1000};
  if (decimals < 0) decimals = 0;
  if (decimals > 3) decimals = 3;
  if (!isfinite(v)) {
    snprintf(buf, len, "0");
    return;
  }
  int neg = v < 0;
  double a = fabs(v) * pow10[decimals] + 0.5;
  if (a > 1e18) a = 1e18;
  unsigned long long n = (unsigned long long)a;
  unsigned long long ip = n / pow10[decimals], fp = n % pow10[decimals];
  if (decimals) snprintf(buf, len, "%s%llu.%0*llu", neg && n ? "-" : "", ip, decimals, fp);
  else snprintf(buf, len, "%s%llu", neg && n ? "-" : "", ip);
}

void health__fmt_bytes(char *buf, size_t len, uint64_t bytes) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char num[32];
  health__fmt_fixed(num, sizeof num, v, u == 0 ? 0 : 1);
  snprintf(buf, len, "%s %s", num, units[u]);
}

/* ---- http(s) URLs ---- */

static void base64(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = 0;
}

int health__http_url_parse(const char *url, health__http_target_t *t, char **auth,
                           const char **why) {
  const char *p, *end, *at = NULL;
  memset(t, 0, sizeof *t);
  if (auth) *auth = NULL;
  if (strncasecmp(url, "http://", 7) == 0) p = url + 7;
  else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    t->tls = 1;
  } else {
    *why = "expected an http:// or https:// URL";
    return HEALTH_EURL;
  }
  for (const char *q = url; *q; q++)
    if ((unsigned char)*q <= 0x20 || *q == 0x7f) {
      *why = "invalid character (space or control) in the URL";
      return HEALTH_EURL;
    }
  end = p + strcspn(p, "/?#");
  for (const char *q = p; q < end; q++)
    if (*q == '@') at = q;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    size_t n = (size_t)(at - p);
    char *plain = malloc(n + 1), *line = NULL;
    if (!plain) {
      *why = "out of memory";
      return HEALTH_ENOMEM;
    }
    /* user:password, decoded separately so an encoded ':' stays in place */
    size_t ul = colon ? (size_t)(colon - p) : n;
    if (health__pct_decode(p, p + ul, plain) != 0 ||
        (colon &&
         (strcat(plain, ":"), health__pct_decode(colon + 1, at, plain + strlen(plain)) != 0))) {
      health__wipe(plain, n + 1);
      free(plain);
      *why = "invalid percent-encoding in the user name or password";
      return HEALTH_EURL;
    }
    size_t pl = strlen(plain);
    if (auth && (line = malloc(pl * 4 / 3 + 64)) != NULL) {
      memcpy(line, "Authorization: Basic ", 21);
      base64((const unsigned char *)plain, pl, line + 21);
      strcat(line, "\r\n");
    }
    health__wipe(plain, n + 1);
    free(plain);
    if (auth && !line) {
      *why = "out of memory";
      return HEALTH_ENOMEM;
    }
    if (auth) *auth = line;
    p = at + 1;
  }
  int rc = health__hostport_parse(p, (size_t)(end - p), t->tls ? 443 : 80, &t->hp, why);
  if (rc) goto fail;
  size_t plen = strcspn(end, "#");
  if (plen > HEALTH__HTTP_PATH_MAX) {
    *why = "path too long";
    rc = HEALTH_EURL;
    goto fail;
  }
  if (asprintf(&t->path, "%s%.*s", *end == '/' ? "" : "/", (int)plen, end) < 0) {
    t->path = NULL;
    *why = "out of memory";
    rc = HEALTH_ENOMEM;
    goto fail;
  }
  return 0;
fail:
  health__http_target_free(t);
  if (auth && *auth) {
    health__wipe(*auth, strlen(*auth));
    free(*auth);
    *auth = NULL;
  }
  return rc;
}

void health__http_target_free(health__http_target_t *t) {
  health__hostport_free(&t->hp);
  free(t->path);
  t->path = NULL;
}
