/*
 * libFuzzer target: configuration from HEALTH_* environment variables
 * (core/env.c, health_options_from_env).
 *
 * The input is a list of lines "NAME=value".  A line whose first byte is
 * below 0x20 names a known variable by index (so the fuzzer need not guess
 * the names); other names are used as written, but only names starting
 * with HEALTH_ are ever set (never the sanitizers' own variables).
 *
 * Invariants:
 *  - on failure: HEALTH_EINVAL, the options struct is byte-for-byte
 *    unchanged, err.code matches, err.text is NUL-terminated, non-empty and
 *    names a HEALTH_ variable;
 *  - the detail token is a secret: it never appears in err.text;
 *  - on success: the options are accepted by health_new() as they are (the
 *    two validations agree);
 * and every variable is cleared again after each input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

static const char *const known[] = {
    "HEALTH_PORT",
    "HEALTH_ADDRESS",
    "HEALTH_DETAIL",
    "HEALTH_DETAIL_TOKEN",
    "HEALTH_SERVICE_ID",
    "HEALTH_SERVICE_VERSION",
    "HEALTH_DESCRIPTION",
    "HEALTH_MAX_CONNECTIONS",
    "HEALTH_MAX_CONNECTIONS_PER_IP",
    "HEALTH_CONNECTION_TIMEOUT",
    "HEALTH_MAX_OUTPUT",
    "HEALTH_CHECK_INTERVAL_MS",
    "HEALTH_CHECK_TIMEOUT_MS",
    "HEALTH_FAILURE_THRESHOLD",
    "HEALTH_SUCCESS_THRESHOLD",
    "HEALTH_HANDLE_SIGNALS",
    "HEALTH_DRAIN_MS",
    "HEALTH_DRAIN_MIN_MS",
    "HEALTH_HOOK_TIMEOUT_MS",
    "HEALTH_SHUTDOWN_DEADLINE_MS",
    "HEALTH_EXIT",
    "HEALTH_LOG_LEVEL",
};
#define NKNOWN (sizeof known / sizeof known[0])

/* Set by this input, to be cleared after it. */
#define MAX_SET 64
static char *set_names[MAX_SET];
static size_t nset;

/* Every token value gets this prefix: the fuzzer controls the rest. */
#define TOKEN_MARK "Tk7%q"

static void clear_all(void) {
  for (size_t i = 0; i < nset; i++) {
    unsetenv(set_names[i]);
    free(set_names[i]);
  }
  nset = 0;
  for (size_t i = 0; i < NKNOWN; i++) unsetenv(known[i]);
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_env: %s\n", what);
  if (detail) fprintf(stderr, "  %s\n", detail);
  for (size_t i = 0; i < nset; i++) {
    const char *v = getenv(set_names[i]);
    fprintf(stderr, "  %s=", set_names[i]);
    for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p; p++)
      fprintf(stderr, (*p >= 0x20 && *p < 0x7f) ? "%c" : "\\x%02x", *p);
    fprintf(stderr, "\n");
  }
  abort();
}

static void quiet(health_log_level_t l, const char *line, void *arg) {
  (void)l, (void)line, (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  clear_all();
  int token_set = 0;
  const uint8_t *p = data, *end = data + size;
  while (p < end && nset < MAX_SET) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *le = nl ? nl : end;
    char name[64];
    const uint8_t *val;
    if (le > p && *p < 0x20) {
      snprintf(name, sizeof name, "%s", known[*p % NKNOWN]);
      val = p + 1;
      if (val < le && *val == '=') val++;
    } else {
      const uint8_t *eq = memchr(p, '=', (size_t)(le - p));
      size_t nlen = eq ? (size_t)(eq - p) : 0;
      if (!eq || nlen == 0 || nlen >= sizeof name || memchr(p, 0, nlen)) {
        p = le + 1;
        continue;
      }
      memcpy(name, p, nlen);
      name[nlen] = 0;
      val = eq + 1;
    }
    p = le + 1;
    if (strncmp(name, "HEALTH_", 7) != 0) continue;
    int is_token = strcmp(name, "HEALTH_DETAIL_TOKEN") == 0;
    size_t vlen = (size_t)(le - val);
    char *value = malloc(vlen + sizeof TOKEN_MARK);
    if (!value) abort();
    size_t o = 0;
    if (is_token) {
      memcpy(value, TOKEN_MARK, sizeof TOKEN_MARK - 1);
      o = sizeof TOKEN_MARK - 1;
    }
    memcpy(value + o, val, vlen);
    value[o + vlen] = 0; /* an embedded NUL ends the value, as in C */
    if (!is_token && strstr(value, TOKEN_MARK)) {
      free(value); /* keep the marker unique to the token */
      continue;
    }
    if (setenv(name, value, 1) == 0) {
      set_names[nset++] = strdup(name);
      token_set |= is_token;
    }
    free(value);
  }

  health_options_t before, o;
  health_options_init(&before);
  before.service_id = "caller-service"; /* a field the caller set itself */
  before.log_fn = quiet;
  o = before;
  health_error_t err;
  memset(&err, 'X', sizeof err);
  int rc = health_options_from_env(&o, &err);
  if (rc != 0) {
    if (rc != HEALTH_EINVAL) die("unexpected return code", NULL);
    if (memcmp(&before, &o, sizeof o) != 0) die("options changed by a failed parse", NULL);
    if (!memchr(err.text, 0, sizeof err.text)) die("err.text not NUL-terminated", NULL);
    if (err.code != rc) die("err.code does not match", NULL);
    if (!err.text[0]) die("empty error text", NULL);
    if (!strstr(err.text, "HEALTH_")) die("the error does not name the variable", err.text);
    if (token_set && strstr(err.text, TOKEN_MARK))
      die("the detail token leaked into the error", err.text);
  } else {
    /* What the environment produced must be usable as it is. */
    health_t *h = NULL;
    health_error_t e2;
    o.handle_signals = 0; /* health_new() does not install handlers; be sure */
    int rc2 = health_new(&h, &o, &e2);
    if (rc2 != 0) die("health_options_from_env accepted what health_new rejects", e2.text);
    health_free(h);
  }
  clear_all();
  return 0;
}
