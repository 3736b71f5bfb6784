/* The health+json renderer: escaping, invalid UTF-8, every field of the
 * IETF format, detail levels, pending / warn / draining states, output
 * truncation; plus the JSON string escaper and the redaction helpers.
 * Every body produced is parsed by a strict JSON parser written here. */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health_int.h"
#include "testhelp.h"

/* ------------------------------------------------------------------ */
/* A strict JSON parser (RFC 8259) producing a small tree.              */
/* ------------------------------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype_t;

typedef struct jv {
  jtype_t type;
  int b;
  double num;
  char *str; /* decoded UTF-8 (J_STR) */
  size_t str_len;
  size_t n;    /* J_ARR / J_OBJ members */
  char **keys; /* J_OBJ */
  size_t *key_lens;
  struct jv **items;
} jv_t;

typedef struct {
  const unsigned char *p, *end;
  int depth;
} jp_t;

static void jv_free(jv_t *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->keys) free(v->keys[i]);
    jv_free(v->items[i]);
  }
  free(v->keys);
  free(v->key_lens);
  free(v->items);
  free(v->str);
  free(v);
}

static void ws(jp_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* Valid UTF-8 sequence length at p (0 if invalid), the same rules as the
 * library's but written independently. */
static size_t u8len(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned cp;
  if ((c & 0xE0) == 0xC0) {
    need = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    need = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    need = 4;
    cp = c & 0x07;
  } else return 0;
  if ((size_t)(end - p) < need) return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return need;
}

static void put_u8(health__buf_t *b, unsigned cp) {
  char s[4];
  size_t n;
  if (cp < 0x80) {
    s[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    s[0] = (char)(0xC0 | cp >> 6);
    s[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    s[0] = (char)(0xE0 | cp >> 12);
    s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    s[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    s[0] = (char)(0xF0 | cp >> 18);
    s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    s[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  health__buf_add(b, s, n);
}

static int hex4(jp_t *j, unsigned *out) {
  if (j->end - j->p < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = j->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  j->p += 4;
  *out = v;
  return 0;
}

/* At the opening quote; returns a malloc'd decoded string. */
static char *jstring(jp_t *j, size_t *len) {
  if (j->p >= j->end || *j->p != '"') return NULL;
  j->p++;
  health__buf_t b;
  health__buf_init(&b);
  health__buf_add(&b, "", 0);
  for (;;) {
    if (j->p >= j->end) goto bad;
    unsigned c = *j->p;
    if (c == '"') {
      j->p++;
      break;
    }
    if (c < 0x20) goto bad; /* raw control characters are not JSON */
    if (c == '\\') {
      j->p++;
      if (j->p >= j->end) goto bad;
      c = *j->p++;
      switch (c) {
        case '"': health__buf_add(&b, "\"", 1); break;
        case '\\': health__buf_add(&b, "\\", 1); break;
        case '/': health__buf_add(&b, "/", 1); break;
        case 'b': health__buf_add(&b, "\b", 1); break;
        case 'f': health__buf_add(&b, "\f", 1); break;
        case 'n': health__buf_add(&b, "\n", 1); break;
        case 'r': health__buf_add(&b, "\r", 1); break;
        case 't': health__buf_add(&b, "\t", 1); break;
        case 'u': {
          unsigned cp, lo;
          if (hex4(j, &cp)) goto bad;
          if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad; /* lone low surrogate */
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') goto bad;
            j->p += 2;
            if (hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_u8(&b, cp);
          break;
        }
        default: goto bad;
      }
      continue;
    }
    size_t n = u8len(j->p, j->end);
    if (n == 0) goto bad; /* a JSON text must be valid UTF-8 */
    health__buf_add(&b, (const char *)j->p, n);
    j->p += n;
  }
  if (b.failed) goto bad;
  *len = b.len;
  return b.data;
bad:
  health__buf_free(&b);
  return NULL;
}

static jv_t *jvalue(jp_t *j);

static jv_t *jnew(jtype_t t) {
  jv_t *v = calloc(1, sizeof *v);
  ck_assert_ptr_nonnull(v);
  v->type = t;
  return v;
}

static void jpush(jv_t *v, char *key, size_t klen, jv_t *item) {
  v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
  ck_assert_ptr_nonnull(v->items);
  if (v->type == J_OBJ) {
    v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
    v->key_lens = realloc(v->key_lens, (v->n + 1) * sizeof *v->key_lens);
    ck_assert(v->keys && v->key_lens);
    v->keys[v->n] = key;
    v->key_lens[v->n] = klen;
  }
  v->items[v->n++] = item;
}

static jv_t *jnumber(jp_t *j) {
  const unsigned char *s = j->p;
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p >= j->end) return NULL;
  if (*j->p == '0') j->p++;
  else if (*j->p >= '1' && *j->p <= '9')
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  else return NULL;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return NULL;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return NULL;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  char tmp[64];
  size_t n = (size_t)(j->p - s);
  if (n >= sizeof tmp) n = sizeof tmp - 1;
  memcpy(tmp, s, n);
  tmp[n] = 0;
  jv_t *v = jnew(J_NUM);
  v->num = strtod(tmp, NULL);
  return v;
}

static int lit(jp_t *j, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return 0;
  j->p += n;
  return 1;
}

static jv_t *jvalue(jp_t *j) {
  ws(j);
  if (j->p >= j->end || ++j->depth > 64) return NULL;
  jv_t *v = NULL;
  unsigned c = *j->p;
  if (c == '{' || c == '[') {
    int obj = c == '{';
    unsigned close = obj ? '}' : ']';
    v = jnew(obj ? J_OBJ : J_ARR);
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      goto done;
    }
    for (;;) {
      char *key = NULL;
      size_t klen = 0;
      if (obj) {
        ws(j);
        if (!(key = jstring(j, &klen))) goto bad;
        ws(j);
        if (j->p >= j->end || *j->p != ':') {
          free(key);
          goto bad;
        }
        j->p++;
      }
      jv_t *item = jvalue(j);
      if (!item) {
        free(key);
        goto bad;
      }
      jpush(v, key, klen, item);
      ws(j);
      if (j->p >= j->end) goto bad;
      if (*j->p == ',') {
        j->p++;
        continue;
      }
      if (*j->p == close) {
        j->p++;
        break;
      }
      goto bad;
    }
  } else if (c == '"') {
    v = jnew(J_STR);
    if (!(v->str = jstring(j, &v->str_len))) goto bad;
  } else if (lit(j, "true") || lit(j, "false")) {
    v = jnew(J_BOOL);
    v->b = j->p[-1] == 'e' && j->p[-2] == 'u';
  } else if (lit(j, "null")) {
    v = jnew(J_NULL);
  } else {
    v = jnumber(j);
  }
done:
  j->depth--;
  return v;
bad:
  jv_free(v);
  return NULL;
}

/* Parse a whole text (trailing whitespace allowed); NULL if not JSON. */
static jv_t *json_parse(const char *s, size_t n) {
  jp_t j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
  jv_t *v = jvalue(&j);
  if (!v) return NULL;
  ws(&j);
  if (j.p != j.end) {
    jv_free(v);
    return NULL;
  }
  return v;
}

static const jv_t *jget(const jv_t *o, const char *key) {
  if (!o || o->type != J_OBJ) return NULL;
  for (size_t i = 0; i < o->n; i++)
    if (o->key_lens[i] == strlen(key) && memcmp(o->keys[i], key, o->key_lens[i]) == 0)
      return o->items[i];
  return NULL;
}

static const char *jstr(const jv_t *o, const char *key) {
  const jv_t *v = jget(o, key);
  return v && v->type == J_STR ? v->str : NULL;
}

/* The parser itself must be strict, or the tests below prove nothing. */
START_TEST(test_json_parser_is_strict) {
  static const char *good[] = {"{}",
                               "[]",
                               "{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\ud83d\\ude00\"]}",
                               " {\"k\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"} \n",
                               "0",
                               "\"\xC3\xA9\""};
  static const char *bad[] = {"",
                              "{",
                              "{\"a\":1,}",
                              "[1,]",
                              "{'a':1}",
                              "{\"a\" 1}",
                              "01",
                              "1.",
                              "-",
                              "+1",
                              ".5",
                              "1e",
                              "\"\t\"",
                              "\"\\x\"",
                              "\"\\ud800\"",
                              "\"\\udc00x\"",
                              "\"\xC0\xAF\"",
                              "\"\xED\xA0\x80\"",
                              "\"\x80\"",
                              "\"\xE2\x82\"",
                              "[1] [2]",
                              "{\"a\":1}}",
                              "tru",
                              "nul",
                              "\"abc",
                              "[\"a\" \"b\"]",
                              "{\"a\":1 \"b\":2}",
                              "\"\x01\""};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    jv_t *v = json_parse(good[i], strlen(good[i]));
    ck_assert_msg(v != NULL, "rejected valid JSON: %s", good[i]);
    jv_free(v);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jv_t *v = json_parse(bad[i], strlen(bad[i]));
    ck_assert_msg(v == NULL, "accepted invalid JSON #%zu: %s", i, bad[i]);
  }
  jv_t *v = json_parse("\"\\ud83d\\ude00\"", 14);
  ck_assert_ptr_nonnull(v);
  ck_assert_str_eq(v->str, "\xF0\x9F\x98\x80");
  jv_free(v);
}
END_TEST

/* ------------------------------------------------------------------ */
/* health__buf_json_str                                                */
/* ------------------------------------------------------------------ */

/* Escape `in` (n bytes), check the result is a valid JSON string and
 * return its decoded value (caller frees). */
static char *escape_roundtrip(const char *in, size_t n, char **escaped) {
  health__buf_t b;
  health__buf_init(&b);
  health__buf_adds(&b, "\"");
  health__buf_json_str(&b, in, n);
  health__buf_adds(&b, "\"");
  ck_assert(!b.failed);
  ck_assert_uint_eq(strlen(b.data), b.len); /* no raw NUL in the output */
  jv_t *v = json_parse(b.data, b.len);
  ck_assert_msg(v != NULL, "escaper produced invalid JSON: %s", b.data);
  ck_assert_int_eq(v->type, J_STR);
  char *out = v->str;
  v->str = NULL;
  jv_free(v);
  if (escaped) *escaped = b.data;
  else health__buf_free(&b);
  return out;
}

START_TEST(test_json_str_escapes) {
  static const struct {
    const char *in;
    size_t n;
    const char *want_raw;
  } cases[] = {
      {"say \"hi\"", 8, "say \\\"hi\\\""},
      {"C:\\path\\", 8, "C:\\\\path\\\\"},
      {"a\nb\tc\rd", 7, "a\\nb\\tc\\rd"},
      {"x\x01y", 3, "x\\u0001y"},
      {"del\x7f", 4, "del\\u007f"},
      {"nul\0byte", 8, "nul\\u0000byte"},
      {"\x1f", 1, "\\u001f"},
      {"", 0, ""},
      {"plain ascii / text", 18, "plain ascii / text"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *raw;
    char *dec = escape_roundtrip(cases[i].in, cases[i].n, &raw);
    /* Decoding gives the input back, byte for byte. */
    ck_assert_msg(memcmp(dec, cases[i].in, cases[i].n) == 0 && dec[cases[i].n] == 0,
                  "case %zu did not round-trip", i);
    /* And the escaped form is the conventional one. */
    size_t wl = strlen(cases[i].want_raw);
    ck_assert_uint_eq(strlen(raw), wl + 2);
    ck_assert_msg(strncmp(raw + 1, cases[i].want_raw, wl) == 0, "case %zu: got %s", i, raw);
    free(raw);
    free(dec);
  }
}
END_TEST

START_TEST(test_json_str_invalid_utf8) {
  static const struct {
    const char *in;
    const char *want;
  } cases[] = {
      {"a\x80z", "a\xEF\xBF\xBDz"},                                 /* lone continuation */
      {"a\xC0\xAFz", "a\xEF\xBF\xBD\xEF\xBF\xBDz"},                 /* overlong '/' */
      {"a\xE0\x80\xAFz", "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"}, /* overlong 3-byte */
      {"a\xE2\x82", "a\xEF\xBF\xBD\xEF\xBF\xBD"},                   /* truncated at the end */
      {"a\xE2\x82z", "a\xEF\xBF\xBD\xEF\xBF\xBDz"},                 /* truncated, then ASCII */
      {"a\xED\xA0\x80z", "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"}, /* surrogate U+D800 */
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
      {"\xFF\xFE", "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xC3", "\xEF\xBF\xBD"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *dec = escape_roundtrip(cases[i].in, strlen(cases[i].in), NULL);
    ck_assert_msg(strcmp(dec, cases[i].want) == 0, "invalid UTF-8 case %zu", i);
    free(dec);
  }
}
END_TEST

START_TEST(test_json_str_valid_utf8_unchanged) {
  /* 2-, 3- and 4-byte sequences and the edges of the valid range. */
  static const char *in[] = {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
                             "\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF",
                             "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", "\xE6\x97\xA5\xE6\x9C\xAC"};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    char *raw;
    char *dec = escape_roundtrip(in[i], strlen(in[i]), &raw);
    ck_assert_str_eq(dec, in[i]);
    /* Passed through verbatim, not as \u escapes. */
    ck_assert_uint_eq(strlen(raw), strlen(in[i]) + 2);
    ck_assert(memcmp(raw + 1, in[i], strlen(in[i])) == 0);
    free(raw);
    free(dec);
  }
}
END_TEST

START_TEST(test_json_str_every_byte) {
  /* Every single byte, and every byte pair: always valid JSON. */
  for (unsigned a = 0; a < 256; a++) {
    char s[1] = {(char)a};
    char *dec = escape_roundtrip(s, 1, NULL);
    if (a < 0x80) ck_assert(dec[0] == (char)a || a == 0);
    else ck_assert_str_eq(dec, "\xEF\xBF\xBD");
    free(dec);
    for (unsigned c = 0; c < 256; c += 7) {
      char p[2] = {(char)a, (char)c};
      free(escape_roundtrip(p, 2, NULL));
    }
  }
}
END_TEST

START_TEST(test_buf_growth) {
  health__buf_t b;
  health__buf_init(&b);
  for (int i = 0; i < 1000; i++) health__buf_printf(&b, "%d,", i);
  /* Longer than the printf fast path. */
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  health__buf_printf(&b, "[%s]", big);
  ck_assert(!b.failed);
  ck_assert_uint_eq(strlen(b.data), b.len);
  ck_assert(strncmp(b.data, "0,1,2,", 6) == 0);
  ck_assert(strstr(b.data, "998,999,[x") != NULL);
  ck_assert_int_eq(b.data[b.len - 1], ']');
  health__buf_free(&b);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Redaction                                                           */
/* ------------------------------------------------------------------ */

static void redact_url_is(const char *in, const char *want) {
  char out[512];
  health__redact_url(in, out, sizeof out);
  ck_assert_msg(strcmp(out, want) == 0, "redact_url(%s) = %s, want %s", in, out, want);
}

START_TEST(test_redact_url) {
  redact_url_is("redis://user:hunter2@cache.local:6379/0", "redis://user:***@cache.local:6379/0");
  redact_url_is("rediss://:hunter2@cache.local", "rediss://:***@cache.local");
  redact_url_is("postgres://app:p@ss:w0rd@db.internal:5432/app",
                "postgres://app:***@db.internal:5432/app");
  redact_url_is("postgres://app:a:b:c@db/x", "postgres://app:***@db/x");
  redact_url_is("postgres://app@db.internal/app", "postgres://app@db.internal/app");
  redact_url_is("redis://cache.local:6379", "redis://cache.local:6379");
  redact_url_is("postgresql://db/app?user=x&password=s3cret&sslmode=require",
                "postgresql://db/app?user=x&password=***&sslmode=require");
  redact_url_is("postgresql://u:pw1@db/app?password=pw2#frag",
                "postgresql://u:***@db/app?password=***#frag");
  redact_url_is("postgresql://db/app?password=a&password=b",
                "postgresql://db/app?password=***&password=***");
  redact_url_is("host=db password=s3cret dbname=app", "host=db password=*** dbname=app");
  redact_url_is("", "");
  /* A password with characters that end an authority in a well-formed URL
   * must not leak either. */
  static const char *pws[] = {"p/ss", "p?ss", "p#ss", "p@ss", "p:ss"};
  for (size_t i = 0; i < sizeof pws / sizeof pws[0]; i++) {
    char in[128], out[128];
    snprintf(in, sizeof in, "redis://user:%s@cache.local:6379", pws[i]);
    health__redact_url(in, out, sizeof out);
    ck_assert_msg(strstr(out, "ss@") == NULL && strstr(out, pws[i]) == NULL,
                  "password '%s' leaked: %s", pws[i], out);
    ck_assert_msg(strstr(out, "***") != NULL, "%s", out);
  }
  /* Quoted conninfo values, spaces included. */
  char out[128];
  health__redact_url("host=db password='s3 cr\\'et' user=x", out, sizeof out);
  ck_assert_msg(strstr(out, "cr") == NULL && strstr(out, "et") == NULL, "%s", out);
  ck_assert_msg(strstr(out, "user=x") != NULL, "%s", out);
  /* Truncation: always NUL-terminated, never overruns. */
  char small[12];
  memset(small, 'Z', sizeof small);
  health__redact_url("redis://user:hunter2@cache.local:6379/0", small, 10);
  ck_assert_uint_eq(strlen(small), 9);
  ck_assert_int_eq(small[10], 'Z');
  ck_assert(strstr(small, "hunter") == NULL);
  health__redact_url(NULL, small, sizeof small);
  ck_assert_str_eq(small, "");
}
END_TEST

START_TEST(test_redact_secret) {
  char out[256];
  health__redact_secret("auth failed for s3cret: s3cret rejected", "s3cret", out, sizeof out);
  ck_assert_str_eq(out, "auth failed for ***: *** rejected");
  health__redact_secret("s3crets3cret", "s3cret", out, sizeof out);
  ck_assert_str_eq(out, "******");
  health__redact_secret("nothing here", "s3cret", out, sizeof out);
  ck_assert_str_eq(out, "nothing here");
  health__redact_secret("empty secret stays", "", out, sizeof out);
  ck_assert_str_eq(out, "empty secret stays");
  health__redact_secret("null secret stays", NULL, out, sizeof out);
  ck_assert_str_eq(out, "null secret stays");
  health__redact_secret("p@ss:w0rd at start and p@ss:w0rd", "p@ss:w0rd", out, sizeof out);
  ck_assert_str_eq(out, "*** at start and ***");
  health__redact_secret("aaaa", "aa", out, sizeof out);
  ck_assert_str_eq(out, "******");
  char small[8];
  memset(small, 'Z', sizeof small);
  health__redact_secret("0123456789 s3cret", "s3cret", small, 6);
  ck_assert_str_eq(small, "01234");
  ck_assert_int_eq(small[6], 'Z');
}
END_TEST

/* ------------------------------------------------------------------ */
/* The renderer                                                        */
/* ------------------------------------------------------------------ */

static void noop_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

static health_t *new_handle(const char *id, const char *ver, const char *desc,
                            unsigned max_output) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_OFF;
  o.service_id = id;
  o.service_version = ver;
  o.description = desc;
  if (max_output) o.max_output_bytes = max_output;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  return h;
}

static health__check_t *add(health_t *h, const char *name, int critical, unsigned endpoints,
                            const char *type, const char *measurement, const char *id) {
  health_check_options_t co;
  health_check_options_init(&co);
  co.critical = critical;
  co.endpoints = endpoints;
  co.component_type = type;
  co.measurement = measurement;
  co.component_id = id;
  health_error_t err = {0};
  ck_assert_msg(health__add_check(h, name, noop_check, NULL, NULL, &co, "component", &err) == 0,
                "%s", err.text);
  return h->eng.checks[h->eng.nchecks - 1];
}

/* Publish a result on a check directly, as the engine would. */
static void set_result(health_t *h, health__check_t *c, health_status_t st, const char *output,
                       int has_obs, double val, const char *unit) {
  pthread_mutex_lock(&h->lock);
  c->effective = st;
  c->last = st;
  c->runs++;
  free(c->output);
  c->output = output ? strdup(output) : NULL;
  c->has_observed = has_obs;
  c->observed_value = val;
  snprintf(c->observed_unit, sizeof c->observed_unit, "%s", unit ? unit : "");
  c->result_wall_ms = health__wall_ms();
  c->result_mono_ms = health__now_ms();
  pthread_mutex_unlock(&h->lock);
}

/* Render and parse; asserts the body is valid JSON ending in a newline. */
static jv_t *render(health_t *h, unsigned endpoint, int status_only, unsigned *code) {
  health__buf_t b;
  health__buf_init(&b);
  uint64_t vu = 0;
  pthread_mutex_lock(&h->lock);
  *code = health__render_locked(h, endpoint, status_only, health__now_ms(), &b, &vu);
  pthread_mutex_unlock(&h->lock);
  ck_assert(!b.failed);
  ck_assert_ptr_nonnull(b.data);
  ck_assert_int_eq(b.data[b.len - 1], '\n');
  jv_t *v = json_parse(b.data, b.len);
  ck_assert_msg(v != NULL, "invalid JSON rendered: %s", b.data);
  ck_assert_int_eq(v->type, J_OBJ);
  health__buf_free(&b);
  return v;
}

/* The single entry of checks[key]. */
static const jv_t *entry(const jv_t *body, const char *key) {
  const jv_t *checks = jget(body, "checks");
  ck_assert_ptr_nonnull(checks);
  ck_assert_int_eq(checks->type, J_OBJ);
  const jv_t *arr = jget(checks, key);
  ck_assert_msg(arr != NULL, "no checks entry '%s'", key);
  ck_assert_int_eq(arr->type, J_ARR);
  ck_assert_uint_eq(arr->n, 1);
  ck_assert_int_eq(arr->items[0]->type, J_OBJ);
  return arr->items[0];
}

/* RFC 3339 UTC with milliseconds, within a minute of now. */
static void assert_rfc3339_now(const char *t) {
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(strlen(t), 24);
  int Y, M, D, hh, mm, ss, ms;
  char z;
  ck_assert_int_eq(sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &Y, &M, &D, &hh, &mm, &ss, &ms, &z),
                   8);
  ck_assert_int_eq(z, 'Z');
  ck_assert(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' &&
            t[19] == '.');
  struct tm tm = {0};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  time_t when = timegm(&tm);
  time_t now = time(NULL);
  ck_assert_msg(when <= now + 1 && when >= now - 60, "time %s is not now", t);
}

START_TEST(test_render_full_fields) {
  health_t *h = new_handle("svc-\"1\"", "1.2.3", "orders \"API\" \\ \xC3\xA9", 0);
  health__check_t *db = add(h, "db", 1, HEALTH_READINESS, "datastore", NULL, "db-primary");
  health__check_t *q =
      add(h, "queue", 1, HEALTH_READINESS | HEALTH_LIVENESS, NULL, "connections", NULL);
  set_result(h, db, HEALTH_PASS, NULL, 1, 12.25, "ms");
  set_result(h, q, HEALTH_PASS, "ok", 1, 7, "connections");

  unsigned code;
  jv_t *v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 200);
  ck_assert_str_eq(jstr(v, "status"), "pass");
  ck_assert_str_eq(jstr(v, "version"), "1.2.3");
  ck_assert_str_eq(jstr(v, "serviceId"), "svc-\"1\"");
  ck_assert_str_eq(jstr(v, "description"), "orders \"API\" \\ \xC3\xA9");
  ck_assert_ptr_null(jget(v, "output"));
  ck_assert_uint_eq(jget(v, "checks")->n, 2);

  const jv_t *e = entry(v, "db:responseTime");
  ck_assert_str_eq(jstr(e, "componentType"), "datastore");
  ck_assert_str_eq(jstr(e, "componentId"), "db-primary");
  ck_assert_int_eq(jget(e, "observedValue")->type, J_NUM);
  ck_assert(fabs(jget(e, "observedValue")->num - 12.25) < 1e-9);
  ck_assert_str_eq(jstr(e, "observedUnit"), "ms");
  ck_assert_str_eq(jstr(e, "status"), "pass");
  assert_rfc3339_now(jstr(e, "time"));
  ck_assert_ptr_null(jget(e, "output")); /* no output was set */

  e = entry(v, "queue:connections");
  ck_assert_str_eq(jstr(e, "componentType"), "component");
  ck_assert_ptr_null(jget(e, "componentId"));
  ck_assert(fabs(jget(e, "observedValue")->num - 7) < 1e-9);
  ck_assert_str_eq(jstr(e, "observedUnit"), "connections");
  ck_assert_str_eq(jstr(e, "output"), "ok");
  assert_rfc3339_now(jstr(e, "time"));
  jv_free(v);

  /* Liveness lists only the liveness check. */
  v = render(h, HEALTH_LIVENESS, 0, &code);
  ck_assert_uint_eq(code, 200);
  ck_assert_uint_eq(jget(v, "checks")->n, 1);
  entry(v, "queue:connections");
  jv_free(v);

  /* A failing critical check: fail, 503, its output shown. */
  set_result(h, db, HEALTH_FAIL, "connection refused", 0, 0, NULL);
  v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 503);
  ck_assert_str_eq(jstr(v, "status"), "fail");
  e = entry(v, "db:responseTime");
  ck_assert_str_eq(jstr(e, "status"), "fail");
  ck_assert_str_eq(jstr(e, "output"), "connection refused");
  ck_assert_ptr_null(jget(e, "observedValue"));
  ck_assert_ptr_null(jget(e, "observedUnit"));
  jv_free(v);
  v = render(h, HEALTH_LIVENESS, 0, &code);
  ck_assert_uint_eq(code, 200); /* db is readiness only */
  jv_free(v);
  health_free(h);
}
END_TEST

START_TEST(test_render_escaping_in_output) {
  health_t *h = new_handle(NULL, NULL, NULL, 0);
  health__check_t *c = add(h, "weird", 1, HEALTH_READINESS, NULL, NULL, "id\"\\\n");
  static const struct {
    const char *in;
    const char *want;
  } cases[] = {
      {"quote \" backslash \\ nl \n tab \t ctl \x01 del \x7f end",
       "quote \" backslash \\ nl \n tab \t ctl \x01 del \x7f end"},
      {"lone \x80 cont", "lone \xEF\xBF\xBD cont"},
      {"overlong \xC0\xAF", "overlong \xEF\xBF\xBD\xEF\xBF\xBD"},
      {"truncated \xE2\x82", "truncated \xEF\xBF\xBD\xEF\xBF\xBD"},
      {"surrogate \xED\xB0\x80", "surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"valid \xE2\x9C\x93 \xF0\x9F\x92\xA1 caf\xC3\xA9",
       "valid \xE2\x9C\x93 \xF0\x9F\x92\xA1 caf\xC3\xA9"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    set_result(h, c, HEALTH_FAIL, cases[i].in, 0, 0, NULL);
    unsigned code;
    jv_t *v = render(h, HEALTH_READINESS, 0, &code);
    ck_assert_uint_eq(code, 503);
    const jv_t *e = entry(v, "weird:responseTime");
    ck_assert_msg(strcmp(jstr(e, "output"), cases[i].want) == 0, "case %zu: %s", i,
                  jstr(e, "output"));
    ck_assert_str_eq(jstr(e, "componentId"), "id\"\\\n");
    jv_free(v);
  }
  health_free(h);
}
END_TEST

START_TEST(test_render_status_only_and_draining) {
  health_t *h = new_handle("svc", "9.9", "desc", 0);
  health__check_t *c = add(h, "db", 1, HEALTH_READINESS | HEALTH_LIVENESS, NULL, NULL, NULL);
  set_result(h, c, HEALTH_PASS, "fine", 1, 1, "ms");
  unsigned code;
  for (unsigned ep = HEALTH_READINESS; ep <= HEALTH_LIVENESS; ep++) {
    jv_t *v = render(h, ep, 1, &code);
    ck_assert_uint_eq(code, 200);
    ck_assert_uint_eq(v->n, 1); /* nothing but the status */
    ck_assert_str_eq(jstr(v, "status"), "pass");
    jv_free(v);
  }
  set_result(h, c, HEALTH_FAIL, "down", 0, 0, NULL);
  jv_t *v = render(h, HEALTH_READINESS, 1, &code);
  ck_assert_uint_eq(code, 503);
  ck_assert_uint_eq(v->n, 1);
  ck_assert_str_eq(jstr(v, "status"), "fail");
  jv_free(v);

  /* Draining: readiness fails even with a passing check, liveness does not. */
  set_result(h, c, HEALTH_PASS, NULL, 0, 0, NULL);
  atomic_store(&h->sd.draining, 1);
  v = render(h, HEALTH_READINESS, 1, &code);
  ck_assert_uint_eq(code, 503);
  ck_assert_uint_eq(v->n, 2);
  ck_assert_str_eq(jstr(v, "status"), "fail");
  ck_assert_str_eq(jstr(v, "output"), "draining");
  jv_free(v);
  v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 503);
  ck_assert_str_eq(jstr(v, "status"), "fail");
  ck_assert_str_eq(jstr(v, "output"), "draining");
  ck_assert_str_eq(jstr(entry(v, "db:responseTime"), "status"), "pass");
  jv_free(v);
  v = render(h, HEALTH_LIVENESS, 1, &code);
  ck_assert_uint_eq(code, 200);
  ck_assert_uint_eq(v->n, 1);
  ck_assert_str_eq(jstr(v, "status"), "pass");
  jv_free(v);
  atomic_store(&h->sd.draining, 0);
  health_free(h);
}
END_TEST

START_TEST(test_render_pending_warn_stale) {
  health_t *h = new_handle(NULL, NULL, NULL, 0);
  health__check_t *crit = add(h, "crit", 1, HEALTH_READINESS, NULL, NULL, NULL);
  health__check_t *soft = add(h, "soft", 0, HEALTH_READINESS, NULL, NULL, NULL);
  unsigned code;

  /* Nothing has run: both pending, rendered as failures with "pending". */
  jv_t *v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 503);
  ck_assert_str_eq(jstr(v, "status"), "fail");
  const jv_t *e = entry(v, "crit:responseTime");
  ck_assert_str_eq(jstr(e, "status"), "fail");
  ck_assert_ptr_nonnull(strstr(jstr(e, "output"), "pending"));
  ck_assert_ptr_null(jget(e, "time"));
  e = entry(v, "soft:responseTime");
  ck_assert_str_eq(jstr(e, "status"), "warn"); /* non-critical pending */
  ck_assert_ptr_nonnull(strstr(jstr(e, "output"), "pending"));
  jv_free(v);

  /* Critical passes, non-critical fails: warn, still 200. */
  set_result(h, crit, HEALTH_PASS, NULL, 0, 0, NULL);
  set_result(h, soft, HEALTH_FAIL, "cache miss storm", 0, 0, NULL);
  v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 200);
  ck_assert_str_eq(jstr(v, "status"), "warn");
  e = entry(v, "soft:responseTime");
  ck_assert_str_eq(jstr(e, "status"), "warn");
  ck_assert_str_eq(jstr(e, "output"), "cache miss storm");
  ck_assert_str_eq(jstr(entry(v, "crit:responseTime"), "status"), "pass");
  jv_free(v);
  v = render(h, HEALTH_READINESS, 1, &code);
  ck_assert_uint_eq(code, 200);
  ck_assert_str_eq(jstr(v, "status"), "warn");
  jv_free(v);

  /* A stale critical result renders as a failure saying so. */
  pthread_mutex_lock(&h->lock);
  crit->result_mono_ms = health__now_ms() - (crit->interval_ms + crit->timeout_ms + 60000);
  pthread_mutex_unlock(&h->lock);
  v = render(h, HEALTH_READINESS, 0, &code);
  ck_assert_uint_eq(code, 503);
  e = entry(v, "crit:responseTime");
  ck_assert_str_eq(jstr(e, "status"), "fail");
  ck_assert_ptr_nonnull(strstr(jstr(e, "output"), "stale"));
  jv_free(v);
  health_free(h);
}
END_TEST

START_TEST(test_render_output_truncated) {
  const unsigned max = 40;
  health_t *h = new_handle(NULL, NULL, NULL, max);
  health__check_t *c = add(h, "long", 1, HEALTH_READINESS, NULL, NULL, NULL);
  char text[300];
  for (size_t i = 0; i < sizeof text - 1; i++) text[i] = (char)('a' + i % 26);
  text[sizeof text - 1] = 0;
  set_result(h, c, HEALTH_FAIL, text, 0, 0, NULL);
  unsigned code;
  jv_t *v = render(h, HEALTH_READINESS, 0, &code);
  const char *out = jstr(entry(v, "long:responseTime"), "output");
  ck_assert_uint_eq(strlen(out), max);
  ck_assert(strncmp(out, text, max) == 0);
  jv_free(v);

  /* Cut inside a multi-byte character: still valid JSON, prefix kept. */
  char mb[200] = "";
  for (int i = 0; i < 30; i++) strcat(mb, "\xE2\x82\xAC"); /* 90 bytes */
  set_result(h, c, HEALTH_FAIL, mb, 0, 0, NULL);
  v = render(h, HEALTH_READINESS, 0, &code);
  out = jstr(entry(v, "long:responseTime"), "output");
  ck_assert(strncmp(out, mb, 39) == 0); /* 13 whole euro signs */
  ck_assert_uint_le(strlen(out), max + 3);
  jv_free(v);
  health_free(h);
}
END_TEST

/* The result API truncates too, and the engine renders what it stored. */
static void long_output_check(health_result_t *r, void *arg) {
  (void)arg;
  char text[2000];
  memset(text, 'q', sizeof text - 1);
  text[sizeof text - 1] = 0;
  health_result_observe(r, 3.5, "a-unit-name-that-is-far-too-long");
  health_result_set(r, HEALTH_FAIL, "%s\"\\", text);
}

typedef struct {
  health_t *h;
  const char *name;
  uint64_t runs;
} runs_arg_t;

static int has_runs(void *p) {
  runs_arg_t *a = p;
  health_check_info_t info;
  return health_check_find(a->h, a->name, &info, NULL) == 0 && info.runs >= a->runs;
}

START_TEST(test_render_over_http) {
  const unsigned max = 64;
  health_t *h = new_handle("http-svc", "2.0.0", NULL, max);
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 50;
  co.endpoints = HEALTH_READINESS | HEALTH_LIVENESS;
  co.critical = 0;
  health_error_t err = {0};
  ck_assert_int_eq(health_check_add(h, "longout", long_output_check, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  runs_arg_t ra = {h, "longout", 1};
  ck_assert(th_wait_until(has_runs, &ra, 5000));

  static const char *paths[] = {"/ready", "/health"};
  for (int i = 0; i < 2; i++) {
    th_response_t r;
    ck_assert_int_eq(th_http(health_port(h), "GET", paths[i], &r), 0);
    ck_assert_int_eq(r.status, 200);
    char ct[64];
    ck_assert_ptr_nonnull(th_header(&r, "Content-Type", ct, sizeof ct));
    ck_assert_str_eq(ct, "application/health+json");
    jv_t *v = json_parse(r.body, r.body_len);
    ck_assert_msg(v != NULL, "invalid JSON over HTTP: %s", r.body);
    ck_assert_str_eq(jstr(v, "status"), "warn");
    ck_assert_str_eq(jstr(v, "serviceId"), "http-svc");
    ck_assert_str_eq(jstr(v, "version"), "2.0.0");
    const jv_t *e = entry(v, "longout:responseTime");
    ck_assert_str_eq(jstr(e, "status"), "warn");
    ck_assert_uint_eq(strlen(jstr(e, "output")), max);
    ck_assert_str_eq(jstr(e, "observedUnit"), "a-unit-name-tha"); /* 15 bytes kept */
    ck_assert(fabs(jget(e, "observedValue")->num - 3.5) < 1e-9);
    assert_rfc3339_now(jstr(e, "time"));
    jv_free(v);
    th_response_free(&r);
  }
  health_free(h);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("render");
  TCase *t = tcase_create("json");
  tcase_set_timeout(t, 20);
  tcase_add_test(t, test_json_parser_is_strict);
  tcase_add_test(t, test_json_str_escapes);
  tcase_add_test(t, test_json_str_invalid_utf8);
  tcase_add_test(t, test_json_str_valid_utf8_unchanged);
  tcase_add_test(t, test_json_str_every_byte);
  tcase_add_test(t, test_buf_growth);
  suite_add_tcase(s, t);

  t = tcase_create("redact");
  tcase_set_timeout(t, 10);
  tcase_add_test(t, test_redact_url);
  tcase_add_test(t, test_redact_secret);
  suite_add_tcase(s, t);

  t = tcase_create("render");
  tcase_set_timeout(t, 20);
  tcase_add_test(t, test_render_full_fields);
  tcase_add_test(t, test_render_escaping_in_output);
  tcase_add_test(t, test_render_status_only_and_draining);
  tcase_add_test(t, test_render_pending_warn_stale);
  tcase_add_test(t, test_render_output_truncated);
  tcase_add_test(t, test_render_over_http);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
