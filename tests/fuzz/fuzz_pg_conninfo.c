/*
 * libFuzzer target: PostgreSQL connection strings as health_postgres_add()
 * takes them (checkers/pg_conninfo.c: libpq's PQconninfoParse, then libhealth's own checks
 * of port, host and sslmode, and its rewording of libpq's parse errors).
 *
 * Every byte 0x01 in the input is replaced by a marker string, so the
 * fuzzer can put a recognisable "secret" anywhere: in the password, a host,
 * a half-written keyword, the middle of a quoted string.
 *
 * Invariants:
 *  - the result is 0, HEALTH_EURL or HEALTH_ENOMEM; err.text is
 *    NUL-terminated; err.code matches; on failure err.text is non-empty;
 *  - no part of the input is ever quoted in an error, except the two
 *    documented ones: an unknown keyword (only [a-z_], which the marker
 *    cannot match) and an invalid sslmode value (not a secret).  So the
 *    marker never appears in err.text unless it is in the sslmode value;
 *  - a registered check is freed with the handle (LeakSanitizer).
 * Nothing connects: the check is registered, never run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "health.h"

#define MARK "Zq9Xs3cr3t"

static void quiet(health_log_level_t l, const char *line, void *arg) {
  (void)l, (void)line, (void)arg;
}

static void die(const char *what, const char *conninfo, const char *text) {
  fprintf(stderr, "fuzz_pg_conninfo: %s\n  conninfo: ", what);
  for (const unsigned char *p = (const unsigned char *)conninfo; *p; p++)
    fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", *p);
  fprintf(stderr, "\n  err.text: %s\n", text ? text : "");
  abort();
}

/* 1 if libpq parses `conninfo` and the marker is in its sslmode value. */
static int marker_in_sslmode(const char *conninfo) {
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  PQfreemem(perr);
  if (!opts) return 0;
  int found = 0;
  for (PQconninfoOption *o = opts; o->keyword; o++)
    if (o->val && strcmp(o->keyword, "sslmode") == 0 && strstr(o->val, MARK)) found = 1;
  PQconninfoFree(opts);
  return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  size_t marks = 0;
  for (size_t i = 0; i < size; i++) marks += data[i] == 1;
  char *conninfo = malloc(size + marks * (sizeof MARK - 1) + 1);
  if (!conninfo) abort();
  size_t o = 0;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == 1) {
      memcpy(conninfo + o, MARK, sizeof MARK - 1);
      o += sizeof MARK - 1;
    } else {
      conninfo[o++] = (char)data[i];
    }
  }
  conninfo[o] = 0; /* an embedded NUL ends the string, as in C */

  /* A handle per input, so that every input frees what it allocated
   * (libFuzzer then finds leaks cheaply, per input). */
  health_t *h = NULL;
  health_options_t opt;
  health_options_init(&opt);
  opt.handle_signals = 0;
  opt.exit_on_shutdown = 0;
  opt.log_fn = quiet;
  health_error_t e;
  if (health_new(&h, &opt, &e) != 0) abort();
  health_error_t err;
  memset(&err, 'X', sizeof err);
  int rc = health_postgres_add(h, "pg", conninfo, NULL, NULL, &err);
  if (rc != 0) {
    if (rc != HEALTH_EURL && rc != HEALTH_ENOMEM) die("unexpected return code", conninfo, NULL);
    if (!memchr(err.text, 0, sizeof err.text)) die("err.text not NUL-terminated", conninfo, NULL);
    if (err.code != rc) die("err.code does not match", conninfo, err.text);
    if (!err.text[0]) die("failure without an error text", conninfo, NULL);
    if (strstr(err.text, MARK) && !marker_in_sslmode(conninfo))
      die("a piece of the input is quoted in the error", conninfo, err.text);
  }
  health_free(h); /* frees a registered check and its parsed conninfo */
  free(conninfo);
  return 0;
}
