/* Values of HEALTH_* variables, one parser per kind: strict and locale-free (a
 * comma-decimal LC_NUMERIC must not change what "12.5%" means). */
#include "health_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int health__env_bool(const char *s, int *out) {
  static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

/* Strict unsigned decimal: digits only (no sign, space or hex), lo to hi. */
int health__env_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out) {
  unsigned long long v = 0; /* 10 digits fit, even where long has 32 bits */
  if (!*s || strlen(s) > 10) return -1;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (unsigned long long)(*p - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = (unsigned)v;
  return 0;
}

/* "12", "12.5": a non-negative decimal, up to 3 fraction digits.  *end
 * points after it. */
static int parse_decimal(const char *s, double *out, const char **end) {
  double v = 0, scale = 1;
  const char *p = s;
  int digits = 0, frac = 0;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (digits >= 15) return -1;
    v = v * 10 + (*p - '0');
  }
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, frac++) {
      if (frac >= 3) return -1;
      scale /= 10;
      v += (*p - '0') * scale;
    }
    if (!frac) return -1;
  }
  if (!digits) return -1;
  *out = v;
  *end = p;
  return 0;
}

/* A percentage: "85" or "85%", 0-100. */
int health__env_percent(const char *s, double *out) {
  const char *e;
  if (parse_decimal(s, out, &e) != 0) return -1;
  if (*e == '%') e++;
  return *e || *out > 100 ? -1 : 0;
}

/* A disk threshold: "10%" (percent of free space) or a free size, exactly
 * as documented: a whole number of bytes ("1048576"), or a number (up to 3
 * decimals) followed by one of K, M, G, T, powers of 1024 ("500M", "1.5G").
 * Nothing else: "2GB" and "100GiB" are refused rather than guessed at (GB
 * is 10^9 to many readers), and so are "1m" and a fraction of a byte.
 * *is_pct says which. */
int health__env_amount(const char *s, double *pct, uint64_t *bytes, int *is_pct) {
  const char *e;
  double v;
  if (parse_decimal(s, &v, &e) != 0) return -1;
  if (*e == '%') {
    if (e[1] || v > 100) return -1;
    *pct = v;
    *is_pct = 1;
    return 0;
  }
  double mult = 1;
  const char *u = *e ? strchr("KMGT", *e) : NULL;
  if (*e && (!u || e[1])) return -1;
  if (u)
    for (const char *q = "KMGT"; q <= u; q++) mult *= 1024;
  else if (strchr(s, '.')) return -1; /* a fraction of a byte */
  v *= mult;
  if (v > 1e18) return -1;
  *bytes = (uint64_t)v;
  *is_pct = 0;
  return 0;
}
