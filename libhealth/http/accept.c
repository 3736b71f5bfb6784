/* /metrics content negotiation: which of the two formats libhealth writes
 * (the Prometheus text format 0.0.4, OpenMetrics 1.0.0) an Accept header
 * prefers, by RFC 9110 section 12.5.1.
 *
 * Each format takes the quality value of the most specific media range
 * that matches it: a full type with its version parameter, then the full
 * type alone, then the type's group wildcard, then the any-type wildcard; a range whose version
 * parameter names another version does not match (Prometheus lists OpenMetrics 0.0.1 and text 1.0.0
 * beside the versions served here).  OpenMetrics is chosen only when its quality is above zero and
 * above the text format's: on a tie the text format, the default, wins.  A range with a malformed q
 * is ignored. Bounded: at most ACCEPT_MAX bytes of the header are read. */
#include "health_int.h"

#include <string.h>
#include <strings.h>

#define ACCEPT_MAX 4096

typedef struct {
  int spec;   /* specificity of the best match so far; 0: none */
  unsigned q; /* its quality, 0-1000 */
} match_t;

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* "0", "0.5", "1.000": RFC 9110's qvalue, in thousandths; -1 if malformed. */
static int parse_q(const char *s, size_t n) {
  if (n == 0 || (s[0] != '0' && s[0] != '1')) return -1;
  int v = (s[0] - '0') * 1000;
  if (n == 1) return v;
  if (s[1] != '.' || n > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < n; i++, scale /= 10) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v += (s[i] - '0') * scale;
  }
  return v > 1000 ? -1 : v;
}

static int eq(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* Fold one media range [s, s+n) into the two formats' matches. */
static void fold_range(const char *s, size_t n, match_t *om, match_t *text) {
  const char *end = s + n, *p = s;
  while (p < end && *p != ';') p++;
  const char *type = s;
  size_t tn = (size_t)(p - s);
  while (tn && is_ows(type[tn - 1])) tn--;
  int q = 1000;
  const char *version = NULL;
  size_t vn = 0;
  while (p < end) { /* at a ';' */
    p++;
    while (p < end && is_ows(*p)) p++;
    const char *name = p;
    while (p < end && *p != '=' && *p != ';') p++;
    size_t nn = (size_t)(p - name);
    while (nn && is_ows(name[nn - 1])) nn--;
    const char *val = p;
    size_t valn = 0;
    if (p < end && *p == '=') {
      val = ++p;
      if (p < end && *p == '"') {
        val = ++p;
        while (p < end && *p != '"') p++;
        valn = (size_t)(p - val);
        if (p < end) p++;
      } else {
        while (p < end && *p != ';') p++;
        valn = (size_t)(p - val);
      }
      while (valn && is_ows(val[valn - 1])) valn--;
    }
    while (p < end && *p != ';') p++;
    if (eq(name, nn, "q")) {
      q = parse_q(val, valn);
      if (q < 0) return; /* malformed: the range is ignored */
    } else if (eq(name, nn, "version")) {
      version = val, vn = valn;
    }
  }
  struct {
    const char *full, *group, *version;
    match_t *m;
  } fmt[2] = {{"application/openmetrics-text", "application/*", "1.0.0", om},
              {"text/plain", "text/*", "0.0.4", text}};
  for (int i = 0; i < 2; i++) {
    int spec = 0;
    if (eq(type, tn, fmt[i].full)) {
      if (version && !eq(version, vn, fmt[i].version)) continue;
      spec = version ? 4 : 3;
    } else if (eq(type, tn, fmt[i].group)) {
      spec = 2;
    } else if (eq(type, tn, "*/*")) {
      spec = 1;
    }
    if (!spec || spec < fmt[i].m->spec) continue;
    if (spec > fmt[i].m->spec || (unsigned)q > fmt[i].m->q) fmt[i].m->q = (unsigned)q;
    fmt[i].m->spec = spec;
  }
}

int health__accept_openmetrics(const char *accept) {
  if (!accept) return 0;
  match_t om = {0, 0}, text = {0, 0};
  size_t len = strnlen(accept, ACCEPT_MAX);
  const char *p = accept, *end = accept + len;
  while (p < end) {
    while (p < end && (is_ows(*p) || *p == ',')) p++;
    const char *start = p;
    int quoted = 0;
    while (p < end && (quoted || *p != ',')) {
      if (*p == '"') quoted = !quoted;
      p++;
    }
    if (p > start) fold_range(start, (size_t)(p - start), &om, &text);
  }
  return om.spec && om.q > 0 && (!text.spec || om.q > text.q);
}
