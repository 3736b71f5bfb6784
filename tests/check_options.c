/* Options: documented defaults, HEALTH_* environment variables (every one
 * valid, every kind of malformed value rejected with a message naming the
 * variable and the struct left untouched), validation in health_new(),
 * error names and messages, the version. */
#define _GNU_SOURCE
#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_int.h"
#include "testhelp.h"

typedef enum { K_UINT, K_BOOL, K_STR } kind_t;

typedef struct {
  const char *var;
  size_t off;
  kind_t kind;
  const char *valid; /* a valid value different from the default */
} var_t;

#define U(v, f, val) \
  { v, offsetof(health_options_t, f), K_UINT, val }
#define B(v, f, val) \
  { v, offsetof(health_options_t, f), K_BOOL, val }
#define S(v, f, val) \
  { v, offsetof(health_options_t, f), K_STR, val }
static const var_t vars[] = {
    U("HEALTH_PORT", port, "9090"),
    U("HEALTH_MAX_CONNECTIONS", max_connections, "64"),
    U("HEALTH_MAX_CONNECTIONS_PER_IP", max_connections_per_ip, "0"),
    U("HEALTH_CONNECTION_TIMEOUT", connection_timeout_s, "30"),
    U("HEALTH_MAX_OUTPUT", max_output_bytes, "1024"),
    U("HEALTH_CHECK_INTERVAL_MS", check_interval_ms, "1000"),
    U("HEALTH_CHECK_TIMEOUT_MS", check_timeout_ms, "500"),
    U("HEALTH_FAILURE_THRESHOLD", failure_threshold, "3"),
    U("HEALTH_SUCCESS_THRESHOLD", success_threshold, "2"),
    U("HEALTH_DRAIN_MS", drain_ms, "3000"),
    U("HEALTH_DRAIN_MIN_MS", drain_min_ms, "1000"),
    U("HEALTH_HOOK_TIMEOUT_MS", hook_timeout_ms, "700"),
    U("HEALTH_SHUTDOWN_DEADLINE_MS", shutdown_deadline_ms, "20000"),
    B("HEALTH_HANDLE_SIGNALS", handle_signals, "false"),
    B("HEALTH_EXIT", exit_on_shutdown, "no"),
    S("HEALTH_ADDRESS", address, "::"),
    S("HEALTH_DETAIL_TOKEN", detail_token, "s3cret-token-123"),
    S("HEALTH_SERVICE_ID", service_id, "orders-api"),
    S("HEALTH_SERVICE_VERSION", service_version, "1.4.2"),
    S("HEALTH_DESCRIPTION", description, "the orders API \"v1\""),
};
#undef U
#undef B
#undef S
#define NVARS (sizeof vars / sizeof vars[0])

static const char *other_vars[] = {"HEALTH_DETAIL", "HEALTH_LOG_LEVEL"};

static void clear_env(void) {
  for (size_t i = 0; i < NVARS; i++) unsetenv(vars[i].var);
  for (size_t i = 0; i < 2; i++) unsetenv(other_vars[i]);
}

static void setup(void) { clear_env(); }

static int bool_value(const char *s) {
  return strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
         strcasecmp(s, "on") == 0;
}

/* Set field i of `o` the way the variable's value says. */
static void apply(health_options_t *o, const var_t *v, const char *value) {
  char *p = (char *)o + v->off;
  switch (v->kind) {
    case K_UINT: *(unsigned *)p = (unsigned)strtoul(value, NULL, 10); break;
    case K_BOOL: *(int *)p = bool_value(value); break;
    case K_STR: *(const char **)p = value; break;
  }
}

/* Field by field (a struct copy need not preserve padding bytes). */
static int same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static int opts_eq(const health_options_t *a, const health_options_t *b) {
  return same_str(a->address, b->address) && a->port == b->port && a->detail == b->detail &&
         same_str(a->detail_token, b->detail_token) && same_str(a->service_id, b->service_id) &&
         same_str(a->service_version, b->service_version) &&
         same_str(a->description, b->description) && a->max_connections == b->max_connections &&
         a->max_connections_per_ip == b->max_connections_per_ip &&
         a->connection_timeout_s == b->connection_timeout_s &&
         a->max_output_bytes == b->max_output_bytes &&
         a->check_interval_ms == b->check_interval_ms &&
         a->check_timeout_ms == b->check_timeout_ms &&
         a->failure_threshold == b->failure_threshold &&
         a->success_threshold == b->success_threshold && a->handle_signals == b->handle_signals &&
         a->drain_ms == b->drain_ms && a->drain_min_ms == b->drain_min_ms &&
         a->hook_timeout_ms == b->hook_timeout_ms &&
         a->shutdown_deadline_ms == b->shutdown_deadline_ms &&
         a->exit_on_shutdown == b->exit_on_shutdown && a->log_level == b->log_level &&
         a->log_fn == b->log_fn && a->log_arg == b->log_arg;
}

/* ------------------------------------------------------------------ */

START_TEST(test_defaults) {
  health_options_t o;
  memset(&o, 0xA5, sizeof o);
  health_options_init(&o);
  ck_assert_str_eq(o.address, "0.0.0.0");
  ck_assert_uint_eq(o.port, 8081);
  ck_assert_int_eq(o.detail, HEALTH_DETAIL_FULL);
  ck_assert_ptr_null(o.detail_token);
  ck_assert_ptr_null(o.service_id);
  ck_assert_ptr_null(o.service_version);
  ck_assert_ptr_null(o.description);
  ck_assert_uint_eq(o.max_connections, 128);
  ck_assert_uint_eq(o.max_connections_per_ip, 32);
  ck_assert_uint_eq(o.connection_timeout_s, 10);
  ck_assert_uint_eq(o.max_output_bytes, 512);
  ck_assert_uint_eq(o.check_interval_ms, 5000);
  ck_assert_uint_eq(o.check_timeout_ms, 2000);
  ck_assert_uint_eq(o.failure_threshold, 2);
  ck_assert_uint_eq(o.success_threshold, 1);
  ck_assert_int_eq(o.handle_signals, 1);
  ck_assert_uint_eq(o.drain_ms, 15000);
  ck_assert_uint_eq(o.drain_min_ms, HEALTH_DRAIN_MIN_UNSET); /* = the drain: never early */
  ck_assert_uint_eq(o.hook_timeout_ms, 5000);
  ck_assert_uint_eq(o.shutdown_deadline_ms, 25000);
  ck_assert_uint_lt(o.shutdown_deadline_ms, 30000); /* under ECS's stopTimeout */
  ck_assert_int_eq(o.exit_on_shutdown, 1);
  ck_assert_int_eq(o.log_level, HEALTH_LOG_INFO);
  ck_assert_ptr_null((void *)o.log_fn);
  ck_assert_ptr_null(o.log_arg);
  health_options_init(NULL); /* tolerated */

  health_check_options_t c;
  memset(&c, 0x5A, sizeof c);
  health_check_options_init(&c);
  ck_assert_uint_eq(c.interval_ms, 0);
  ck_assert_uint_eq(c.timeout_ms, 0);
  ck_assert_uint_eq(c.failure_threshold, 0);
  ck_assert_uint_eq(c.success_threshold, 0);
  ck_assert_int_eq(c.critical, 1);
  ck_assert_uint_eq(c.endpoints, HEALTH_READINESS);
  ck_assert_ptr_null(c.component_type);
  ck_assert_ptr_null(c.measurement);
  ck_assert_ptr_null(c.component_id);

  /* The defaults are valid and a handle takes them (NULL = defaults). */
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_int_eq(health_new(&h, NULL, &err), 0);
  ck_assert_ptr_nonnull(h);
  ck_assert_uint_eq(h->opt.port, 8081);
  ck_assert_uint_eq(health_port(h), 0); /* not started */
  health_free(h);
}
END_TEST

START_TEST(test_env_all_valid) {
  health_options_t o, want;
  health_options_init(&o);
  want = o;
  for (size_t i = 0; i < NVARS; i++) {
    ck_assert_int_eq(setenv(vars[i].var, vars[i].valid, 1), 0);
    apply(&want, &vars[i], vars[i].valid);
  }
  setenv("HEALTH_DETAIL", "token", 1);
  want.detail = HEALTH_DETAIL_TOKEN;
  setenv("HEALTH_LOG_LEVEL", "debug", 1);
  want.log_level = HEALTH_LOG_DEBUG;

  health_error_t err = {0};
  ck_assert_msg(health_options_from_env(&o, &err) == 0, "%s", err.text);
  for (size_t i = 0; i < NVARS; i++) {
    const char *a = (const char *)&o + vars[i].off, *b = (const char *)&want + vars[i].off;
    if (vars[i].kind == K_STR) ck_assert_str_eq(*(const char *const *)a, *(const char *const *)b);
    else
      ck_assert_msg(memcmp(a, b, sizeof(unsigned)) == 0, "%s did not land in the struct",
                    vars[i].var);
  }
  ck_assert_int_eq(o.detail, HEALTH_DETAIL_TOKEN);
  ck_assert_int_eq(o.log_level, HEALTH_LOG_DEBUG);
  ck_assert_int_eq(o.handle_signals, 0);
  ck_assert_int_eq(o.exit_on_shutdown, 0);

  /* The result is accepted by health_new, which copies the strings. */
  health_t *h = NULL;
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  clear_env();
  ck_assert_str_eq(h->opt.service_id, "orders-api");
  ck_assert_str_eq(h->opt.address, "::");
  ck_assert_ptr_ne(h->opt.service_id, o.service_id);
  health_free(h);
}
END_TEST

START_TEST(test_env_each_alone) {
  /* Each variable alone changes its own field and nothing else. */
  for (size_t i = 0; i < NVARS; i++) {
    clear_env();
    health_options_t o, want;
    health_options_init(&o);
    memcpy(&want, &o, sizeof o);
    setenv(vars[i].var, vars[i].valid, 1);
    if (strcmp(vars[i].var, "HEALTH_DETAIL_TOKEN") == 0)
      setenv("HEALTH_DETAIL", "token", 1), want.detail = HEALTH_DETAIL_TOKEN;
    apply(&want, &vars[i], getenv(vars[i].var));
    health_error_t err = {0};
    ck_assert_msg(health_options_from_env(&o, &err) == 0, "%s: %s", vars[i].var, err.text);
    ck_assert_msg(opts_eq(&o, &want), "%s changed more than its field", vars[i].var);
  }
  /* Other spellings of the enums and booleans. */
  static const struct {
    const char *var, *val;
    size_t off;
    int want;
  } alt[] = {
      {"HEALTH_DETAIL", "STATUS", offsetof(health_options_t, detail), HEALTH_DETAIL_STATUS},
      {"HEALTH_DETAIL", "full", offsetof(health_options_t, detail), HEALTH_DETAIL_FULL},
      {"HEALTH_LOG_LEVEL", "Warn", offsetof(health_options_t, log_level), HEALTH_LOG_WARN},
      {"HEALTH_LOG_LEVEL", "error", offsetof(health_options_t, log_level), HEALTH_LOG_ERROR},
      {"HEALTH_LOG_LEVEL", "off", offsetof(health_options_t, log_level), HEALTH_LOG_OFF},
      {"HEALTH_LOG_LEVEL", "info", offsetof(health_options_t, log_level), HEALTH_LOG_INFO},
      {"HEALTH_HANDLE_SIGNALS", "0", offsetof(health_options_t, handle_signals), 0},
      {"HEALTH_HANDLE_SIGNALS", "OFF", offsetof(health_options_t, handle_signals), 0},
      {"HEALTH_HANDLE_SIGNALS", "replace", offsetof(health_options_t, handle_signals),
       HEALTH_SIGNALS_REPLACE},
      {"HEALTH_HANDLE_SIGNALS", "2", offsetof(health_options_t, handle_signals),
       HEALTH_SIGNALS_REPLACE},
      {"HEALTH_HANDLE_SIGNALS", "Chain", offsetof(health_options_t, handle_signals),
       HEALTH_SIGNALS_CHAIN},
      {"HEALTH_EXIT", "TRUE", offsetof(health_options_t, exit_on_shutdown), 1},
      {"HEALTH_EXIT", "off", offsetof(health_options_t, exit_on_shutdown), 0},
  };
  for (size_t i = 0; i < sizeof alt / sizeof alt[0]; i++) {
    clear_env();
    health_options_t o;
    health_options_init(&o);
    setenv(alt[i].var, alt[i].val, 1);
    health_error_t err = {0};
    ck_assert_msg(health_options_from_env(&o, &err) == 0, "%s=%s: %s", alt[i].var, alt[i].val,
                  err.text);
    int got;
    memcpy(&got, (char *)&o + alt[i].off, sizeof got);
    ck_assert_msg(got == alt[i].want, "%s=%s gave %d", alt[i].var, alt[i].val, got);
  }
}
END_TEST

START_TEST(test_env_empty_ignored) {
  health_options_t o, copy;
  health_options_init(&o);
  o.port = 1234; /* a caller's own value survives empty variables */
  memcpy(&copy, &o, sizeof o);
  for (size_t i = 0; i < NVARS; i++) setenv(vars[i].var, "", 1);
  for (size_t i = 0; i < 2; i++) setenv(other_vars[i], "", 1);
  health_error_t err = {0};
  ck_assert_msg(health_options_from_env(&o, &err) == 0, "%s", err.text);
  ck_assert(opts_eq(&o, &copy));
  clear_env();
  ck_assert_int_eq(health_options_from_env(&o, NULL), 0);
  ck_assert(opts_eq(&o, &copy));
  ck_assert_int_eq(health_options_from_env(NULL, &err), HEALTH_EINVAL);
}
END_TEST

/* Parse with `var=value` set (plus valid values for a few other variables,
 * to show the parse is all or nothing) and expect a clean rejection. */
static void expect_reject(const char *var, const char *value, const char *name_in_msg) {
  clear_env();
  setenv("HEALTH_PORT", "9999", 1);
  setenv("HEALTH_SERVICE_ID", "svc", 1);
  setenv("HEALTH_LOG_LEVEL", "error", 1);
  setenv(var, value, 1);
  health_options_t o, copy;
  health_options_init(&o);
  memcpy(&copy, &o, sizeof o);
  health_error_t err;
  memset(&err, 0, sizeof err);
  int rc = health_options_from_env(&o, &err);
  ck_assert_msg(rc == HEALTH_EINVAL, "%s='%s' accepted (rc %d)", var, value, rc);
  ck_assert_int_eq(err.code, HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, name_in_msg) != NULL, "%s='%s': message does not name %s: %s", var,
                value, name_in_msg, err.text);
  ck_assert_msg(memcmp(&o, &copy, sizeof o) == 0, "%s='%s' changed the options", var, value);
  /* Without an error struct too. */
  ck_assert_int_eq(health_options_from_env(&o, NULL), HEALTH_EINVAL);
  ck_assert(memcmp(&o, &copy, sizeof o) == 0);
}

START_TEST(test_env_malformed) {
  static const char *bad_numbers[] = {"abc",
                                      "-1",
                                      "10ms",
                                      " 10",
                                      "10 ",
                                      "1.5",
                                      "+5",
                                      "0x10",
                                      "99999999999",
                                      "4294967296",
                                      "18446744073709551616",
                                      "1e3",
                                      "١٢"};
  for (size_t i = 0; i < NVARS; i++) {
    if (vars[i].kind != K_UINT) continue;
    for (size_t k = 0; k < sizeof bad_numbers / sizeof bad_numbers[0]; k++)
      expect_reject(vars[i].var, bad_numbers[k], vars[i].var);
  }
  /* Out of range. */
  static const struct {
    const char *var, *val;
  } range[] = {
      {"HEALTH_PORT", "65536"},
      {"HEALTH_MAX_CONNECTIONS", "0"},
      {"HEALTH_CONNECTION_TIMEOUT", "0"},
      {"HEALTH_MAX_OUTPUT", "0"},
      {"HEALTH_CHECK_INTERVAL_MS", "0"},
      {"HEALTH_CHECK_INTERVAL_MS", "4294967295"},
      {"HEALTH_CHECK_TIMEOUT_MS", "0"},
      {"HEALTH_FAILURE_THRESHOLD", "0"},
      {"HEALTH_FAILURE_THRESHOLD", "101"},
      {"HEALTH_SUCCESS_THRESHOLD", "0"},
      {"HEALTH_HOOK_TIMEOUT_MS", "0"},
      {"HEALTH_SHUTDOWN_DEADLINE_MS", "0"},
  };
  for (size_t i = 0; i < sizeof range / sizeof range[0]; i++)
    expect_reject(range[i].var, range[i].val, range[i].var);

  static const char *bad_bools[] = {"maybe", "2", "yes please", "-1", "tru"};
  for (size_t k = 0; k < sizeof bad_bools / sizeof bad_bools[0]; k++) {
    if (strcmp(bad_bools[k], "2") != 0) /* HEALTH_SIGNALS_REPLACE */
      expect_reject("HEALTH_HANDLE_SIGNALS", bad_bools[k], "HEALTH_HANDLE_SIGNALS");
    expect_reject("HEALTH_EXIT", bad_bools[k], "HEALTH_EXIT");
  }
  expect_reject("HEALTH_DETAIL", "verbose", "HEALTH_DETAIL");
  expect_reject("HEALTH_DETAIL", "full ", "HEALTH_DETAIL");
  expect_reject("HEALTH_LOG_LEVEL", "trace", "HEALTH_LOG_LEVEL");
  expect_reject("HEALTH_LOG_LEVEL", "3", "HEALTH_LOG_LEVEL");
  static const char *bad_addrs[] = {"localhost",  "1.2.3.4.5", "::g",
                                    "0.0.0.0:80", "256.0.0.1", " 0.0.0.0"};
  for (size_t k = 0; k < sizeof bad_addrs / sizeof bad_addrs[0]; k++)
    expect_reject("HEALTH_ADDRESS", bad_addrs[k], "HEALTH_ADDRESS");
  expect_reject("HEALTH_SERVICE_ID", "line\nbreak", "HEALTH_SERVICE_ID");
  expect_reject("HEALTH_DESCRIPTION", "tab\there", "HEALTH_DESCRIPTION");

  /* Token mode without a (usable) token. */
  expect_reject("HEALTH_DETAIL", "token", "HEALTH_DETAIL_TOKEN");
  setenv("HEALTH_DETAIL_TOKEN", "short", 1);
  {
    health_options_t o, copy;
    health_options_init(&o);
    memcpy(&copy, &o, sizeof o);
    setenv("HEALTH_DETAIL", "token", 1);
    setenv("HEALTH_DETAIL_TOKEN", "short", 1);
    health_error_t err = {0};
    ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DETAIL_TOKEN"));
    ck_assert_ptr_null(strstr(err.text, "short")); /* the token is not echoed */
    ck_assert(memcmp(&o, &copy, sizeof o) == 0);
  }

  /* The drain must end before the deadline, or the hooks never run. */
  expect_reject("HEALTH_DRAIN_MS", "30000", "HEALTH_DRAIN_MS");
  expect_reject("HEALTH_SHUTDOWN_DEADLINE_MS", "10000", "HEALTH_DRAIN_MS");
  clear_env();
  setenv("HEALTH_DRAIN_MS", "5000", 1);
  setenv("HEALTH_SHUTDOWN_DEADLINE_MS", "5000", 1);
  health_options_t o, copy;
  health_options_init(&o);
  memcpy(&copy, &o, sizeof o);
  health_error_t err = {0};
  ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MS"));
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_SHUTDOWN_DEADLINE_MS"));
  ck_assert(memcmp(&o, &copy, sizeof o) == 0);
  setenv("HEALTH_SHUTDOWN_DEADLINE_MS", "5001", 1);
  ck_assert_int_eq(health_options_from_env(&o, &err), 0);
  ck_assert_uint_eq(o.drain_ms, 5000);
  ck_assert_uint_eq(o.shutdown_deadline_ms, 5001);
}
END_TEST

/* ---- health_new validation ---- */

static void expect_new_rejects(const health_options_t *o, const char *name_in_msg) {
  health_t *h = (health_t *)0x1;
  health_error_t err;
  memset(&err, 0, sizeof err);
  int rc = health_new(&h, o, &err);
  ck_assert_msg(rc == HEALTH_EINVAL, "health_new accepted options (want a message naming %s)",
                name_in_msg);
  ck_assert_ptr_null(h);
  ck_assert_int_eq(err.code, HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, name_in_msg) != NULL, "message does not name %s: %s", name_in_msg,
                err.text);
}

START_TEST(test_new_rejects_invalid) {
  health_options_t o;
#define CASE(stmt, name)          \
  do {                            \
    health_options_init(&o);      \
    stmt;                         \
    expect_new_rejects(&o, name); \
  } while (0)
  CASE(o.port = 70000, "HEALTH_PORT");
  CASE(o.max_connections = 0, "HEALTH_MAX_CONNECTIONS");
  CASE(o.max_output_bytes = 1, "HEALTH_MAX_OUTPUT");
  CASE(o.check_interval_ms = 1, "HEALTH_CHECK_INTERVAL_MS");
  CASE(o.check_timeout_ms = 0, "HEALTH_CHECK_TIMEOUT_MS");
  CASE(o.failure_threshold = 0, "HEALTH_FAILURE_THRESHOLD");
  CASE(o.success_threshold = 1000, "HEALTH_SUCCESS_THRESHOLD");
  CASE(o.hook_timeout_ms = 0, "HEALTH_HOOK_TIMEOUT_MS");
  CASE(o.address = "localhost", "HEALTH_ADDRESS");
  CASE(o.address = NULL, "HEALTH_ADDRESS");
  CASE(o.detail = (health_detail_t)7, "HEALTH_DETAIL");
  CASE(o.detail = HEALTH_DETAIL_TOKEN, "HEALTH_DETAIL_TOKEN");
  CASE((o.detail = HEALTH_DETAIL_TOKEN, o.detail_token = "1234567"), "HEALTH_DETAIL_TOKEN");
  CASE(o.service_id = "bad\x01id", "HEALTH_SERVICE_ID");
  CASE(o.service_version = "v\n1", "HEALTH_SERVICE_VERSION");
  CASE(o.drain_ms = o.shutdown_deadline_ms, "HEALTH_DRAIN_MS");
  CASE(o.log_level = (health_log_level_t)9, "HEALTH_LOG_LEVEL");
#undef CASE
  health_error_t err = {0};
  ck_assert_int_eq(health_new(NULL, NULL, &err), HEALTH_EINVAL);
  ck_assert_int_eq(err.code, HEALTH_EINVAL);

  /* Strings are copied: the caller's buffers may go away. */
  char id[32] = "copied-id";
  health_options_init(&o);
  o.service_id = id;
  health_t *h = NULL;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  memset(id, 'X', sizeof id - 1);
  ck_assert_str_eq(h->opt.service_id, "copied-id");
  health_free(h);
}
END_TEST

/* ---- the drain minimum ---- */

/* health_new() with `o`; returns the drain minimum it froze. */
static unsigned frozen_drain_min(const health_options_t *o) {
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, o, &err) == 0, "%s", err.text);
  unsigned v = h->opt.drain_min_ms;
  health_free(h);
  return v;
}

/* Unset means "= the drain", for any drain: a 30 s drain was once cut to
 * 15 s because the default minimum was 15000 and only ever lowered. */
START_TEST(test_drain_min_follows_drain) {
  health_options_t o;
  health_options_init(&o);
  o.drain_ms = 30000;
  o.shutdown_deadline_ms = 45000;
  ck_assert_uint_eq(frozen_drain_min(&o), 30000);
  o.drain_ms = 0;
  ck_assert_uint_eq(frozen_drain_min(&o), 0);
  o.drain_ms = 600000;
  o.shutdown_deadline_ms = 900000;
  ck_assert_uint_eq(frozen_drain_min(&o), 600000);

  /* The environment path: only the drain and the deadline set. */
  static const char *drains[] = {"20000", "30000", "15001", "1500"};
  for (size_t i = 0; i < sizeof drains / sizeof drains[0]; i++) {
    clear_env();
    setenv("HEALTH_DRAIN_MS", drains[i], 1);
    setenv("HEALTH_SHUTDOWN_DEADLINE_MS", "45000", 1);
    health_options_init(&o);
    health_error_t err = {0};
    ck_assert_msg(health_options_from_env(&o, &err) == 0, "%s", err.text);
    ck_assert_uint_eq(o.drain_min_ms, HEALTH_DRAIN_MIN_UNSET);
    ck_assert_uint_eq(frozen_drain_min(&o), (unsigned)atoi(drains[i]));
  }
  /* Set explicitly, it is kept (equal to the drain included). */
  clear_env();
  health_options_init(&o);
  o.drain_ms = 30000;
  o.shutdown_deadline_ms = 45000;
  o.drain_min_ms = 12000;
  ck_assert_uint_eq(frozen_drain_min(&o), 12000);
  o.drain_min_ms = 30000;
  ck_assert_uint_eq(frozen_drain_min(&o), 30000);
  o.drain_min_ms = 0;
  ck_assert_uint_eq(frozen_drain_min(&o), 0);
}
END_TEST

/* A minimum above the drain is an error naming both, never a clamp. */
START_TEST(test_drain_min_above_drain_rejected) {
  health_options_t o;
  health_options_init(&o);
  o.drain_ms = 3000;
  o.drain_min_ms = 5000;
  expect_new_rejects(&o, "HEALTH_DRAIN_MIN_MS");
  expect_new_rejects(&o, "HEALTH_DRAIN_MS (3000)");
  o.drain_min_ms = 600001;
  expect_new_rejects(&o, "HEALTH_DRAIN_MIN_MS");

  expect_reject("HEALTH_DRAIN_MIN_MS", "20000", "HEALTH_DRAIN_MIN_MS"); /* default drain 15000 */
  clear_env();
  setenv("HEALTH_DRAIN_MS", "3000", 1);
  setenv("HEALTH_DRAIN_MIN_MS", "5000", 1);
  health_options_init(&o);
  health_options_t copy;
  memcpy(&copy, &o, sizeof o);
  health_error_t err = {0};
  ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MIN_MS (5000)"));
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MS (3000)"));
  ck_assert(memcmp(&o, &copy, sizeof o) == 0);
  /* The program set a minimum; the environment shortens the drain below it. */
  clear_env();
  setenv("HEALTH_DRAIN_MS", "3000", 1);
  health_options_init(&o);
  o.drain_min_ms = 10000;
  ck_assert_int_eq(health_options_from_env(&o, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "HEALTH_DRAIN_MIN_MS (10000)"));
}
END_TEST

/* ---- errors and version ---- */

START_TEST(test_errors_and_version) {
  static const struct {
    int code;
    const char *name, *text;
  } codes[] = {
#define HEALTH_XX_(n, v, t) {HEALTH_##n, "HEALTH_" #n, t},
      HEALTH_ERRNO_MAP(HEALTH_XX_)
#undef HEALTH_XX_
  };
  size_t n = sizeof codes / sizeof codes[0];
  ck_assert_uint_ge(n, 11);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_lt(codes[i].code, 0);
    ck_assert_str_eq(health_strerror(codes[i].code), codes[i].text);
    ck_assert_str_eq(health_err_name(codes[i].code), codes[i].name);
    ck_assert_str_ne(health_strerror(codes[i].code), "unknown error");
    for (size_t k = 0; k < i; k++) {
      ck_assert_int_ne(codes[i].code, codes[k].code);
      ck_assert_str_ne(codes[i].text, codes[k].text);
    }
    health_error_t err;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(health__err(&err, codes[i].code, NULL), codes[i].code);
    ck_assert_int_eq(err.code, codes[i].code);
    ck_assert_str_eq(err.text, codes[i].text);
  }
  ck_assert_str_eq(health_err_name(HEALTH_OK), "HEALTH_OK");
  ck_assert_str_ne(health_strerror(HEALTH_OK), "unknown error");
  static const int unknown[] = {1, 42, -13, -1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    ck_assert_str_eq(health_strerror(unknown[i]), "unknown error");
    ck_assert_str_eq(health_err_name(unknown[i]), "HEALTH_UNKNOWN");
  }
  /* A long message is cut to the buffer, NUL-terminated. */
  health_error_t err;
  char big[1000];
  memset(big, 'e', sizeof big - 1);
  big[sizeof big - 1] = 0;
  ck_assert_int_eq(health__err(&err, HEALTH_EINVAL, "%s", big), HEALTH_EINVAL);
  ck_assert_uint_eq(strlen(err.text), HEALTH_ERROR_TEXT_LENGTH - 1);
  ck_assert_int_eq(health__err(NULL, HEALTH_ENOMEM, "x"), HEALTH_ENOMEM);

  ck_assert_str_eq(health_version(), HEALTH_VERSION_STRING);
  char v[32];
  snprintf(v, sizeof v, "%d.%d.%d", HEALTH_VERSION_MAJOR, HEALTH_VERSION_MINOR,
           HEALTH_VERSION_PATCH);
  ck_assert_str_eq(health_version(), v);
}
END_TEST

/* ---- the ABI policy: reserved space must stay zero ---- */

/* Every public options struct an entry point takes: a set reserved field
 * is a clear EINVAL naming the struct and its init function, and nothing
 * is registered; the same call with the struct as init left it succeeds. */
static void expect_reserved(int rc, const health_error_t *err, const char *stem) {
  char want[96];
  snprintf(want, sizeof want, "%s_t: reserved fields must stay zero", stem);
  if (rc == HEALTH_ENOTSUP) return; /* a checker this build lacks */
  ck_assert_msg(rc == HEALTH_EINVAL, "%s: rc %d (%s)", stem, rc, err->text);
  ck_assert_msg(strstr(err->text, want) && strstr(err->text, "_init"), "%s", err->text);
}

START_TEST(test_reserved_rejected) {
  health_error_t err;
  for (int k = 0; k < 3; k++) { /* reserved[3] after the init stamp */
    void *mark = &err;
    health_options_t o;
    health_options_init(&o);
    o.reserved[k] = mark;
    health_t *h = (health_t *)mark;
    expect_reserved(health_new(&h, &o, &err), &err, "health_options");
    ck_assert_ptr_null(h);
    health_options_init(&o);
    ck_assert_int_eq(health_new(&h, &o, &err), 0);

    health_check_options_t co, good;
    health_check_options_init(&good);
    co = good;
    co.reserved[k] = mark;
    expect_reserved(health_tcp_add(h, "t", "127.0.0.1:1", &co, &err), &err, "health_check_options");
    expect_reserved(health_http_add(h, "hc", "http://127.0.0.1:1/", NULL, &co, &err), &err,
                    "health_check_options");

    health_postgres_options_t pg;
    health_postgres_options_init(&pg);
    pg.reserved[k] = mark;
    expect_reserved(
        health_postgres_add(h, "pg", "host=127.0.0.1 port=1 dbname=x", &pg, &good, &err), &err,
        "health_postgres_options");
    health_redis_options_t ro;
    health_redis_options_init(&ro);
    ro.reserved[k] = mark;
    expect_reserved(health_redis_add(h, "r", "rediss://127.0.0.1:1", &ro, &good, &err), &err,
                    "health_redis_options");
    health_http_options_t ho;
    health_http_options_init(&ho);
    ho.reserved[k] = mark;
    expect_reserved(health_http_add(h, "h", "http://127.0.0.1:1/", &ho, &good, &err), &err,
                    "health_http_options");
    health_disk_options_t d;
    health_disk_options_init(&d);
    d.reserved[k] = mark;
    expect_reserved(health_disk_add(h, "d", "/", &d, &good, &err), &err, "health_disk_options");
    health_memory_options_t m;
    health_memory_options_init(&m);
    m.reserved[k] = mark;
    expect_reserved(health_memory_add(h, "m", &m, &good, &err), &err, "health_memory_options");
    health_fds_options_t f;
    health_fds_options_init(&f);
    f.reserved[k] = mark;
    expect_reserved(health_fds_add(h, "f", &f, &good, &err), &err, "health_fds_options");
    ck_assert_uint_eq(health__checks_count(h), 0);

    health_serve_options_t so;
    health_serve_options_init(&so);
    so.ready_path = "/r";
    so.reserved[k] = mark;
    expect_reserved(health_serve_set(h, &so, &err), &err, "health_serve_options");
    ck_assert_uint_ne(health__route(h, "/r"), HEALTH_READINESS); /* unchanged */
    health_fleet_options_t fl;
    health_fleet_options_init(&fl);
    fl.keep_connections = 0;
    fl.reserved[k] = mark;
    expect_reserved(health_fleet_set(h, &fl, &err), &err, "health_fleet_options");
    ck_assert_int_eq(h->fleet.keep_connections, 1); /* unchanged */
    health_agent_options_t ao;
    health_agent_options_init(&ao);
    ao.reserved[k] = mark;
    expect_reserved(health_agent_set(h, &ao, &err), &err, "health_agent_options");

    /* The same calls, the structs as their init functions left them. */
    ck_assert_int_eq(health_tcp_add(h, "t", "127.0.0.1:1", &good, &err), 0);
    pg.reserved[k] = NULL;
    int rc = health_postgres_add(h, "pg", "host=127.0.0.1 port=1 dbname=x", &pg, &good, &err);
    ck_assert_msg(rc == 0 || rc == HEALTH_ENOTSUP, "%s", err.text);
    ro.reserved[k] = NULL;
    rc = health_redis_add(h, "r", "rediss://127.0.0.1:1", &ro, &good, &err);
    ck_assert_msg(rc == 0 || rc == HEALTH_ENOTSUP, "%s", err.text);
    ho.reserved[k] = NULL;
    rc = health_http_add(h, "h", "http://127.0.0.1:1/", &ho, &good, &err);
    ck_assert_msg(rc == 0 || rc == HEALTH_ENOTSUP, "%s", err.text);
    d.reserved[k] = NULL;
    ck_assert_msg(health_disk_add(h, "d", "/", &d, &good, &err) == 0, "%s", err.text);
    m.reserved[k] = NULL;
    ck_assert_msg(health_memory_add(h, "m", &m, &good, &err) == 0, "%s", err.text);
    f.reserved[k] = NULL;
    ck_assert_msg(health_fds_add(h, "f", &f, &good, &err) == 0, "%s", err.text);
    ck_assert_uint_ge(health__checks_count(h), 5);
    so.reserved[k] = NULL;
    ck_assert_msg(health_serve_set(h, &so, &err) == 0, "%s", err.text);
    ck_assert_uint_eq(health__route(h, "/r"), HEALTH_READINESS);
    fl.reserved[k] = NULL;
    ck_assert_msg(health_fleet_set(h, &fl, &err) == 0, "%s", err.text);
    ck_assert_int_eq(h->fleet.keep_connections, 0);
    ao.reserved[k] = NULL;
    ck_assert_msg(health_agent_set(h, &ao, &err) == 0, "%s", err.text);
    health_free(h);

    health_probe_options_t po;
    health_probe_options_init(&po);
    po.reserved[k] = mark;
    char why[256];
    ck_assert_int_eq(health_probe_with("http://127.0.0.1:1/health", &po, why, sizeof why), 1);
    ck_assert_msg(strstr(why, "health_probe_options_t: reserved fields must stay zero"), "%s", why);
  }
}
END_TEST

/* ---- zero-initialised options: refused, never a silent different default ---- */

static void expect_uninit(int rc, const health_error_t *err, const char *stem) {
  char want[160];
  snprintf(want, sizeof want, "%s_t was not initialised: call %s_init() first", stem, stem);
  ck_assert_msg(rc == HEALTH_EINVAL, "%s: rc %d (%s)", stem, rc, err->text);
  ck_assert_msg(strstr(err->text, want), "%s", err->text);
}

/* Every options struct, `= {0}` plus the fields a program would set and no
 * init call: each function taking it refuses it naming the init function,
 * and nothing is registered or changed; NULL still means the defaults. */
START_TEST(test_zero_initialised_rejected) {
  health_error_t err;
  health_t *h = NULL;

  health_options_t o = {0};
  o.port = 0;
  o.log_level = HEALTH_LOG_ERROR;
  expect_uninit(health_new(&h, &o, &err), &err, "health_options");
  ck_assert_ptr_null(h);
  setenv("HEALTH_DRAIN_MS", "1000", 1);
  expect_uninit(health_options_from_env(&o, &err), &err, "health_options");
  ck_assert_uint_eq(o.drain_ms, 0); /* unchanged */
  unsetenv("HEALTH_DRAIN_MS");
  health_options_init(&o);
  o.port = 0;
  o.log_level = HEALTH_LOG_ERROR;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);

  /* The case: a check that always fails, meant to be critical. */
  health_check_options_t co = {.interval_ms = 500, .endpoints = HEALTH_READINESS};
  expect_uninit(health_tcp_add(h, "t", "127.0.0.1:1", &co, &err), &err, "health_check_options");
  expect_uninit(health_disk_add(h, "d", "/", NULL, &co, &err), &err, "health_check_options");
  expect_uninit(health_memory_add(h, "m", NULL, &co, &err), &err, "health_check_options");
  expect_uninit(health_fds_add(h, "f", NULL, &co, &err), &err, "health_check_options");

  health_check_options_t good;
  health_check_options_init(&good);
  health_postgres_options_t pg = {0};
  pg.require_writable = 1;
  int rc = health_postgres_add(h, "pg", "host=127.0.0.1 port=1 dbname=x", &pg, &good, &err);
  if (rc != HEALTH_ENOTSUP) expect_uninit(rc, &err, "health_postgres_options");
  health_redis_options_t ro = {0};
  ro.require_master = 1;
  rc = health_redis_add(h, "r", "redis://127.0.0.1:1", &ro, &good, &err);
  if (rc != HEALTH_ENOTSUP) expect_uninit(rc, &err, "health_redis_options");
  health_http_options_t ho = {0};
  ho.expect = "ok";
  expect_uninit(health_http_add(h, "h", "http://127.0.0.1:1/", &ho, &good, &err), &err,
                "health_http_options");
  health_disk_options_t d = {0};
  d.write_probe = 1;
  expect_uninit(health_disk_add(h, "d", "/", &d, &good, &err), &err, "health_disk_options");
  health_memory_options_t m = {0};
  m.oom_kill = HEALTH_FAIL;
  expect_uninit(health_memory_add(h, "m", &m, &good, &err), &err, "health_memory_options");
  health_fds_options_t f = {0};
  f.fail_percent = 95;
  expect_uninit(health_fds_add(h, "f", &f, &good, &err), &err, "health_fds_options");
  ck_assert_uint_eq(health__checks_count(h), 0);

  health_serve_options_t so = {0};
  so.ready_path = "/r";
  so.live_path = "/l";
  expect_uninit(health_serve_set(h, &so, &err), &err, "health_serve_options");
  ck_assert_uint_ne(health__route(h, "/r"), HEALTH_READINESS); /* unchanged */
  setenv("HEALTH_READY_PATH", "/rr", 1);
  expect_uninit(health_serve_options_from_env(&so, &err), &err, "health_serve_options");
  ck_assert_str_eq(so.ready_path, "/r");
  unsetenv("HEALTH_READY_PATH");

  health_fleet_options_t fl = {0};
  fl.seed = 42;
  expect_uninit(health_fleet_set(h, &fl, &err), &err, "health_fleet_options");
  ck_assert_int_eq(h->fleet.keep_connections, 1); /* unchanged */
  ck_assert_int_eq(h->fleet.backoff, 1);
  setenv("HEALTH_JITTER", "20", 1);
  expect_uninit(health_fleet_options_from_env(&fl, &err), &err, "health_fleet_options");
  ck_assert_uint_eq(fl.run_jitter_percent, 0);
  unsetenv("HEALTH_JITTER");

  health_agent_options_t ao = {0};
  ao.weight = 50;
  expect_uninit(health_agent_set(h, &ao, &err), &err, "health_agent_options");

  /* The same structs through their init functions (the fields set again),
   * and NULL for defaults, are accepted. */
  health_check_options_init(&co);
  co.interval_ms = 500;
  ck_assert_msg(health_tcp_add(h, "t", "127.0.0.1:1", &co, &err) == 0, "%s", err.text);
  ck_assert_msg(health_disk_add(h, "d", "/", NULL, NULL, &err) == 0, "%s", err.text);
  health_fds_options_init(&f);
  f.fail_percent = 95;
  ck_assert_msg(health_fds_add(h, "f", &f, &good, &err) == 0, "%s", err.text);
  ck_assert_uint_eq(health__checks_count(h), 3);
  health_serve_options_init(&so);
  so.ready_path = "/r";
  ck_assert_msg(health_serve_set(h, &so, &err) == 0, "%s", err.text);
  ck_assert_uint_eq(health__route(h, "/r"), HEALTH_READINESS);
  ck_assert_msg(health_fleet_set(h, NULL, &err) == 0, "%s", err.text);
  health_agent_options_init(&ao);
  ao.weight = 50;
  ck_assert_msg(health_agent_set(h, &ao, &err) == 0, "%s", err.text);
  health_free(h);

  health_probe_options_t po = {0};
  po.timeout_ms = 300;
  char why[256];
  ck_assert_int_eq(health_probe_with("http://127.0.0.1:1/health", &po, why, sizeof why), 1);
  ck_assert_msg(strstr(why, "health_probe_options_t was not initialised: call "
                            "health_probe_options_init() first"),
                "%s", why);
}
END_TEST

/* What the refusal prevents: the same check, registered through the init
 * function, fails readiness when it fails (critical by default). */
static void always_fail(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_FAIL, "down");
}

static int ran_once(void *arg) {
  health_check_info_t info;
  return health_check_find(arg, "inited", &info, NULL) == 0 && info.runs > 0;
}

START_TEST(test_zero_initialised_check_not_silently_noncritical) {
  health_error_t err;
  health_options_t o;
  health_options_init(&o);
  o.port = HEALTH_PORT_OFF;
  o.handle_signals = 0;
  o.log_level = HEALTH_LOG_OFF;
  o.failure_threshold = 1;
  health_t *h = NULL;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  health_check_options_t co = {.interval_ms = 50, .endpoints = HEALTH_READINESS};
  expect_uninit(health_check_add(h, "zero", always_fail, NULL, NULL, &co, &err), &err,
                "health_check_options");
  health_check_options_init(&co);
  co.interval_ms = 50;
  ck_assert_int_eq(health_check_add(h, "inited", always_fail, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  ck_assert(th_wait_until(ran_once, h, 5000));
  ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
  health_check_info_t info;
  ck_assert_int_eq(health_check_find(h, "zero", &info, NULL), HEALTH_ENOENT);
  health_free(h);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("options");
  TCase *t = tcase_create("options");
  tcase_add_checked_fixture(t, setup, NULL);
  tcase_set_timeout(t, 20);
  tcase_add_test(t, test_defaults);
  tcase_add_test(t, test_env_all_valid);
  tcase_add_test(t, test_env_each_alone);
  tcase_add_test(t, test_env_empty_ignored);
  tcase_add_test(t, test_env_malformed);
  tcase_add_test(t, test_new_rejects_invalid);
  tcase_add_test(t, test_errors_and_version);
  tcase_add_test(t, test_reserved_rejected);
  tcase_add_test(t, test_zero_initialised_rejected);
  tcase_add_test(t, test_zero_initialised_check_not_silently_noncritical);
  tcase_add_test(t, test_drain_min_follows_drain);
  tcase_add_test(t, test_drain_min_above_drain_rejected);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
