/* Private parts of the HTTP probe (probe/probe.c, probe/request.c, probe/answer.c).
 * Self-contained on purpose: the health-probe command compiles these three
 * files alone and must need nothing beyond libc (no config.h, no
 * health_int.h, none of the library's dependencies). */
#ifndef HEALTH_PROBE_INT_H
#define HEALTH_PROBE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "core/stamp.h"

#define HEALTH__PROBE_URL_MAX 8192      /* a longer URL is refused */
#define HEALTH__PROBE_REQUEST_MAX 16384 /* request line + headers */
#define HEALTH__PROBE_HEAD_MAX 65536    /* an answer's heads, interim ones included */
#define HEALTH__PROBE_BODY_CAP 1048576  /* body bytes read to the end; then we stop reading */
#define HEALTH__PROBE_DEFAULT_TIMEOUT 2000

/* ---- URL (probe/request.c) ---- */
typedef struct health__probe_url {
  char host[256]; /* for the resolver: IPv6 literals without brackets */
  char port[6];   /* decimal, no leading zeros */
  unsigned port_num;
  int numeric;                             /* 4 or 6: an IP literal (no DNS needed), else 0 */
  unsigned char addr[16];                  /* the literal's address when numeric */
  char authority[300];                     /* the Host header: host[:port], [v6] bracketed */
  char target[HEALTH__PROBE_URL_MAX + 64]; /* origin-form: /path[?query] */
} health__probe_url_t;

/* Parse an http:// URL into `u`.  0, or -1 with a one-line reason in why
 * (which never repeats a password from the URL). */
int health__probe_parse_url(const char *url, health__probe_url_t *u, char *why, size_t wl);

/* Accepted status codes: "200-299", "200,204", "2xx,3xx", "200-399,418".
 * Fills a 400-bit set for codes 200-599.  0 or -1 with a reason. */
typedef struct health__probe_expect {
  uint64_t bits[7]; /* bit (code - 200) */
} health__probe_expect_t;
int health__probe_parse_expect(const char *spec, health__probe_expect_t *e, char *why, size_t wl);
int health__probe_expect_has(const health__probe_expect_t *e, int code);

/* Validate one "Name: value" request header (or "Name;" for an empty
 * value, as curl takes it).  0 or -1 with a reason. */
int health__probe_check_header(const char *h, char *why, size_t wl);

/* The request bytes into buf, in curl's order: GET target HTTP/1.1, Host
 * (or the value of a given Host header), User-Agent, Accept and
 * Connection: close unless headers of those names are given, then the
 * given `headers` (NULL-terminated) in their order; "Name:" with nothing
 * after it is not sent (it only removes a default).  Length, or -1 if it
 * does not fit. */
int health__probe_request(const health__probe_url_t *u, const char *const *headers, char *buf,
                          size_t len);

/* ---- answer parser (probe/answer.c) ---- */
enum {
  HEALTH__ANS_MORE = 0,  /* feed more bytes */
  HEALTH__ANS_HEAD = 1,  /* the final head is complete: status is known */
  HEALTH__ANS_DONE = 2,  /* the whole answer has been read (or the cap reached) */
  HEALTH__ANS_ERROR = -1 /* malformed: see error */
};

typedef struct health__probe_answer {
  int state;
  int status;      /* final (or current) status code */
  char phrase[64]; /* its reason phrase, printable ASCII only */
  int interim;     /* 1xx answers skipped */
  int chunked, have_length, no_body;
  uint64_t length;    /* Content-Length */
  uint64_t body_left; /* length or chunk bytes still to come */
  uint64_t body_wire; /* body bytes (framing included) seen */
  size_t head_bytes;  /* all heads so far */
  int capped;         /* stopped reading at HEALTH__PROBE_BODY_CAP */
  int head_reported;
  char line[1024]; /* the current line (longer ones are cut) */
  size_t line_len;
  int line_cut;
  const char *error; /* static text */
} health__probe_answer_t;

void health__probe_answer_init(health__probe_answer_t *a);
/* Consume bytes; *used says how many were taken (the rest belongs after the
 * answer).  Returns HEALTH__ANS_HEAD once when the final head ends, then
 * HEALTH__ANS_DONE at its end, HEALTH__ANS_MORE, or HEALTH__ANS_ERROR. */
int health__probe_answer_feed(health__probe_answer_t *a, const char *p, size_t n, size_t *used);
/* The connection closed: DONE for a close-delimited body, else ERROR
 * (truncated) with a reason. */
int health__probe_answer_eof(health__probe_answer_t *a);

#endif
