/*
 * The probe's answer side: an incremental HTTP/1.x response parser (RFC
 * 9112) that needs no buffer of the whole answer.  Interim 1xx answers
 * (100 Continue, 103 Early Hints) are skipped; the final answer's body is
 * framed by Transfer-Encoding: chunked, Content-Length, or the end of the
 * connection (§6.3), read and discarded up to HEALTH__PROBE_BODY_CAP, so
 * a truncated answer is seen as one and the server sees a clean close.
 * Bytes may arrive one at a time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "probe/probe_int.h"

#include <string.h>
#include <strings.h>

enum {
  S_STATUS,
  S_HEADER,
  S_BODY_LEN,
  S_BODY_CLOSE,
  S_CHUNK_SIZE,
  S_CHUNK_DATA,
  S_CHUNK_END,
  S_TRAILER,
  S_DONE,
  S_ERROR
};

static void reset_head(health__probe_answer_t *a) {
  a->status = 0;
  a->phrase[0] = 0;
  a->chunked = a->have_length = a->no_body = 0;
  a->length = 0;
  a->state = S_STATUS;
}

void health__probe_answer_init(health__probe_answer_t *a) {
  memset(a, 0, sizeof *a);
  reset_head(a);
}

static int err(health__probe_answer_t *a, const char *why) {
  a->state = S_ERROR;
  a->error = why;
  return HEALTH__ANS_ERROR;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int parse_status(health__probe_answer_t *a) {
  const char *l = a->line;
  if (a->line_len < 5 || strncmp(l, "HTTP/", 5) != 0) return err(a, "not an HTTP answer");
  if (a->line_len < 8 || l[5] != '1' || l[6] != '.' || l[7] < '0' || l[7] > '9')
    return err(a, "not an HTTP/1.x answer");
  if (a->line_len < 12 || l[8] != ' ' || l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' ||
      l[11] < '0' || l[11] > '9' || (l[12] && l[12] != ' '))
    return err(a, "malformed status line");
  a->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
  size_t k = 0;
  for (const char *p = l[12] ? l + 13 : l + 12; *p && k < sizeof a->phrase - 1; p++)
    if (*p >= 0x20 && *p < 0x7F) a->phrase[k++] = *p;
  a->phrase[k] = 0;
  a->state = S_HEADER;
  return HEALTH__ANS_MORE;
}

/* Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 §8.6). */
static int parse_length(health__probe_answer_t *a, const char *v) {
  for (;;) {
    while (is_ows(*v)) v++;
    uint64_t n = 0;
    size_t d = 0;
    for (; *v >= '0' && *v <= '9'; v++, d++) {
      if (n > (UINT64_MAX - 9) / 10) return err(a, "Content-Length too large");
      n = n * 10 + (uint64_t)(*v - '0');
    }
    while (is_ows(*v)) v++;
    if (!d || (*v && *v != ',')) return err(a, "malformed Content-Length");
    if (a->have_length && a->length != n) return err(a, "conflicting Content-Length values");
    a->have_length = 1;
    a->length = n;
    if (!*v) return HEALTH__ANS_MORE;
    v++;
  }
}

/* The body is chunked only if chunked is the last coding (RFC 9112 §6.3). */
static void parse_te(health__probe_answer_t *a, const char *v) {
  const char *last = v, *c;
  while ((c = strchr(last, ','))) {
    const char *rest = c + 1;
    while (is_ows(*rest)) rest++;
    if (!*rest) break; /* a trailing empty element */
    last = rest;
  }
  while (is_ows(*last)) last++;
  size_t n = strcspn(last, ", \t");
  a->chunked = n == 7 && strncasecmp(last, "chunked", 7) == 0 ? 1 : 2; /* 2: close-delimited */
}

static int header_line(health__probe_answer_t *a) {
  const char *l = a->line;
  if (is_ows(*l)) return HEALTH__ANS_MORE; /* obs-fold: a continuation, ignored */
  size_t n = strcspn(l, ":");
  if (!l[n]) return HEALTH__ANS_MORE; /* not a header; tolerated like curl does */
  const char *v = l + n + 1;
  int cl = n == 14 && strncasecmp(l, "Content-Length", 14) == 0;
  int te = n == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0;
  if ((cl || te) && a->line_cut) return err(a, "framing header too long");
  if (cl) return parse_length(a, v);
  if (te) parse_te(a, v);
  return HEALTH__ANS_MORE;
}

static int end_of_head(health__probe_answer_t *a) {
  if (a->status >= 100 && a->status < 200 && a->status != 101) {
    a->interim++; /* 100 Continue, 102, 103 Early Hints: the real one follows */
    reset_head(a);
    return HEALTH__ANS_MORE;
  }
  a->head_reported = 1;
  if (a->status < 200 || a->status == 204 || a->status == 304) {
    a->no_body = 1;
    a->state = S_DONE;
  } else if (a->chunked == 1) {
    a->state = S_CHUNK_SIZE;
  } else if (a->chunked == 2 || !a->have_length) {
    a->state = S_BODY_CLOSE;
  } else {
    a->body_left = a->length;
    a->state = a->length ? S_BODY_LEN : S_DONE;
  }
  return HEALTH__ANS_HEAD;
}

static int chunk_size(health__probe_answer_t *a) {
  const char *l = a->line;
  uint64_t n = 0;
  size_t d = 0;
  for (;; l++, d++) {
    int c = *l, v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else break;
    if (d >= 15) return err(a, "chunk size too large");
    n = n * 16 + (uint64_t)v;
  }
  while (is_ows(*l)) l++;
  if (!d || (*l && *l != ';')) return err(a, "malformed chunk size");
  a->body_left = n;
  a->state = n ? S_CHUNK_DATA : S_TRAILER;
  return HEALTH__ANS_MORE;
}

/* A complete line is in a->line (CR LF or a bare LF stripped). */
static int line_done(health__probe_answer_t *a) {
  int empty = a->line_len == 0;
  switch (a->state) {
    case S_STATUS:
      return empty ? HEALTH__ANS_MORE : parse_status(a); /* a stray empty line is ignored */
    case S_HEADER: return empty ? end_of_head(a) : header_line(a);
    case S_CHUNK_SIZE: return chunk_size(a);
    case S_CHUNK_END:
      if (!empty) return err(a, "malformed chunked body");
      a->state = S_CHUNK_SIZE;
      return HEALTH__ANS_MORE;
    case S_TRAILER:
      if (empty) a->state = S_DONE;
      return HEALTH__ANS_MORE;
  }
  return HEALTH__ANS_MORE;
}

int health__probe_answer_feed(health__probe_answer_t *a, const char *p, size_t n, size_t *used) {
  size_t i = 0;
  int rc = HEALTH__ANS_MORE;
  while (rc == HEALTH__ANS_MORE && i < n && a->state != S_DONE && a->state != S_ERROR) {
    int head = a->state == S_STATUS || a->state == S_HEADER;
    if (a->state == S_BODY_CLOSE || a->state == S_BODY_LEN || a->state == S_CHUNK_DATA) {
      size_t take = n - i;
      if (a->state != S_BODY_CLOSE && take > a->body_left) take = (size_t)a->body_left;
      i += take;
      a->body_wire += take;
      if (a->state != S_BODY_CLOSE) a->body_left -= take;
      if (a->state == S_BODY_LEN && !a->body_left) a->state = S_DONE;
      if (a->state == S_CHUNK_DATA && !a->body_left) a->state = S_CHUNK_END;
    } else {
      char c = p[i++];
      if (head && ++a->head_bytes > HEALTH__PROBE_HEAD_MAX)
        return *used = i, err(a, "answer headers larger than 64 KiB");
      if (!head) a->body_wire++;
      if (c == '\n') {
        if (a->line_len && a->line[a->line_len - 1] == '\r' && !a->line_cut) a->line_len--;
        a->line[a->line_len] = 0;
        rc = line_done(a);
        a->line_len = 0;
        a->line_cut = 0;
      } else if (a->line_len < sizeof a->line - 1) {
        a->line[a->line_len++] = c;
        /* an SSH banner or a TLS alert need not wait for a line end */
        if (a->state == S_STATUS && a->line_len == 5 && strncmp(a->line, "HTTP/", 5))
          rc = err(a, "not an HTTP answer");
      } else {
        a->line_cut = 1;
      }
    }
    if (a->body_wire > HEALTH__PROBE_BODY_CAP && a->state != S_ERROR) {
      a->capped = 1;
      a->state = S_DONE;
    }
  }
  *used = i;
  if (rc != HEALTH__ANS_MORE) return rc;
  if (a->state == S_ERROR) return HEALTH__ANS_ERROR;
  return a->state == S_DONE ? HEALTH__ANS_DONE : HEALTH__ANS_MORE;
}

int health__probe_answer_eof(health__probe_answer_t *a) {
  switch (a->state) {
    case S_DONE:
    case S_BODY_CLOSE: a->state = S_DONE; return HEALTH__ANS_DONE;
    case S_ERROR: return HEALTH__ANS_ERROR;
    case S_STATUS:
      if (!a->head_bytes) return err(a, "connection closed without an answer");
      if (a->line_len && strncmp(a->line, "HTTP/", a->line_len < 5 ? a->line_len : 5))
        return err(a, "not an HTTP answer");
      /* fall through */
    case S_HEADER: return err(a, "connection closed in the middle of the answer's head");
    default: return err(a, "answer truncated: connection closed before the end of its body");
  }
}
