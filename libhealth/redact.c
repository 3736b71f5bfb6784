/* Secrets never leave the process: URLs and messages are scrubbed before
 * anything is stored, rendered or logged. */
#include "health-int.h"

#include <string.h>

typedef struct {
  char *out;
  size_t len, o;
} writer_t;

static void put(writer_t *w, const char *s, size_t n) {
  if (w->o + n >= w->len) n = w->len - 1 - w->o;
  memcpy(w->out + w->o, s, n);
  w->o += n;
  w->out[w->o] = 0;
}

/* Copy s[0..n) replacing the value of every "password=" parameter. */
static void put_params(writer_t *w, const char *s, size_t n) {
  const char *end = s + n;
  while (s < end) {
    const char *p = memmem(s, (size_t)(end - s), "password=", 9);
    if (!p) { put(w, s, (size_t)(end - s)); return; }
    put(w, s, (size_t)(p + 9 - s));
    put(w, "***", 3);
    s = p + 9;
    if (s < end && *s == '\'') { /* conninfo 'quoted value', \' escapes */
      for (s++; s < end && *s != '\''; s++)
        if (*s == '\\' && s + 1 < end) s++;
      if (s < end) s++;
    } else {
      while (s < end && *s != '&' && *s != '#' && *s != ' ') s++;
    }
  }
}

void health__redact_url(const char *url, char *out, size_t len) {
  if (!len) return;
  out[0] = 0;
  if (!url) return;
  writer_t w = {out, len, 0};
  const char *scheme = strstr(url, "://");
  const char *auth = scheme ? scheme + 3 : url;
  /* The userinfo is whatever precedes the last '@'.  Not only the last '@'
   * of the authority: a password may hold an unencoded '/', '?' or '#',
   * and this runs on input nobody has validated yet.  An '@' in a path or
   * query over-redacts, which is the safe way to be wrong. */
  const char *at = strrchr(auth, '@');
  const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
  if (colon) {
    put(&w, url, (size_t)(colon + 1 - url));
    put(&w, "***", 3);
    put_params(&w, at, strlen(at));
  } else {
    put_params(&w, url, strlen(url));
  }
}

void health__redact_secret(const char *text, const char *secret, char *out,
                           size_t len) {
  if (!len) return;
  out[0] = 0;
  if (!text) return;
  writer_t w = {out, len, 0};
  size_t sl = secret ? strlen(secret) : 0;
  const char *s = text;
  while (*s) {
    const char *p = sl ? strstr(s, secret) : NULL;
    if (!p) { put(&w, s, strlen(s)); return; }
    put(&w, s, (size_t)(p - s));
    put(&w, "***", 3);
    s = p + sl;
  }
}
