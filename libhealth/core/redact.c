/* Secrets never leave the process: URLs and messages are scrubbed before
 * anything is stored, rendered or logged. */
#include "health_int.h"

#include <ctype.h>
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

static int is_space(char c) { return isspace((unsigned char)c) != 0; }

/*
 * Copy `s` replacing every value given to a key ending in "password"
 * ("password", "sslpassword"): key [ws] '=' [ws] value.  A value is
 * 'single-quoted' (with \ escapes, as in libpq's keyword/value syntax) or
 * runs to the next white space, and in a URL also to the next '&' or '#'.
 * The key is found anywhere, even inside another value: over-redacting is
 * the safe way to be wrong on a string nobody has validated.
 */
static void put_secrets(writer_t *w, const char *s, int url) {
  const char *copied = s, *p;
  while ((p = strstr(s, "password")) != NULL) {
    const char *q = p + 8;
    while (is_space(*q)) q++;
    if (*q != '=') {
      s = p + 8;
      continue;
    }
    for (q++; is_space(*q); q++) {}
    put(w, copied, (size_t)(q - copied));
    put(w, "***", 3);
    if (*q == '\'') {
      for (q++; *q && *q != '\''; q++)
        if (*q == '\\' && q[1]) q++;
      if (*q) q++;
    } else {
      for (; *q && !is_space(*q) && !(url && (*q == '&' || *q == '#')); q++)
        if (*q == '\\' && q[1]) q++;
    }
    s = copied = q;
  }
  put(w, copied, strlen(copied));
}

/* libpq's keyword/value syntax ("host=db password=s3cret") starts with
 * keyword [ws] '='; a URL or "user:password@host" never does.  It has no
 * user info: an '@', ':' or "://" in a value means nothing. */
static int is_conninfo(const char *s) {
  while (is_space(*s)) s++;
  if (!isalpha((unsigned char)*s) && *s != '_') return 0;
  while (isalnum((unsigned char)*s) || *s == '_') s++;
  while (is_space(*s)) s++;
  return *s == '=';
}

void health__redact_url(const char *url, char *out, size_t len) {
  if (!len) return;
  out[0] = 0;
  if (!url) return;
  writer_t w = {out, len, 0};
  if (is_conninfo(url)) {
    put_secrets(&w, url, 0);
    return;
  }
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
    put_secrets(&w, at, 1);
  } else {
    put_secrets(&w, url, 1);
  }
}

void health__redact_secret(const char *text, const char *secret, char *out, size_t len) {
  if (!len) return;
  out[0] = 0;
  if (!text) return;
  writer_t w = {out, len, 0};
  size_t sl = secret ? strlen(secret) : 0;
  const char *s = text;
  while (*s) {
    const char *p = sl ? strstr(s, secret) : NULL;
    if (!p) {
      put(&w, s, strlen(s));
      return;
    }
    put(&w, s, (size_t)(p - s));
    put(&w, "***", 3);
    s = p + sl;
  }
}
