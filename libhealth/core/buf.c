/* A growable byte buffer that records allocation failure instead of
 * returning it from every append, so renderers stay linear. */
#include "health_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void health__buf_init(health__buf_t *b) { memset(b, 0, sizeof *b); }

void health__buf_free(health__buf_t *b) {
  free(b->data);
  health__buf_init(b);
}

static int grow(health__buf_t *b, size_t need) {
  if (b->failed) return -1;
  if (b->len + need + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + need + 1) {
    if (cap > SIZE_MAX / 2) {
      b->failed = 1;
      return -1;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void health__buf_add(health__buf_t *b, const char *s, size_t n) {
  if (grow(b, n) < 0) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}

void health__buf_adds(health__buf_t *b, const char *s) { health__buf_add(b, s, strlen(s)); }

void health__buf_printf(health__buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[128];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    health__buf_add(b, small, (size_t)n);
    return;
  }
  if (grow(b, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 if invalid.
 * Rejects overlongs, surrogates and code points above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min, cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    min = 0x80;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    min = 0x800;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    min = 0x10000;
    cp = c & 0x07;
  } else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void health__buf_json_str(health__buf_t *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0; /* run: start of bytes to copy verbatim */
  while (i < n) {
    unsigned c = s[i];
    const char *esc = NULL;
    char ubuf[8];
    size_t adv = 1;
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c < 0x20 || c == 0x7F) {
      snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
      esc = ubuf;
    } else if (c >= 0x80) {
      adv = utf8_len(s + i, n - i);
      if (adv == 0) {
        esc = "\xEF\xBF\xBD";
        adv = 1;
      } /* U+FFFD */
    }
    if (esc) {
      health__buf_add(b, (const char *)s + run, i - run);
      health__buf_adds(b, esc);
      i += adv;
      run = i;
    } else {
      i += adv;
    }
  }
  health__buf_add(b, (const char *)s + run, n - run);
}
