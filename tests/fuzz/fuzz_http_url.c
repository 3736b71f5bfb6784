/*
 * libFuzzer target: the HTTP checker's URL parser (checkers/target.c,
 * health__http_url_parse) and the HEALTH_CHECK_* option values
 * (core/env_values.c).
 *
 * Input: [mode][rest], rest used as a NUL-terminated string.  Modes:
 *   0  health__http_url_parse(rest)
 *   1  health__http_url_parse("http://u:" secret "@" rest): the secret
 *      never appears in the error text
 *   2  health__env_amount / _percent / _uint / _bool on rest
 *
 * Invariants: no crash, leak or undefined behaviour; a parsed URL has a
 * non-empty host, a port in 1-65535 and a path starting with '/'; the
 * Authorization line is well-formed; a parsed percentage is 0-100.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"
#include "checkers/target.h"

#define SECRET "Fz-Secret-q8"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  int mode = data[0] % 3;
  char *s = malloc(size + 64);
  if (!s) return 0;
  if (mode == 1) {
    memcpy(s, "http://u:" SECRET "@", 22);
    memcpy(s + 22, data + 1, size - 1);
    s[22 + size - 1] = 0;
  } else {
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
  }
  if (mode == 2) {
    double pct = -1, p2 = -1;
    uint64_t bytes = 0;
    int is_pct = 0, b = 0;
    unsigned u = 0;
    if (health__env_amount(s, &pct, &bytes, &is_pct) == 0 && is_pct && !(pct >= 0 && pct <= 100))
      abort();
    if (health__env_percent(s, &p2) == 0 && !(p2 >= 0 && p2 <= 100)) abort();
    if (health__env_uint(s, 5, 500, &u) == 0 && (u < 5 || u > 500)) abort();
    if (health__env_bool(s, &b) == 0 && b != 0 && b != 1) abort();
    free(s);
    return 0;
  }
  health__http_target_t t;
  char *auth = NULL;
  const char *why = NULL;
  int rc = health__http_url_parse(s, &t, &auth, &why);
  if (rc == 0) {
    if (!t.hp.host || !*t.hp.host || t.hp.port < 1 || t.hp.port > 65535 || !t.path ||
        t.path[0] != '/')
      abort();
    if (auth && (strncmp(auth, "Authorization: Basic ", 21) != 0 ||
                 strcmp(auth + strlen(auth) - 2, "\r\n") != 0))
      abort();
    health__http_target_free(&t);
    free(auth);
  } else {
    if (!why || auth) abort();
    if (strstr(why, SECRET)) abort();
  }
  free(s);
  return 0;
}
