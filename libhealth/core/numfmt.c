/*
 * Numbers that leave the library (JSON bodies, log lines, metrics): the
 * shortest decimal that reads back as the same double, independent of the
 * process locale.
 *
 * Why not "%f"/"%g": both follow LC_NUMERIC, so an application that calls
 * setlocale(LC_ALL, "") under de_DE prints "1234,568" (invalid JSON); "%.3f"
 * also prints 1e300 as 301 digits and 0.0001 as "0.000".  Why not uselocale():
 * it needs a locale object per thread or a global one to free, and the
 * formatter would still depend on which locale the caller's thread is in.
 *
 * How: "%.*e" gives correctly rounded significant digits in any locale;
 * only its radix character varies, and we never use it: the digits and the
 * exponent are taken out and laid out by hand.  The shortest precision that
 * round-trips is found by binary search (round-tripping is monotone in the
 * precision: a nearest (p+1)-digit decimal is never farther than the
 * nearest p-digit one), checked with strtod() on a string that has no radix
 * character at all ("12345e-7"), so the check is locale-free too.  The
 * layout is JavaScript's Number.prototype.toString: plain decimals for
 * 1e-7 < |v| < 1e21, "1.5e+300" / "1e-7" beyond.
 */
#include "health_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits (no leading zero unless v == 0) and the decimal
 * exponent of the first one, from "%.*e" of |v| with `prec` digits.
 * Returns the number of digits, 0 on a formatting failure. */
static int sig_digits(double av, int prec, char *digits, int *exp10) {
  char tmp[64];
  int n = snprintf(tmp, sizeof tmp, "%.*e", prec - 1, av);
  if (n <= 0 || (size_t)n >= sizeof tmp) return 0;
  int nd = 0;
  const char *p = tmp;
  for (; *p && *p != 'e' && *p != 'E'; p++)
    if (*p >= '0' && *p <= '9' && nd < 17) digits[nd++] = *p; /* skips the radix, whatever it is */
  if (*p != 'e' && *p != 'E') return 0;
  *exp10 = atoi(p + 1); /* "+05", "-300": plain ASCII digits in every locale */
  digits[nd] = 0;
  return nd;
}

/* Does digits x 10^(exp10 - nd + 1) read back as av? */
static int round_trips(double av, const char *digits, int nd, int exp10) {
  char tmp[48];
  snprintf(tmp, sizeof tmp, "%se%d", digits, exp10 - nd + 1);
  return strtod(tmp, NULL) == av;
}

size_t health__fmt_double(double v, char *buf, size_t len) {
  char out[HEALTH__FMT_DOUBLE_LEN];
  size_t o = 0;
  if (isnan(v)) {
    memcpy(out, "NaN", 4);
    o = 3;
  } else if (isinf(v)) {
    memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
    o = 4;
  } else if (v == 0) {
    out[o++] = '0'; /* -0 too: it compares equal, and "-0" only confuses */
  } else {
    double av = fabs(v);
    char digits[18], best[18];
    int exp10 = 0, best_exp = 0, best_nd = 0;
    int lo = 1, hi = 17;
    while (lo <= hi) {
      int mid = (lo + hi) / 2;
      int e, nd = sig_digits(av, mid, digits, &e);
      if (nd > 0 && round_trips(av, digits, nd, e)) {
        memcpy(best, digits, (size_t)nd + 1);
        best_nd = nd;
        best_exp = e;
        hi = mid - 1;
      } else {
        lo = mid + 1;
      }
    }
    if (best_nd == 0) { /* cannot happen with a working libc: 17 digits always do */
      best_nd = sig_digits(av, 17, best, &best_exp);
      if (best_nd == 0) {
        best[0] = '0';
        best[1] = 0;
        best_nd = 1;
        best_exp = 0;
      }
    }
    while (best_nd > 1 && best[best_nd - 1] == '0') best[--best_nd] = 0;
    exp10 = best_exp;

    if (v < 0) out[o++] = '-';
    int k = best_nd, pt = exp10 + 1; /* value = 0.best x 10^pt */
    if (k <= pt && pt <= 21) {
      memcpy(out + o, best, (size_t)k);
      o += (size_t)k;
      for (int i = k; i < pt; i++) out[o++] = '0';
    } else if (0 < pt && pt <= 21) {
      memcpy(out + o, best, (size_t)pt);
      o += (size_t)pt;
      out[o++] = '.';
      memcpy(out + o, best + pt, (size_t)(k - pt));
      o += (size_t)(k - pt);
    } else if (-6 < pt && pt <= 0) {
      out[o++] = '0';
      out[o++] = '.';
      for (int i = pt; i < 0; i++) out[o++] = '0';
      memcpy(out + o, best, (size_t)k);
      o += (size_t)k;
    } else {
      out[o++] = best[0];
      if (k > 1) {
        out[o++] = '.';
        memcpy(out + o, best + 1, (size_t)(k - 1));
        o += (size_t)(k - 1);
      }
      int n = snprintf(out + o, sizeof out - o, "e%c%d", pt - 1 < 0 ? '-' : '+', abs(pt - 1));
      if (n > 0) o += (size_t)n;
    }
    out[o] = 0;
  }
  if (len > 0) {
    size_t n = o < len - 1 ? o : len - 1;
    memcpy(buf, out, n);
    buf[n] = 0;
  }
  return o;
}

void health__buf_double(health__buf_t *b, double v) {
  char tmp[HEALTH__FMT_DOUBLE_LEN];
  size_t n = health__fmt_double(v, tmp, sizeof tmp);
  health__buf_add(b, tmp, n);
}
