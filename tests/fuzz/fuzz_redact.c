/*
 * libFuzzer target: redaction (core/redact.c, health__redact_url and
 * health__redact_secret).
 *
 * Input: [mode][buffer size][secret length][secret][rest].  Modes:
 *   0  health__redact_secret(rest, secret)
 *   1  health__redact_url(rest) on whatever the fuzzer wrote
 *   2  a URL built around the secret: <a>://<user>:<secret>@<rest>
 *   3  a conninfo keyword string: host=h <a> password=<secret> <rest>, the secret
 *      written bare (no white space in it) or single-quoted with \ escapes,
 *      optionally with white space around '=' as libpq allows
 *
 * Invariants, for every buffer size from 1 to 4096:
 *  - the output is NUL-terminated inside the buffer;
 *  - a smaller buffer gives a prefix of what a large one gives (truncation
 *    is the only effect of the size);
 *  - a secret of 4 or more characters (not containing '*', which the
 *    replacement itself is made of) never appears in the output, unless it
 *    also appears in the parts of the input that are not secret, or another
 *    part also says "password" (then which value is the password depends
 *    on how the malformed string is read), or (mode 2) the string starts
 *    as libpq's keyword/value syntax, where "user:secret@" is no password;
 *  - mode 3, where nothing else in the string says "password": the output
 *    is exactly the input with the value replaced by "***" (in libpq's
 *    keyword/value syntax a bare value ends at white space only, so '&',
 *    '#', '@' and ':' are part of it, and there is no user info).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"

#define BIG 65536

static void die(const char *what, const char *in, const char *secret, const char *out) {
  fprintf(stderr, "fuzz_redact: %s\n", what);
  const char *lab[3] = {"in", "secret", "out"};
  const char *val[3] = {in, secret, out};
  for (int k = 0; k < 3; k++) {
    if (!val[k]) continue;
    fprintf(stderr, "  %s: ", lab[k]);
    for (const unsigned char *p = (const unsigned char *)val[k]; *p; p++)
      fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", *p);
    fprintf(stderr, "\n");
  }
  abort();
}

/* Reads from the input, length-prefixed by one byte. */
typedef struct {
  const uint8_t *p, *end;
} reader_t;

static uint8_t take_byte(reader_t *r) { return r->p < r->end ? *r->p++ : 0; }

static char *take_str(reader_t *r, size_t n) {
  if (n > (size_t)(r->end - r->p)) n = (size_t)(r->end - r->p);
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, r->p, n);
  s[n] = 0;
  r->p += n;
  return s;
}

static char *concat(const char *const *parts, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(parts[i]);
  char *s = malloc(len);
  if (!s) abort();
  s[0] = 0;
  for (size_t i = 0; i < n; i++) strcat(s, parts[i]);
  return s;
}

/* "keyword =" at the start: libpq reads the string as keyword/value,
 * where "user:password@" means nothing. */
static int starts_like_conninfo(const char *s) {
  while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
  while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
         *s == '_')
    s++;
  while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
  return *s == '=';
}

/* mode 0: redact_secret; others: redact_url. */
static void run(int mode, const char *in, const char *secret, char *out, size_t len) {
  if (mode == 0) health__redact_secret(in, secret, out, len);
  else health__redact_url(in, out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  reader_t r = {data, data + size};
  int mode = take_byte(&r) % 4;
  size_t small = 1 + (size_t)take_byte(&r) * 16 + take_byte(&r) % 16; /* 1..4096 */
  char *secret = take_str(&r, take_byte(&r));
  char *rest, *in, *clean; /* clean: the input with the secret replaced */
  char *exact = NULL;      /* the expected output, when it is known */
  int spaced = 0;
  int ambiguous = 0; /* another "password" key: the oracle is silent */

  if (mode == 0 || mode == 1) {
    rest = take_str(&r, (size_t)(r.end - r.p));
    in = strdup(rest);
    clean = NULL;
    if (mode == 1) {
      free(secret);
      secret = NULL; /* no known secret in free-form input */
    }
  } else {
    spaced = mode == 3 && (take_byte(&r) & 1);
    char *a = take_str(&r, take_byte(&r) % 32);
    char *user = take_str(&r, take_byte(&r) % 32);
    rest = take_str(&r, (size_t)(r.end - r.p));
    if (mode == 2) {
      const char *p1[] = {a, "://", user, ":", secret, "@", rest};
      const char *p2[] = {a, "://", user, ":", "@", rest};
      in = concat(p1, 7);
      clean = concat(p2, 6);
    } else {
      /* Bare values end at white space; quoted ones escape ' and \. */
      int quoted = strpbrk(secret, " \t\n\r\v\f'\\") != NULL || secret[0] == 0;
      char *q = malloc(2 * strlen(secret) + 3);
      if (!q) abort();
      size_t o = 0;
      if (quoted) q[o++] = '\'';
      for (const char *s = secret; *s; s++) {
        if (quoted && (*s == '\'' || *s == '\\')) q[o++] = '\\';
        q[o++] = *s;
      }
      if (quoted) q[o++] = '\'';
      q[o] = 0;
      /* libpq also accepts white space around '='. */
      const char *kw = spaced ? " password = " : " password=";
      /* It starts as a keyword/value string always does. */
      const char *p1[] = {"host=h ", a, kw, q, " ", rest};
      const char *p2[] = {"host=h ", a, kw, " ", rest};
      in = concat(p1, 6);
      clean = concat(p2, 5);
      /* Where nothing else in the string looks like a URL, a user
       * name or another password, the whole answer is known. */
      if (!strstr(a, "password") && !strstr(rest, "password") && secret[0]) {
        const char *p3[] = {"host=h ", a, kw, "***", " ", rest};
        exact = concat(p3, 6);
      }
      free(q);
    }
    ambiguous = strstr(a, "password") || strstr(user, "password") || strstr(rest, "password") ||
                (mode == 2 && starts_like_conninfo(a));
    free(a);
    free(user);
  }
  if (!in) abort();

  char *big = malloc(BIG), *out = malloc(small);
  if (!big || !out) abort();
  memset(big, 'X', BIG);
  run(mode, in, secret, big, BIG);
  if (!memchr(big, 0, BIG)) die("output not NUL-terminated (large buffer)", in, secret, NULL);
  size_t blen = strlen(big);

  memset(out, 'X', small);
  run(mode, in, secret, out, small);
  if (!memchr(out, 0, small)) die("output not NUL-terminated", in, secret, NULL);
  size_t olen = strlen(out);
  size_t want = blen < small - 1 ? blen : small - 1;
  if (olen != want || memcmp(out, big, olen) != 0)
    die("a smaller buffer is not a prefix of the full output", in, secret, out);

  /* Nothing but truncation: the one-byte buffer is the empty string. */
  char one = 'X';
  run(mode, in, secret, &one, 1);
  if (one != 0) die("one-byte buffer not emptied", in, secret, NULL);

  if (secret && strlen(secret) >= 4 && !strchr(secret, '*') && !ambiguous) {
    int also_elsewhere = clean ? strstr(clean, secret) != NULL : 0;
    if (!also_elsewhere && strstr(big, secret))
      die("the secret survived redaction", in, secret, big);
  }

  if (exact && strcmp(big, exact) != 0)
    die("the password value was not replaced whole", in, secret, big);

  free(big);
  free(out);
  free(exact);
  free(in);
  free(clean);
  free(rest);
  free(secret);
  return 0;
}
