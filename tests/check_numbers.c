/* Numbers that leave the library: health__fmt_double() gives the shortest
 * decimal that reads back as the same double (checked against an
 * independent search over many generated values), and nothing depends on
 * the process locale: under a comma-decimal locale that this suite builds
 * itself (localedef into a temporary directory, LOCPATH, setlocale(LC_ALL,
 * "") as applications do), the formatter, the /ready body and every log
 * line stay the same, valid JSON. */
#define _GNU_SOURCE
#include <check.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "health_int.h"
#include "testhelp.h"

/* ------------------------------------------------------------------ */
/* A strict JSON validator (RFC 8259 grammar; strings must be UTF-8).  */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *p, *end;
  int depth;
} jv_t;

static void jws(jv_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}
static int jdigits(jv_t *j) {
  const char *s = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  return j->p > s;
}
static int jnum(jv_t *j) {
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p < j->end && *j->p == '0') j->p++;
  else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !jdigits(j)) return 0;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (!jdigits(j)) return 0;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (!jdigits(j)) return 0;
  }
  return 1;
}
static int jstr(jv_t *j) {
  if (j->p >= j->end || *j->p != '"') return 0;
  for (j->p++; j->p < j->end; j->p++) {
    unsigned char c = (unsigned char)*j->p;
    if (c == '"') {
      j->p++;
      return 1;
    }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (++j->p >= j->end) return 0;
      if (*j->p == 'u') {
        for (int i = 0; i < 4; i++)
          if (++j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p)) return 0;
      } else if (!strchr("\"\\/bfnrt", *j->p)) {
        return 0;
      }
    }
  }
  return 0;
}
static int jval(jv_t *j) {
  jws(j);
  if (j->p >= j->end || ++j->depth > 32) return 0;
  int ok = 0;
  char c = *j->p;
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      ok = 1;
    } else
      for (;;) {
        if (c == '{') {
          jws(j);
          if (!jstr(j)) break;
          jws(j);
          if (j->p >= j->end || *j->p++ != ':') break;
        }
        if (!jval(j)) break;
        jws(j);
        if (j->p < j->end && *j->p == ',') {
          j->p++;
          continue;
        }
        if (j->p < j->end && *j->p == close) {
          j->p++;
          ok = 1;
        }
        break;
      }
  } else if (c == '"') {
    ok = jstr(j);
  } else if (c == 't' || c == 'f' || c == 'n') {
    const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
    size_t n = strlen(w);
    ok = (size_t)(j->end - j->p) >= n && memcmp(j->p, w, n) == 0;
    if (ok) j->p += n;
  } else {
    ok = jnum(j);
  }
  j->depth--;
  return ok;
}
static int json_valid(const char *s, size_t n) {
  jv_t j = {s, s + n, 0};
  if (!jval(&j)) return 0;
  jws(&j);
  return j.p == j.end;
}

START_TEST(test_validator_is_strict) {
  static const char *good[] = {"{}", "[1,-2.5e+3,0.0001,1e-7,true,null,\"a\\u00e9\"]",
                               "{\"a\":{\"b\":[]}}"};
  static const char *bad[] = {
      "{\"v\":1234,568}", "[0,]",  "{\"a\":1,}", "01",      "1.", ".5", "1e", "[NaN]",
      "[Infinity]",       "[1 2]", "{\"a\" 1}",  "\"\\x\"", "[-]"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    ck_assert_msg(json_valid(good[i], strlen(good[i])), "rejected %s", good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_msg(!json_valid(bad[i], strlen(bad[i])), "accepted %s", bad[i]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The formatter                                                       */
/* ------------------------------------------------------------------ */

static const struct {
  double v;
  const char *want;
} table[] = {
    {0.276, "0.276"},
    {1234.5678, "1234.5678"},
    {1234.568, "1234.568"},
    {1e300, "1e+300"},
    {-1e300, "-1e+300"},
    {0.0001, "0.0001"},
    {0.000001, "0.000001"},
    {1e-7, "1e-7"},
    {1.5e-10, "1.5e-10"},
    {1e20, "100000000000000000000"},
    {1e21, "1e+21"},
    {123456789012345678901.0, "123456789012345680000"},
    {0, "0"},
    {-0.0, "0"},
    {-2.5, "-2.5"},
    {3, "3"},
    {100, "100"},
    {1e6, "1000000"},
    {12.25, "12.25"},
    {0.1 + 0.2, "0.30000000000000004"},
    {1.0 / 3, "0.3333333333333333"},
    {5e-324, "5e-324"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {9007199254740993.0, "9007199254740992"},
    {4294967296.5, "4294967296.5"},
};

static void check_table(const char *where) {
  for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
    char buf[HEALTH__FMT_DOUBLE_LEN];
    size_t n = health__fmt_double(table[i].v, buf, sizeof buf);
    ck_assert_msg(strcmp(buf, table[i].want) == 0, "%s: %.17g gave \"%s\", want \"%s\"", where,
                  table[i].v, buf, table[i].want);
    ck_assert_uint_eq(n, strlen(buf));
  }
  char buf[HEALTH__FMT_DOUBLE_LEN];
  health__fmt_double(NAN, buf, sizeof buf);
  ck_assert_str_eq(buf, "NaN");
  health__fmt_double(INFINITY, buf, sizeof buf);
  ck_assert_str_eq(buf, "+Inf");
  health__fmt_double(-INFINITY, buf, sizeof buf);
  ck_assert_str_eq(buf, "-Inf");
}

START_TEST(test_fmt_table) { check_table("C locale"); }
END_TEST

START_TEST(test_fmt_truncates_safely) {
  char buf[8];
  memset(buf, 'Z', sizeof buf);
  size_t n = health__fmt_double(1234.5678, buf, 5);
  ck_assert_uint_eq(n, 9); /* the full length, as snprintf */
  ck_assert_str_eq(buf, "1234");
  ck_assert_int_eq(buf[5], 'Z');
  ck_assert_uint_eq(health__fmt_double(1.5, NULL, 0), 3);
  health__buf_t b;
  health__buf_init(&b);
  health__buf_adds(&b, "[");
  health__buf_double(&b, 0.0001);
  health__buf_adds(&b, ",");
  health__buf_double(&b, -1e300);
  health__buf_adds(&b, "]");
  ck_assert_str_eq(b.data, "[0.0001,-1e+300]");
  health__buf_free(&b);
}
END_TEST

/* Reference: the fewest significant digits p for which "%.{p-1}e" reads
 * back as v, by a plain linear search (the library searches by halves). */
static int ref_digits(double v) {
  for (int p = 1; p <= 17; p++) {
    char t[64];
    snprintf(t, sizeof t, "%.*e", p - 1, v);
    if (strtod(t, NULL) == v) return p;
  }
  return 17;
}

static int sig_digits_of(const char *s) {
  int n = 0, leading = 1, zeros = 0;
  for (; *s && *s != 'e'; s++) {
    if (*s < '0' || *s > '9') continue;
    if (leading && *s == '0') continue;
    leading = 0;
    if (*s == '0') zeros++;
    else {
      n += zeros + 1;
      zeros = 0;
    }
  }
  return n ? n : 1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull; /* fixed seed: reproducible */
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

START_TEST(test_fmt_roundtrip_generated) {
  /* Raw bit patterns (every exponent), plus values shaped like what a
   * check reports: milliseconds with microsecond resolution, counters. */
  unsigned count = th_under_valgrind() ? 3000 : 60000 / th_time_scale();
  if (count < 2000) count = 2000;
  for (unsigned i = 0; i < count; i++) {
    double v;
    uint64_t bits = rng();
    switch (i % 3) {
      case 0: memcpy(&v, &bits, sizeof v); break;
      case 1: v = (double)(bits % 100000000u) / 1000.0; break;
      default: v = (double)(bits % 1000000u) * pow(10, (int)(bits >> 40) % 40 - 20); break;
    }
    if (!isfinite(v)) continue;
    char buf[HEALTH__FMT_DOUBLE_LEN];
    size_t n = health__fmt_double(v, buf, sizeof buf);
    ck_assert_uint_lt(n, sizeof buf);
    ck_assert_msg(json_valid(buf, n), "%.17g -> \"%s\" is not a JSON number", v, buf);
    ck_assert_msg(strtod(buf, NULL) == v, "%.17g -> \"%s\" does not read back", v, buf);
    ck_assert_msg(sig_digits_of(buf) == ref_digits(v), "%.17g -> \"%s\": %d digits, shortest is %d",
                  v, buf, sig_digits_of(buf), ref_digits(v));
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Under a comma-decimal locale                                        */
/* ------------------------------------------------------------------ */

static char *g_locdir;

/* Once per test case, in the runner: compile de_DE.UTF-8 into a directory
 * of our own (no system locale is touched or needed). */
static void locale_setup(void) {
  g_locdir = th_tmpdir("locale");
  ck_assert_ptr_nonnull(g_locdir);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >'%s/localedef.out' 2>&1",
           g_locdir, g_locdir);
  int rc = system(cmd);
  if (!(WIFEXITED(rc) && WEXITSTATUS(rc) == 0))
    fprintf(stderr, "check_numbers: localedef failed (%d); install the Debian package 'locales'\n",
            rc);
}

static void locale_teardown(void) {
  if (g_locdir) th_remove_dir("check_numbers", g_locdir);
  free(g_locdir);
  g_locdir = NULL;
}

/* In the test's own (forked) process: switch to the generated locale as an
 * application would, and prove the premise: the C library now writes
 * decimal commas. */
static void enter_comma_locale(void) {
  ck_assert_ptr_nonnull(g_locdir);
  setenv("LOCPATH", g_locdir, 1);
  setenv("LC_ALL", "de_DE.UTF-8", 1);
  ck_assert_msg(setlocale(LC_ALL, "") != NULL,
                "setlocale(LC_ALL, \"\") failed: the locale was not generated");
  ck_assert_str_eq(localeconv()->decimal_point, ",");
  char t[32];
  snprintf(t, sizeof t, "%.3f", 1234.5678);
  ck_assert_str_eq(t, "1234,568"); /* what the library used to put in JSON */
}

START_TEST(test_locale_formatter) {
  enter_comma_locale();
  check_table("de_DE.UTF-8");
  for (unsigned i = 0; i < 2000; i++) {
    uint64_t bits = rng();
    double v = (double)(bits % 100000000u) / 1000.0;
    char buf[HEALTH__FMT_DOUBLE_LEN];
    health__fmt_double(v, buf, sizeof buf);
    ck_assert_msg(strchr(buf, ',') == NULL, "%s", buf);
    ck_assert_int_eq(sig_digits_of(buf), ref_digits(v)); /* ref reads "," back here */
  }
}
END_TEST

typedef struct {
  double value;
  const char *unit;
} obs_t;

static void observe_check(health_result_t *r, void *arg) {
  const obs_t *o = arg;
  health_result_observe(r, o->value, o->unit);
  health_result_set(r, HEALTH_PASS, NULL);
}

static int ready_is(void *arg) {
  health_t *h = arg;
  return health_status(h, HEALTH_READINESS) == HEALTH_PASS;
}

START_TEST(test_locale_ready_body_and_logs) {
  enter_comma_locale();
  th_log_clear();
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  health_t *h = NULL;
  health_error_t err = {0};
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  static const obs_t obs[] = {{1234.5678, "ms"}, {1e300, "bytes"}, {0.0001, "s"}, {0.276, "ms"}};
  static const char *names[] = {"latency", "huge", "tiny", "rtt"};
  static const char *want[] = {"\"observedValue\":1234.5678", "\"observedValue\":1e+300",
                               "\"observedValue\":0.0001", "\"observedValue\":0.276"};
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 100;
  for (int i = 0; i < 4; i++)
    ck_assert_msg(
        health_check_add(h, names[i], observe_check, (void *)&obs[i], NULL, &co, &err) == 0, "%s",
        err.text);
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
  ck_assert(th_wait_until(ready_is, h, TS(5000)));

  th_response_t r;
  ck_assert_int_eq(th_http(health_port(h), "GET", "/ready", &r), 0);
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(json_valid(r.body, r.body_len), "invalid JSON under de_DE.UTF-8: %s", r.body);
  for (int i = 0; i < 4; i++)
    ck_assert_msg(strstr(r.body, want[i]) != NULL, "no %s in %s", want[i], r.body);
  th_response_free(&r);

  health_shutdown(h);
  ck_assert_int_eq(health_wait(h), HEALTH_EXIT_OK);
  health_free(h);

  /* Every log line, the shutdown plan with its numbers included. */
  const char *text = th_log_text();
  ck_assert_ptr_nonnull(text);
  size_t lines = 0;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    ck_assert_msg(json_valid(p, n), "invalid log line under de_DE.UTF-8: %.*s", (int)n, p);
    lines++;
    p += n + (nl ? 1 : 0);
  }
  ck_assert_uint_ge(lines, 4);
  ck_assert(th_log_contains("\"event\":\"shutdown_complete\""));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("numbers");
  TCase *t = tcase_create("format");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_validator_is_strict);
  tcase_add_test(t, test_fmt_table);
  tcase_add_test(t, test_fmt_truncates_safely);
  tcase_add_test(t, test_fmt_roundtrip_generated);
  suite_add_tcase(s, t);

  t = tcase_create("locale");
  tcase_set_timeout(t, 60);
  tcase_add_unchecked_fixture(t, locale_setup, locale_teardown);
  tcase_add_test(t, test_locale_formatter);
  tcase_add_test(t, test_locale_ready_body_and_logs);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
