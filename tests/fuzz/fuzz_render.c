/*
 * libFuzzer target: the health+json renderer (http/render.c) and the JSON string
 * escaper under it (core/buf.c, health__buf_json_str).
 *
 * A handle is built with up to 8 checks whose published fields come from
 * the input bytes, set directly under h->lock as the scheduler would: key
 * ("<name>:<measurement>"), componentType, componentId, output, observed
 * value and unit, status, critical, endpoints, result age; plus the
 * service strings, max_output_bytes and draining.  Both endpoints are
 * rendered at both detail levels.
 *
 * Invariants:
 *  - every body is exactly one strict RFC 8259 JSON object followed by
 *    "\n" (validated by the parser below: valid UTF-8, no raw control
 *    characters, only JSON escapes, no lone surrogates, strict numbers);
 *  - the code is 503 exactly when the top-level status is "fail";
 *  - the status-only body has no "checks"; the full body's "checks" has
 *    one member per check on that endpoint;
 *  - the body stays within a bound computed from the inputs, with every
 *    output cut to max_output_bytes (a megabyte of output is not copied);
 *  - health__buf_json_str() of the raw input is valid JSON string content,
 *    and when the input is valid UTF-8 it decodes back to the input.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"

/* ------------------------------------------------------------------ */
/* A strict JSON validator                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  const unsigned char *p, *end;
  int depth;
  /* What the renderer's invariants need: */
  char top_status[8];  /* the top-level "status" string */
  long checks_members; /* members of the top-level "checks" object, -1 if absent */
  /* Decoded string, when requested. */
  unsigned char *dec;
  size_t dec_len, dec_cap;
} json_t;

static int ws(json_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
  return 1;
}

/* Length of a valid UTF-8 sequence at s, 0 if invalid (overlongs,
 * surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_ok(const unsigned char *s, const unsigned char *end) {
  unsigned c = s[0], cp, min;
  size_t len;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else return 0;
  if ((size_t)(end - s) < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static void dec_put(json_t *j, const unsigned char *s, size_t n) {
  if (!j->dec) return;
  if (j->dec_len + n > j->dec_cap) abort(); /* sized by the caller */
  memcpy(j->dec + j->dec_len, s, n);
  j->dec_len += n;
}

static void dec_cp(json_t *j, unsigned cp) {
  unsigned char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (unsigned char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (unsigned char)(0xC0 | cp >> 6);
    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (unsigned char)(0xE0 | cp >> 12);
    b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (unsigned char)(0xF0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  dec_put(j, b, n);
}

static int hex4(json_t *j, unsigned *v) {
  if (j->end - j->p < 4) return 0;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = j->p[i];
    *v <<= 4;
    if (c >= '0' && c <= '9') *v |= c - '0';
    else if (c >= 'a' && c <= 'f') *v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') *v |= c - 'A' + 10;
    else return 0;
  }
  j->p += 4;
  return 1;
}

/* The string starting at the opening quote.  raw/rawlen (optional)
 * receive its raw (undecoded) span for key comparisons. */
static int string(json_t *j, const unsigned char **raw, size_t *rawlen) {
  if (j->p >= j->end || *j->p != '"') return 0;
  j->p++;
  const unsigned char *start = j->p;
  while (j->p < j->end && *j->p != '"') {
    unsigned c = *j->p;
    if (c < 0x20) return 0; /* raw control character */
    if (c == '\\') {
      j->p++;
      if (j->p >= j->end) return 0;
      unsigned e = *j->p++;
      switch (e) {
        case '"': dec_put(j, (const unsigned char *)"\"", 1); break;
        case '\\': dec_put(j, (const unsigned char *)"\\", 1); break;
        case '/': dec_put(j, (const unsigned char *)"/", 1); break;
        case 'b': dec_put(j, (const unsigned char *)"\b", 1); break;
        case 'f': dec_put(j, (const unsigned char *)"\f", 1); break;
        case 'n': dec_put(j, (const unsigned char *)"\n", 1); break;
        case 'r': dec_put(j, (const unsigned char *)"\r", 1); break;
        case 't': dec_put(j, (const unsigned char *)"\t", 1); break;
        case 'u': {
          unsigned v, lo;
          if (!hex4(j, &v)) return 0;
          if (v >= 0xDC00 && v <= 0xDFFF) return 0; /* lone low surrogate */
          if (v >= 0xD800 && v <= 0xDBFF) {
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return 0;
            j->p += 2;
            if (!hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return 0;
            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
          }
          dec_cp(j, v);
          break;
        }
        default: return 0;
      }
      continue;
    }
    size_t n = utf8_ok(j->p, j->end);
    if (!n) return 0;
    dec_put(j, j->p, n);
    j->p += n;
  }
  if (j->p >= j->end) return 0;
  if (raw) *raw = start;
  if (rawlen) *rawlen = (size_t)(j->p - start);
  j->p++;
  return 1;
}

static int digits(json_t *j) {
  const unsigned char *s = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  return j->p > s;
}

static int number(json_t *j) {
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p >= j->end) return 0;
  if (*j->p == '0') j->p++;
  else if (!digits(j)) return 0;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (!digits(j)) return 0;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (!digits(j)) return 0;
  }
  return 1;
}

static int literal(json_t *j, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return 0;
  j->p += n;
  return 1;
}

static int value(json_t *j, int top_key_checks, int top_key_status);

static int object(json_t *j, int is_checks) {
  int top = j->depth == 1;
  j->p++; /* '{' */
  ws(j);
  long members = 0;
  if (j->p < j->end && *j->p == '}') {
    j->p++;
  } else {
    for (;;) {
      const unsigned char *k;
      size_t kl;
      ws(j);
      if (!string(j, &k, &kl)) return 0;
      ws(j);
      if (j->p >= j->end || *j->p++ != ':') return 0;
      ws(j);
      int key_checks = top && kl == 6 && memcmp(k, "checks", 6) == 0;
      int key_status = top && kl == 6 && memcmp(k, "status", 6) == 0;
      if (!value(j, key_checks, key_status)) return 0;
      members++;
      ws(j);
      if (j->p >= j->end) return 0;
      if (*j->p == ',') {
        j->p++;
        continue;
      }
      if (*j->p == '}') {
        j->p++;
        break;
      }
      return 0;
    }
  }
  if (is_checks) j->checks_members = members;
  return 1;
}

static int array(json_t *j) {
  j->p++; /* '[' */
  ws(j);
  if (j->p < j->end && *j->p == ']') {
    j->p++;
    return 1;
  }
  for (;;) {
    ws(j);
    if (!value(j, 0, 0)) return 0;
    ws(j);
    if (j->p >= j->end) return 0;
    if (*j->p == ',') {
      j->p++;
      continue;
    }
    if (*j->p == ']') {
      j->p++;
      return 1;
    }
    return 0;
  }
}

static int value(json_t *j, int key_checks, int key_status) {
  if (j->p >= j->end) return 0;
  int ok;
  switch (*j->p) {
    case '{':
      if (++j->depth > 64) return 0;
      ok = object(j, key_checks);
      j->depth--;
      return ok;
    case '[':
      if (++j->depth > 64) return 0;
      ok = array(j);
      j->depth--;
      return ok;
    case '"': {
      const unsigned char *s;
      size_t n;
      if (!string(j, &s, &n)) return 0;
      if (key_status)
        snprintf(j->top_status, sizeof j->top_status, "%.*s", (int)(n < 7 ? n : 7), s);
      return 1;
    }
    case 't': return literal(j, "true");
    case 'f': return literal(j, "false");
    case 'n': return literal(j, "null");
    default: return number(j);
  }
}

/* The whole text is one JSON object, then optional white space. */
static int json_document(const char *s, size_t n, json_t *j) {
  memset(j, 0, sizeof *j);
  j->p = (const unsigned char *)s;
  j->end = j->p + n;
  j->checks_members = -1;
  ws(j);
  if (j->p >= j->end || *j->p != '{') return 0;
  j->depth = 1;
  if (!object(j, 0)) return 0;
  ws(j);
  return j->p == j->end;
}

/* ------------------------------------------------------------------ */
/* The target                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
  const uint8_t *p, *end;
} reader_t;

static uint8_t byte(reader_t *r) { return r->p < r->end ? *r->p++ : 0; }

static uint64_t u64(reader_t *r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | byte(r);
  return v;
}

/* A string of up to 2^16 bytes (an embedded NUL ends it, as in C). */
static char *str(reader_t *r) {
  size_t n = (size_t)byte(r) << 8 | byte(r);
  if (n > (size_t)(r->end - r->p)) n = (size_t)(r->end - r->p);
  char *s = strndup((const char *)r->p, n);
  if (!s) abort();
  r->p += n;
  return s;
}

static void die(const char *what, const char *body, size_t len) {
  fprintf(stderr, "fuzz_render: %s\n  body (%zu bytes): ", what, len);
  for (size_t i = 0; i < len && i < 4000; i++) {
    unsigned char c = (unsigned char)body[i];
    fprintf(stderr, (c >= 0x20 && c < 0x7f) ? "%c" : "\\x%02x", c);
  }
  fprintf(stderr, "\n");
  abort();
}

static void nop_check(health_result_t *r, void *arg) { (void)r, (void)arg; }

static void quiet(health_log_level_t l, const char *line, void *arg) {
  (void)l, (void)line, (void)arg;
}

/* health__buf_json_str() on the raw bytes. */
static void fuzz_json_str(const uint8_t *data, size_t size) {
  health__buf_t b;
  health__buf_init(&b);
  health__buf_adds(&b, "{\"s\":\"");
  health__buf_json_str(&b, (const char *)data, size);
  health__buf_adds(&b, "\"}");
  if (b.failed) abort();
  json_t j;
  if (!json_document(b.data, b.len, &j)) die("json_str: not a valid JSON string", b.data, b.len);
  /* Decode and compare when the input is valid UTF-8. */
  int valid = 1;
  for (size_t i = 0; i < size && valid;) {
    size_t n = utf8_ok(data + i, data + size);
    if (!n) valid = 0;
    i += n;
  }
  if (valid) {
    memset(&j, 0, sizeof j);
    j.p = (const unsigned char *)b.data + 5;
    j.end = (const unsigned char *)b.data + b.len;
    j.dec_cap = size + 1;
    j.dec = malloc(j.dec_cap);
    if (!j.dec) abort();
    if (!string(&j, NULL, NULL)) die("json_str: string does not parse", b.data, b.len);
    if (j.dec_len != size || memcmp(j.dec, data, size) != 0)
      die("json_str: valid UTF-8 does not round-trip", b.data, b.len);
    free(j.dec);
  }
  health__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 200000) return 0;
  fuzz_json_str(data, size);

  reader_t r = {data, data + size};
  uint8_t flags = byte(&r);
  health_options_t o;
  health_options_init(&o);
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = quiet;
  unsigned default_max_output = o.max_output_bytes;
  o.max_output_bytes = 16 + (unsigned)((byte(&r) << 8 | byte(&r)) % 4081); /* 16-4096 */
  health_t *h = NULL;
  health_error_t err;
  if (health_new(&h, &o, &err) != 0) {
    o.max_output_bytes = default_max_output; /* the allowed range may have changed */
    if (health_new(&h, &o, &err) != 0) die("health_new failed", err.text, strlen(err.text));
  }

  /* Service strings as if validation had let anything through. */
  if (flags & 1) h->service_id = str(&r);
  if (flags & 2) h->service_version = str(&r);
  if (flags & 4) h->description = str(&r);
  if (flags & 8) atomic_store(&h->sd.draining, 1);
  size_t fixed = 0; /* bytes of input-derived text in the body */
  if (h->service_id) fixed += strlen(h->service_id);
  if (h->service_version) fixed += strlen(h->service_version);
  if (h->description) fixed += strlen(h->description);

  unsigned nchecks = (flags >> 4) % 9;
  unsigned on_endpoint[2] = {0, 0}; /* [readiness, liveness] */
  size_t per_check_text = 0;
  uint64_t now = health__now_ms();
  for (unsigned i = 0; i < nchecks; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%u", i);
    health_check_options_t co;
    health_check_options_init(&co);
    uint8_t cf = byte(&r);
    co.endpoints = 1u + cf % 3u; /* readiness, liveness or both */
    co.critical = (cf >> 2) & 1;
    if (health_check_add(h, name, nop_check, NULL, NULL, &co, &err) != 0) abort();

    pthread_mutex_lock(&h->lock);
    health__check_t *c = h->eng.checks[h->eng.nchecks - 1];
    free(c->key);
    c->key = str(&r);
    free(c->component_type);
    c->component_type = str(&r);
    if (cf & 8) c->component_id = str(&r);
    if (cf & 16) {
      c->output = str(&r);
      /* Sometimes a megabyte of output: it must be cut, not copied. */
      if ((cf & 0xE0) == 0xE0) {
        char *bigout = malloc(1 << 20);
        if (!bigout) abort();
        memset(bigout, '"', (1 << 20) - 1);
        bigout[(1 << 20) - 1] = 0;
        free(c->output);
        c->output = bigout;
      }
    }
    uint8_t st = byte(&r);
    c->effective = (health_status_t)(st % 4);
    c->last = c->effective == HEALTH_PENDING ? HEALTH_PENDING : c->effective;
    c->has_observed = (st >> 2) & 1;
    uint64_t bits = u64(&r);
    memcpy(&c->observed_value, &bits, sizeof c->observed_value); /* NaN, inf too */
    for (size_t k = 0; k < sizeof c->observed_unit - 1; k++) c->observed_unit[k] = (char)byte(&r);
    c->observed_unit[sizeof c->observed_unit - 1] = 0;
    /* A plausible wall clock: 1970 to 9999. */
    c->result_wall_ms = (int64_t)(u64(&r) % 253402300800000ull);
    /* Fresh, or stale (older than interval + timeout). */
    c->result_mono_ms = (st >> 3) & 1 ? 0 : now;
    c->runs = c->effective == HEALTH_PENDING ? 0 : 1;
    per_check_text +=
        strlen(c->key) + strlen(c->component_type) + strlen(c->observed_unit) +
        (c->component_id ? strlen(c->component_id) : 0) + 64 /* "why" texts */ +
        (c->output ? (strlen(c->output) < h->opt.max_output_bytes ? strlen(c->output)
                                                                  : h->opt.max_output_bytes)
                   : 0);
    if (c->endpoints & HEALTH_READINESS) on_endpoint[0]++;
    if (c->endpoints & HEALTH_LIVENESS) on_endpoint[1]++;
    pthread_mutex_unlock(&h->lock);
  }

  for (int ep = 0; ep < 2; ep++) {
    unsigned endpoint = ep == 0 ? HEALTH_READINESS : HEALTH_LIVENESS;
    for (int status_only = 0; status_only < 2; status_only++) {
      health__buf_t b;
      health__buf_init(&b);
      uint64_t valid_until;
      pthread_mutex_lock(&h->lock);
      unsigned code =
          health__render_locked(h, endpoint, status_only, health__now_ms(), &b, &valid_until);
      pthread_mutex_unlock(&h->lock);
      if (b.failed) abort(); /* no allocation failure is injected here */
      json_t j;
      if (!json_document(b.data, b.len, &j)) die("not one valid JSON object", b.data, b.len);
      if (b.len < 2 || b.data[b.len - 1] != '\n')
        die("body does not end in a newline", b.data, b.len);
      if (code != 200 && code != 503) die("code is neither 200 nor 503", b.data, b.len);
      if ((code == 503) != (strcmp(j.top_status, "fail") == 0))
        die("code and status disagree", b.data, b.len);
      if (strcmp(j.top_status, "pass") && strcmp(j.top_status, "warn") &&
          strcmp(j.top_status, "fail"))
        die("top-level status is not pass, warn or fail", b.data, b.len);
      if (status_only && j.checks_members != -1)
        die("status-only body lists checks", b.data, b.len);
      if (!status_only && j.checks_members != (long)on_endpoint[ep])
        die("checks object does not have one member per check", b.data, b.len);
      /* Every input-derived byte may grow to 6 ("\u001f"), plus framing. */
      size_t bound = 512 + 6 * fixed + nchecks * 400 + 6 * per_check_text;
      if (b.len > bound) die("body larger than its inputs allow (output not cut?)", b.data, b.len);
      health__buf_free(&b);
    }
  }

  /* The handle frees what we put in it. */
  health_free(h);
  return 0;
}
