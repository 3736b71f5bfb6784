/*
 * libFuzzer target: the HTTP probe's parsers (probe/request.c, probe/answer.c).
 * The first byte picks what the rest is.
 *
 * Even first byte, a URL (then, after a NUL, a header):
 *  - parse_url returns 0 or -1 with a non-empty reason;
 *  - on success the target starts with '/', and neither the target nor the
 *    Host value holds a space, a control character, a byte beyond ASCII or
 *    '#' (the request line and Host cannot be split or smuggled);
 *  - a header that passes check_header holds no CR or LF, and the request
 *    built from both is a request line, header lines each ending in CRLF,
 *    and one empty line at the end, or -1 when it does not fit;
 *  - a reason never repeats the user information of the URL.
 *
 * Odd first byte, an answer:
 *  - fed whole, or in pieces whose sizes the input picks, the parser ends
 *    in the same state (result, status, error text): framing does not
 *    depend on how bytes arrive;
 *  - a reported status is 100-599; "used" never exceeds what was fed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe_int.h"

static void die(const char *what) {
  fprintf(stderr, "fuzz_probe: %s\n", what);
  abort();
}

static void check_url(const uint8_t *d, size_t n) {
  char *s = malloc(n + 1);
  memcpy(s, d, n);
  s[n] = 0;
  const char *header = s + strlen(s) < s + n ? s + strlen(s) + 1 : NULL;
  health__probe_url_t *u = malloc(sizeof *u);
  char why[256] = "";
  int rc = health__probe_parse_url(s, u, why, sizeof why);
  if (rc != 0 && rc != -1) die("parse_url: bad result");
  if (rc == -1) {
    if (!why[0]) die("parse_url: no reason");
    const char *at = strchr(s, '@'), *sep = strstr(s, "://");
    if (at && sep && at > sep + 3 && at - (sep + 3) > 3) {
      char user[64];
      size_t ul = (size_t)(at - (sep + 3));
      if (ul < sizeof user && !memchr(sep + 3, '/', ul)) {
        memcpy(user, sep + 3, ul);
        user[ul] = 0;
        /* The message's own words may contain it ("http:" in a hint
         * about the scheme): only a reason that changes with the user
         * information repeats it. */
        if (strstr(why, user)) {
          char *masked = strdup(s), why2[256] = "";
          health__probe_url_t *u2 = malloc(sizeof *u2);
          if (!masked || !u2) die("out of memory");
          memset(masked + (sep + 3 - s), 'x', ul);
          health__probe_parse_url(masked, u2, why2, sizeof why2);
          if (!strstr(why2, user)) die("reason repeats the user information");
          free(u2);
          free(masked);
        }
      }
    }
  } else {
    if (u->target[0] != '/') die("target does not start with '/'");
    for (const char *p = u->target; *p; p++)
      if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F || *p == '#')
        die("bad byte in the target");
    for (const char *p = u->authority; *p; p++)
      if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F) die("bad byte in Host");
    const char *hs[2] = {NULL, NULL};
    if (header && health__probe_check_header(header, why, sizeof why) == 0) {
      if (strpbrk(header, "\r\n")) die("a header with CR or LF passed");
      hs[0] = header;
    }
    char *req = malloc(HEALTH__PROBE_REQUEST_MAX);
    int len = health__probe_request(u, hs, req, HEALTH__PROBE_REQUEST_MAX);
    if (len >= 0) {
      if ((size_t)len != strlen(req)) die("request length");
      if (len < 4 || strcmp(req + len - 4, "\r\n\r\n") != 0) die("request does not end the head");
      /* every LF is preceded by CR, and only the last line is empty */
      for (int i = 0; i < len; i++) {
        if (req[i] == '\n' && (i == 0 || req[i - 1] != '\r')) die("bare LF in the request");
        if (req[i] == '\r' && req[i + 1] != '\n') die("bare CR in the request");
        if (i >= 3 && i < len - 1 && req[i] == '\n' && req[i - 2] == '\n') die("empty line inside");
      }
      if (strncmp(req, "GET /", 5) != 0) die("request line");
    }
    free(req);
  }
  free(u);
  free(s);
}

typedef struct {
  int rc, status, head;
  const char *error;
} outcome_t;

static outcome_t run(const uint8_t *d, size_t n, const uint8_t *sizes, size_t ns) {
  health__probe_answer_t a;
  health__probe_answer_init(&a);
  outcome_t o = {HEALTH__ANS_MORE, 0, 0, NULL};
  size_t off = 0, k = 0;
  while (off < n && (o.rc == HEALTH__ANS_MORE || o.rc == HEALTH__ANS_HEAD)) {
    size_t step = ns ? (size_t)sizes[k++ % ns] + 1 : n - off;
    if (step > n - off) step = n - off;
    size_t used;
    o.rc = health__probe_answer_feed(&a, (const char *)d + off, step, &used);
    if (used > step) die("used more than fed");
    off += used;
    if (o.rc == HEALTH__ANS_HEAD) {
      o.head++;
      if (a.status < 100 || a.status > 599) die("status out of range");
    }
  }
  if (o.rc == HEALTH__ANS_MORE || o.rc == HEALTH__ANS_HEAD) o.rc = health__probe_answer_eof(&a);
  o.status = a.status;
  o.error = a.error;
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (n < 1) return 0;
  if (!(d[0] & 1)) {
    check_url(d + 1, n - 1);
    return 0;
  }
  /* odd: d[1] = how many size bytes follow, then the answer */
  size_t ns = n > 1 ? d[1] % 16 : 0;
  if (n < 2 + ns) return 0;
  const uint8_t *sizes = d + 2, *ans = d + 2 + ns;
  size_t an = n - 2 - ns;
  outcome_t whole = run(ans, an, NULL, 0);
  outcome_t one = run(ans, an, (const uint8_t *)"\0", 1);
  outcome_t pieces = run(ans, an, sizes, ns);
  if (whole.rc != one.rc || whole.rc != pieces.rc) die("result depends on the pieces");
  if (whole.status != one.status || whole.status != pieces.status)
    die("status depends on the pieces");
  if (whole.head != one.head || whole.head != pieces.head) die("head count depends on the pieces");
  if ((whole.error != one.error) || (whole.error != pieces.error))
    die("error depends on the pieces");
  return 0;
}
