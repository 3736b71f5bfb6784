/*
 * A libhealth server for the benchmark.
 *
 * usage: server [--port P] [--checks N] [--detail full|status]
 *               [--interval-ms MS] [--hang-samples K] [--hang-timeout-ms MS]
 *
 * HEALTH_* environment variables are applied first (HEALTH_DRAIN_MS etc.);
 * the flags then override.  The server listens on 127.0.0.1 (port 0 picks a
 * free one), registers N trivial passing checks named c0000..., waits (at
 * most 10 s) until /ready passes, prints "PID <pid> PORT <port>" on stdout
 * and serves until SIGTERM (the library's shutdown sequence then exits the
 * process).  Log lines go to stderr.
 *
 * Deadline mode (--hang-samples K): one check "hang" with the given timeout
 * (default 100 ms), failure and success thresholds 1, whose odd runs hang
 * for timeout + 30 ms and whose even runs pass.  Each hang turns the check
 * to "fail" at its deadline; the server takes the mono_ms of that
 * check_status log line, subtracts the time the hanging run started plus
 * the timeout, prints "DEADLINE_LATE_US <us>" per sample, then
 * "DEADLINE_DONE" and exits after K samples.
 */
#define _GNU_SOURCE
#include <health.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_observe(r, 0.05, "ms");
  health_result_set(r, HEALTH_PASS, NULL);
}

/* ---- deadline mode ---- */
static unsigned hang_timeout_ms = 100;
static atomic_uint hang_runs;
static _Atomic uint64_t hang_started_us; /* start of the current hanging run */
static atomic_int samples, samples_wanted;

static void hang_check(health_result_t *r, void *arg) {
  (void)arg;
  unsigned n = atomic_fetch_add(&hang_runs, 1);
  if (n % 2 == 0) {
    health_result_set(r, HEALTH_PASS, NULL);
    return;
  }
  atomic_store(&hang_started_us, mono_us());
  struct timespec ts = {0, (long)(hang_timeout_ms + 30) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
  health_result_set(r, HEALTH_PASS, "returned after its deadline");
}

/* Log sink for deadline mode: writes every line to stderr and picks out the
 * check_status lines that turn "hang" to fail. */
static void deadline_log(health_log_level_t level, const char *line, void *arg) {
  (void)level;
  (void)arg;
  fprintf(stderr, "%s\n", line);
  if (!strstr(line, "\"event\":\"check_status\"") || !strstr(line, "\"check\":\"hang\"") ||
      !strstr(line, "\"to\":\"fail\""))
    return;
  const char *m = strstr(line, "\"mono_ms\":");
  uint64_t started = atomic_load(&hang_started_us);
  if (!m || !started) return;
  double mono_ms = strtod(m + 10, NULL);
  double late_us = mono_ms * 1000.0 - (double)(started + hang_timeout_ms * 1000u);
  printf("DEADLINE_LATE_US %.0f\n", late_us);
  fflush(stdout);
  atomic_fetch_add(&samples, 1);
}

static int usage(void) {
  fprintf(stderr, "usage: server [--port P] [--checks N] [--detail full|status] "
                  "[--interval-ms MS] [--hang-samples K] [--hang-timeout-ms MS]\n");
  return 2;
}

int main(int argc, char **argv) {
  unsigned port = 0, nchecks = 0, interval_ms = 0;
  int detail = -1, hang = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    i++;
    if (!strcmp(a, "--port")) port = (unsigned)atoi(v);
    else if (!strcmp(a, "--checks")) nchecks = (unsigned)atoi(v);
    else if (!strcmp(a, "--interval-ms")) interval_ms = (unsigned)atoi(v);
    else if (!strcmp(a, "--hang-samples")) hang = atoi(v);
    else if (!strcmp(a, "--hang-timeout-ms")) hang_timeout_ms = (unsigned)atoi(v);
    else if (!strcmp(a, "--detail"))
      detail = !strcmp(v, "status") ? HEALTH_DETAIL_STATUS : HEALTH_DETAIL_FULL;
    else return usage();
  }

  health_error_t err;
  health_options_t o;
  health_options_init(&o);
  if (health_options_from_env(&o, &err) != 0) {
    fprintf(stderr, "server: %s\n", err.text);
    return 1;
  }
  o.address = "127.0.0.1";
  o.port = port;
  if (detail >= 0) o.detail = (health_detail_t)detail;
  if (hang) {
    o.log_fn = deadline_log;
    /* Every transition: identical check_status lines after the first go
     * out at debug level (the library's repeat filter). */
    o.log_level = HEALTH_LOG_DEBUG;
    atomic_store(&samples_wanted, hang);
  }

  health_t *h;
  if (health_new(&h, &o, &err) != 0) {
    fprintf(stderr, "server: %s\n", err.text);
    return 1;
  }
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval_ms;
  for (unsigned i = 0; i < nchecks; i++) {
    char name[32];
    snprintf(name, sizeof name, "c%04u", i);
    if (health_check_add(h, name, pass_check, NULL, NULL, &co, &err) != 0) {
      fprintf(stderr, "server: %s\n", err.text);
      return 1;
    }
  }
  if (hang) {
    health_check_options_t ho;
    health_check_options_init(&ho);
    ho.timeout_ms = hang_timeout_ms;
    ho.interval_ms = hang_timeout_ms + 50;
    ho.failure_threshold = 1;
    ho.success_threshold = 1;
    if (health_check_add(h, "hang", hang_check, NULL, NULL, &ho, &err) != 0) {
      fprintf(stderr, "server: %s\n", err.text);
      return 1;
    }
  }
  if (health_start(h, &err) != 0) {
    fprintf(stderr, "server: %s\n", err.text);
    return 1;
  }
  if (!hang) {
    for (int i = 0; i < 10000 && health_status(h, HEALTH_READINESS) != HEALTH_PASS; i++)
      usleep(1000);
    if (health_status(h, HEALTH_READINESS) != HEALTH_PASS)
      fprintf(stderr, "server: warning: /ready does not pass after 10 s\n");
  }
  printf("PID %ld PORT %u\n", (long)getpid(), health_port(h));
  fflush(stdout);

  if (hang) {
    while (atomic_load(&samples) < atomic_load(&samples_wanted)) usleep(10000);
    printf("DEADLINE_DONE\n");
    fflush(stdout);
    _exit(0); /* a hanging run may still be asleep: no orderly teardown */
  }
  int code = health_wait(h); /* returns only if HEALTH_EXIT=0 */
  health_free(h);
  return code;
}
