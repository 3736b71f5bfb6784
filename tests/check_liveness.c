/* Liveness that means something: heartbeats (stale within max age + one
 * sampling period, with name and age in the body; recovery on the next
 * beat; systemd WATCHDOG=1 stops meanwhile), manual readiness (visible on
 * /ready at once), startup gates and their deadline, the HAProxy agent's
 * replies, and the rules for bad input.  Timing bounds are asserted both
 * ways: never early, and late by at most the stated margin. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health_int.h"
#include "testhelp.h"

static health_t *new_handle(void) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.drain_ms = 5000;
  o.drain_min_ms = 5000;
  o.shutdown_deadline_ms = 10000;
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  health_t *h;
  health_error_t err;
  ck_assert_msg(health_new(&h, &o, &err) == 0, "%s", err.text);
  return h;
}

static void start(health_t *h) {
  health_error_t err;
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* GET path: the status, and the body copied into body (may be NULL). */
static int get(health_t *h, const char *path, char *body, size_t len) {
  th_response_t r;
  if (th_http(health_port(h), "GET", path, &r) != 0) return -1;
  if (body) snprintf(body, len, "%s", r.body ? r.body : "");
  int st = r.status;
  th_response_free(&r);
  return st;
}

/* ---- a beating thread ---- */

typedef struct beater {
  health_heartbeat_t *hb;
  atomic_int beat; /* 1: beat every millisecond */
  atomic_int quit;
  _Atomic uint64_t before_ms; /* th_now_ms() just before the last beat */
  _Atomic uint64_t after_ms;  /* just after it */
  pthread_t t;
} beater_t;

static void *beater_main(void *arg) {
  beater_t *b = arg;
  while (!atomic_load(&b->quit)) {
    if (atomic_load(&b->beat)) {
      atomic_store(&b->before_ms, th_now_ms());
      health_heartbeat_beat(b->hb);
      atomic_store(&b->after_ms, th_now_ms());
    }
    sleep_ms(1);
  }
  return NULL;
}

static void beater_start(beater_t *b, health_heartbeat_t *hb) {
  memset(b, 0, sizeof *b);
  b->hb = hb;
  atomic_store(&b->beat, 1);
  ck_assert_int_eq(pthread_create(&b->t, NULL, beater_main, b), 0);
}

static void beater_stop(beater_t *b) {
  atomic_store(&b->quit, 1);
  pthread_join(b->t, NULL);
}

/* Stop beating; returns once no beat can follow, with the last one's times. */
static void beater_pause(beater_t *b) {
  atomic_store(&b->beat, 0);
  sleep_ms(5); /* the loop iteration in progress finishes its beat */
}

/* Poll GET path every millisecond until it answers `want`; returns the
 * time of that answer (th_now_ms after it), or 0 after timeout_ms. */
static uint64_t first_answer(health_t *h, const char *path, int want, unsigned timeout_ms,
                             char *body, size_t len) {
  uint64_t until = th_now_ms() + timeout_ms;
  while (th_now_ms() < until) {
    int st = get(h, path, body, len);
    uint64_t t = th_now_ms();
    if (st == want) return t;
    sleep_ms(1);
  }
  return 0;
}

START_TEST(test_heartbeat_stale_and_recover) {
  health_t *h = new_handle();
  health_heartbeat_t *hb;
  health_error_t err;
  const unsigned max = TS(300);
  ck_assert_msg(health_heartbeat_add(h, "work-loop", max, &hb, &err) == 0, "%s", err.text);
  start(h);
  beater_t b;
  beater_start(&b, hb);
  char body[4096];
  ck_assert_int_eq(get(h, "/health", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"work-loop:heartbeat\":[{\"componentType\":\"heartbeat\""), "%s",
                body);
  ck_assert_msg(strstr(body, "\"status\":\"pass\""), "%s", body);
  /* Fresh for longer than the max age while beating. */
  uint64_t until = th_now_ms() + max + 200;
  while (th_now_ms() < until) {
    ck_assert_int_eq(get(h, "/health", NULL, 0), 200);
    ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_PASS);
    sleep_ms(20);
  }

  /* The loop stalls: 503 after max age, within max age + 100 ms. */
  beater_pause(&b);
  uint64_t before = atomic_load(&b.before_ms), after = atomic_load(&b.after_ms);
  uint64_t t = first_answer(h, "/health", 503, TS(3000), body, sizeof body);
  ck_assert_msg(t != 0, "/health never failed");
  ck_assert_msg(t >= before + max, "failed %llu ms after the last beat, before its max age %u",
                (unsigned long long)(t - before), max);
  ck_assert_msg(t <= after + max + TS(100), "failed %llu ms after the last beat (max age %u + 100)",
                (unsigned long long)(t - after), max);
  ck_assert_msg(strstr(body, "\"status\":\"fail\""), "%s", body);
  ck_assert_msg(strstr(body, "heartbeat 'work-loop': no beat for "), "%s", body);
  char want[32];
  snprintf(want, sizeof want, "(max %u ms)", max);
  ck_assert_msg(strstr(body, want), "%s", body);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_FAIL);
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 503);

  /* The age keeps growing in the body while stale (refreshed each second). */
  unsigned long age1 = 0, age2 = 0;
  const char *p = strstr(body, "no beat for ");
  ck_assert_ptr_nonnull(p);
  age1 = strtoul(p + 12, NULL, 10);
  ck_assert_uint_ge(age1, max);
  sleep_ms(1100);
  ck_assert_int_eq(get(h, "/health", body, sizeof body), 503);
  p = strstr(body, "no beat for ");
  ck_assert_ptr_nonnull(p);
  age2 = strtoul(p + 12, NULL, 10);
  ck_assert_msg(age2 >= age1 + 1000, "age %lu then %lu", age1, age2);

  /* The next beat recovers it, within one sampling period (50 ms). */
  uint64_t t0 = th_now_ms();
  atomic_store(&b.beat, 1);
  t = first_answer(h, "/health", 200, TS(2000), body, sizeof body);
  ck_assert_msg(t != 0 && t - t0 <= TS(100), "recovered after %llu ms",
                (unsigned long long)(t - t0));
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 200);
  ck_assert(th_log_contains("\"event\":\"heartbeat_stale\""));
  ck_assert(th_log_contains("\"heartbeat\":\"work-loop\""));
  ck_assert(th_log_contains("\"event\":\"heartbeat_recovered\""));
  beater_stop(&b);
  health_free(h);
}
END_TEST

/* ---- systemd watchdog ---- */

static int notify_socket(char *path, size_t len, char **dir) {
  *dir = th_tmpdir("notify");
  ck_assert_ptr_nonnull(*dir);
  snprintf(path, len, "%s/notify.sock", *dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
  strcpy(sa.sun_path, path);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

static int recv_msg(int fd, char *buf, size_t len, unsigned timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, (int)timeout_ms) <= 0) return 0;
  ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);
  if (n <= 0) return 0;
  buf[n] = 0;
  return 1;
}

/* WATCHDOG=1 datagrams received until `until`; the time of the first in *first. */
static int count_pings(int fd, uint64_t until, uint64_t *first, const char *also, int *also_seen) {
  int n = 0;
  char msg[512];
  if (first) *first = 0;
  while (th_now_ms() < until) {
    uint64_t left = until - th_now_ms();
    if (!recv_msg(fd, msg, sizeof msg, (unsigned)(left > 0 ? left : 1))) continue;
    if (strstr(msg, "WATCHDOG=1")) {
      if (first && !*first) *first = th_now_ms();
      n++;
    }
    if (also && strstr(msg, also)) ++*also_seen;
  }
  return n;
}

START_TEST(test_watchdog_stops_during_stall) {
  char path[256], *dir;
  int fd = notify_socket(path, sizeof path, &dir);
  setenv("NOTIFY_SOCKET", path, 1);
  char usec[24];
  snprintf(usec, sizeof usec, "%u", TS(100) * 1000u); /* a ping every 50 ms (scaled) */
  setenv("WATCHDOG_USEC", usec, 1);
  unsetenv("WATCHDOG_PID");
  health_t *h = new_handle();
  health_heartbeat_t *hb;
  health_error_t err;
  const unsigned max = TS(200), ping = TS(50);
  ck_assert_msg(health_heartbeat_add(h, "loop", max, &hb, &err) == 0, "%s", err.text);
  start(h);
  beater_t b;
  beater_start(&b, hb);
  int pings = count_pings(fd, th_now_ms() + 6 * ping, NULL, NULL, NULL);
  ck_assert_msg(pings >= 3, "%d WATCHDOG=1 in %u ms while beating", pings, 6 * ping);

  /* Stall: the pings stop once the heartbeat is stale (at most max age +
   * a 50 ms sampling period after the last beat, plus one ping period and
   * some slack) and none comes until the loop beats again. */
  beater_pause(&b);
  uint64_t after = atomic_load(&b.after_ms);
  uint64_t quiet_from = after + max + 50 + ping + TS(50);
  count_pings(fd, quiet_from, NULL, NULL, NULL);
  uint64_t resume_at = quiet_from + 6 * ping;
  pings = count_pings(fd, resume_at, NULL, NULL, NULL);
  ck_assert_msg(pings == 0, "%d WATCHDOG=1 during the stall", pings);
  ck_assert_int_eq(health_status(h, HEALTH_LIVENESS), HEALTH_FAIL);

  /* Beating again: the pings resume within a sampling period + a ping period. */
  uint64_t t0 = th_now_ms(), first;
  atomic_store(&b.beat, 1);
  pings = count_pings(fd, t0 + 50 + 5 * ping, &first, NULL, NULL);
  ck_assert_msg(pings >= 2, "%d WATCHDOG=1 after the loop resumed", pings);
  ck_assert_msg(first && first - t0 <= 50 + ping + TS(50),
                "first ping %llu ms after the loop resumed", (unsigned long long)(first - t0));

  /* Manual readiness is reported as STATUS=. */
  int seen = 0;
  ck_assert_int_eq(health_ready_hold(h, "maintenance switch", &err), 0);
  count_pings(fd, th_now_ms() + TS(100), NULL, "STATUS=not ready: maintenance switch", &seen);
  ck_assert_int_eq(seen, 1);
  beater_stop(&b);
  health_free(h);
  close(fd);
  th_remove_dir("check_liveness", dir);
  free(dir);
}
END_TEST

/* ---- manual readiness ---- */

START_TEST(test_manual_toggle) {
  health_t *h = new_handle();
  start(h);
  char body[2048];
  ck_assert_int_eq(get(h, "/ready", body, sizeof body), 200);
  health_error_t err;
  /* The first request after each call already sees the change (no
   * polling); the time from the call to that answer, round trip included,
   * is under 10 ms (median of 40: one scheduling hiccup on a shared
   * machine is not a property of the library). */
  uint64_t took[40];
  for (int i = 0; i < 20; i++) {
    uint64_t t0 = th_now_ms();
    ck_assert_int_eq(health_ready_hold(h, "warming cache", &err), 0);
    ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
    took[2 * i] = th_now_ms() - t0;
    ck_assert_msg(strstr(body, "\"output\":\"not ready: warming cache\""), "%s", body);
    ck_assert_int_eq(get(h, "/health", NULL, 0), 200);
    ck_assert_int_eq(health_status(h, HEALTH_READINESS), HEALTH_FAIL);
    t0 = th_now_ms();
    ck_assert_int_eq(health_ready_release(h, NULL), 0);
    ck_assert_int_eq(get(h, "/ready", body, sizeof body), 200);
    took[2 * i + 1] = th_now_ms() - t0;
    ck_assert_ptr_null(strstr(body, "not ready"));
  }
  for (int i = 1; i < 40; i++) /* insertion sort */
    for (int j = i; j > 0 && took[j - 1] > took[j]; j--) {
      uint64_t x = took[j];
      took[j] = took[j - 1];
      took[j - 1] = x;
    }
  ck_assert_msg(took[20] <= TS(10), "toggle to answer: median %llu ms, max %llu ms",
                (unsigned long long)took[20], (unsigned long long)took[39]);
  /* Bad reasons are refused and change nothing. */
  ck_assert_int_eq(health_ready_hold(h, "two\nlines", &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "printable"), "%s", err.text);
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  ck_assert_int_eq(health_ready_hold(h, big, &err), HEALTH_EINVAL);
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 200);
  ck_assert_int_eq(health_ready_hold(NULL, "x", &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_ready_release(NULL, NULL), HEALTH_EINVAL);
  /* No reason: "not ready"; a new reason replaces the old one. */
  ck_assert_int_eq(health_ready_hold(h, NULL, &err), 0);
  ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
  ck_assert_msg(strstr(body, "\"output\":\"not ready: not ready\""), "%s", body);
  ck_assert_int_eq(health_ready_hold(h, "queue \"full\"", &err), 0);
  ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
  ck_assert_msg(strstr(body, "\"output\":\"not ready: queue \\\"full\\\"\""), "%s", body);
  /* Draining says so first. */
  health_shutdown(h);
  uint64_t until = th_now_ms() + TS(2000);
  while (!strstr(body, "\"output\":\"draining\"") && th_now_ms() < until) {
    ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
    sleep_ms(1);
  }
  ck_assert_msg(strstr(body, "\"output\":\"draining\""), "%s", body);
  ck_assert_ptr_null(strstr(body, "not ready:"));
  health_free(h);
}
END_TEST

/* ---- startup gates ---- */

START_TEST(test_gate_never_opened) {
  health_t *h = new_handle();
  health_error_t err;
  unsigned deadline = TS(600);
  ck_assert_int_eq(health_gate_add(h, "migrations", &err), 0);
  ck_assert_int_eq(health_gate_add(h, "cache", &err), 0);
  ck_assert_int_eq(health_startup_set_deadline(h, deadline, &err), 0);
  uint64_t t_start = th_now_ms();
  start(h);
  char body[4096];
  ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
  ck_assert_msg(
      strstr(body,
             "\"migrations:startup\":[{\"componentType\":\"startup-gate\",\"status\":\"fail\""),
      "%s", body);
  ck_assert_msg(strstr(body, "startup gate 'cache' not open yet"), "%s", body);
  ck_assert_int_eq(get(h, "/health", body, sizeof body), 200);
  ck_assert_ptr_null(strstr(body, "startup"));
  ck_assert_int_eq(health_gate_open(h, "cache", NULL), 0);
  ck_assert_int_eq(health_gate_open(h, "cache", NULL), 0); /* again: nothing */
  ck_assert_int_eq(get(h, "/ready", body, sizeof body), 503);
  ck_assert_msg(
      strstr(body,
             "\"cache:startup\":[{\"componentType\":\"startup-gate\",\"status\":\"pass\",\"time\""),
      "%s", body);

  /* The deadline passes with "migrations" closed: liveness fails, never
   * before the deadline and at most 100 ms after it. */
  uint64_t t = first_answer(h, "/health", 503, deadline + TS(2000), body, sizeof body);
  ck_assert_msg(t != 0, "liveness never failed");
  ck_assert_msg(t >= t_start + deadline, "failed %llu ms after start, before the deadline",
                (unsigned long long)(t - t_start));
  ck_assert_msg(t - t_start <= deadline + TS(100), "failed %llu ms after start",
                (unsigned long long)(t - t_start));
  char want[128];
  snprintf(want, sizeof want,
           "startup gate 'migrations' still closed after the %u ms startup deadline", deadline);
  ck_assert_msg(strstr(body, want), "%s", body);
  ck_assert_ptr_null(strstr(body, "cache:startup")); /* open gates are not liveness's business */
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 503);

  /* Opening it late fixes both at once. */
  ck_assert_int_eq(health_gate_open(h, "migrations", NULL), 0);
  ck_assert_int_eq(get(h, "/health", NULL, 0), 200);
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 200);
  ck_assert(th_log_contains("\"event\":\"gate_open\""));
  health_free(h);
}
END_TEST

START_TEST(test_gate_without_deadline_and_pending_check) {
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_int_eq(health_gate_add(h, "warm", &err), 0);
  ck_assert_int_eq(health_gate_open(h, "warm", NULL), 0); /* before start: fine */
  ck_assert_int_eq(health_gate_open(h, "cold", NULL), HEALTH_ENOENT);
  ck_assert_int_eq(health_gate_open(h, NULL, NULL), HEALTH_EINVAL);
  start(h);
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 200);
  ck_assert_int_eq(health_gate_add(h, "late", &err), HEALTH_ESTATE);
  ck_assert_int_eq(health_startup_set_deadline(h, 100, &err), HEALTH_ESTATE);
  health_free(h);
}
END_TEST

/* ---- draining ---- */

START_TEST(test_draining_keeps_liveness) {
  health_t *h = new_handle();
  health_heartbeat_t *hb;
  health_error_t err;
  ck_assert_int_eq(health_heartbeat_add(h, "loop", TS(200), &hb, &err), 0);
  start(h);
  health_shutdown(h); /* the application stops its loop when the drain starts */
  char body[2048];
  uint64_t until = th_now_ms() + TS(3000);
  int seen = 0;
  while (!seen && th_now_ms() < until) {
    ck_assert_int_eq(get(h, "/health", body, sizeof body), 200);
    seen = strstr(body, "not counted while draining") != NULL;
    sleep_ms(10);
  }
  ck_assert_msg(seen, "%s", body);
  ck_assert_msg(strstr(body, "\"status\":\"warn\""), "%s", body);
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 503);
  health_free(h);
}
END_TEST

/* ---- heartbeats added late, beaten from a signal handler, removed ---- */

static health_heartbeat_t *g_sig_hb;
static void on_alarm(int sig) {
  (void)sig;
  health_heartbeat_beat(g_sig_hb);
}

START_TEST(test_heartbeat_from_signal_handler_and_removal) {
  health_t *h = new_handle();
  start(h);
  health_error_t err;
  const unsigned max = TS(150);
  ck_assert_int_eq(health_heartbeat_add(h, "timer", max, &g_sig_hb, &err), 0);
  char body[2048];
  ck_assert_int_eq(get(h, "/health", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"timer:heartbeat\""), "%s", body);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 10000}, {0, 10000}};
  setitimer(ITIMER_REAL, &it, NULL);
  uint64_t until = th_now_ms() + 2 * max;
  while (th_now_ms() < until) {
    ck_assert_int_eq(get(h, "/health", NULL, 0), 200);
    sleep_ms(10);
  }
  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  ck_assert(first_answer(h, "/health", 503, TS(2000), NULL, 0));
  /* Removing the stale heartbeat removes it from both endpoints. */
  ck_assert_int_eq(health_heartbeat_remove(g_sig_hb, NULL), 0);
  ck_assert_int_eq(get(h, "/health", body, sizeof body), 200);
  ck_assert_ptr_null(strstr(body, "timer:heartbeat"));
  ck_assert_int_eq(get(h, "/ready", NULL, 0), 200);
  ck_assert_int_eq(health_heartbeat_remove(NULL, NULL), HEALTH_EINVAL);
  health_heartbeat_beat(NULL); /* ignored */
  health_free(h);
}
END_TEST

/* ---- HAProxy agent ---- */

static void agent_line(health_t *h, char *out, size_t len) {
  int fd = th_connect_from(NULL, health_agent_port(h), 2000);
  ck_assert_int_ge(fd, 0);
  size_t n = 0;
  uint64_t until = th_now_ms() + 2000;
  while (n + 1 < len && th_now_ms() < until) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t r = recv(fd, out + n, len - 1 - n, 0);
    if (r <= 0) break; /* closed after the line */
    n += (size_t)r;
  }
  out[n] = 0;
  close(fd);
}

START_TEST(test_agent_replies) {
  health_t *h = new_handle();
  health_error_t err;
  health_agent_options_t ao;
  health_agent_options_init(&ao);
  ao.address = "127.0.0.1";
  ck_assert_msg(health_agent_set(h, &ao, &err) == 0, "%s", err.text);
  ck_assert_int_eq(health_gate_add(h, "warm", &err), 0);
  health_heartbeat_t *hb;
  ck_assert_int_eq(health_heartbeat_add(h, "loop", TS(200), &hb, &err), 0);
  ck_assert_uint_eq(health_agent_port(h), 0);
  start(h);
  ck_assert_uint_gt(health_agent_port(h), 0);
  ck_assert(th_log_contains("\"event\":\"agent_listening\""));
  beater_t b;
  beater_start(&b, hb);
  char line[256];
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "down #starting: waiting for gate warm\n");
  ck_assert_int_eq(health_gate_open(h, "warm", NULL), 0);
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "up ready\n");
  ck_assert_int_eq(health_agent_set_weight(h, 50, NULL), 0);
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "up ready 50%\n");
  ck_assert_int_eq(health_agent_set_weight(h, 257, NULL), HEALTH_EINVAL);
  ck_assert_int_eq(health_ready_hold(h, "caf\xc3\xa9 closed", &err), 0);
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "down #not ready: caf?? closed\n");
  ck_assert_int_eq(health_ready_release(h, NULL), 0);
  beater_pause(&b);
  ck_assert(first_answer(h, "/health", 503, TS(2000), NULL, 0));
  agent_line(h, line, sizeof line);
  ck_assert_msg(strncmp(line, "down #not alive: heartbeat loop: no beat for ", 45) == 0, "%s",
                line);
  atomic_store(&b.beat, 1);
  ck_assert(first_answer(h, "/health", 200, TS(2000), NULL, 0));
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "up ready 50%\n");
  health_shutdown(h);
  ck_assert(first_answer(h, "/ready", 503, TS(1000), NULL, 0));
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "drain #draining\n");
  beater_stop(&b);
  health_free(h);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_bad_input) {
  health_t *h = new_handle();
  health_error_t err;
  health_heartbeat_t *hb = NULL;
  ck_assert_int_eq(health_heartbeat_add(h, "a b", 1000, &hb, &err), HEALTH_EINVAL);
  ck_assert_ptr_null(hb);
  ck_assert_int_eq(health_heartbeat_add(h, "", 1000, &hb, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_add(h, "x", 99, &hb, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "max age must be 100 ms"), "%s", err.text);
  ck_assert_int_eq(health_heartbeat_add(h, "x", 86400001u, &hb, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_add(h, "x", 1000, NULL, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_add(NULL, "x", 1000, &hb, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_add(h, "x", 86400000u, &hb, &err), 0); /* never stale here */
  health_heartbeat_t *dup;
  ck_assert_int_eq(health_heartbeat_add(h, "x", 1000, &dup, &err), HEALTH_EEXIST);
  ck_assert_int_eq(health_gate_add(h, "bad/name", &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_gate_add(h, "g", &err), 0);
  ck_assert_int_eq(health_gate_add(h, "g", &err), HEALTH_EEXIST);
  ck_assert_int_eq(health_startup_set_deadline(h, 86400001u, &err), HEALTH_EINVAL);

  health_agent_options_t ao;
  health_agent_options_init(&ao);
  ao.weight = 257;
  ck_assert_int_eq(health_agent_set(h, &ao, &err), HEALTH_EINVAL);
  health_agent_options_init(&ao);
  ao.address = "localhost";
  ck_assert_int_eq(health_agent_set(h, &ao, &err), HEALTH_EINVAL);
  health_agent_options_init(&ao);
  ao.reserved[0] = &ao;
  ck_assert_int_eq(health_agent_set(h, &ao, &err), HEALTH_EINVAL);
  health_agent_options_init(&ao);
  ao.port = 70000;
  ck_assert_int_eq(health_agent_set(h, &ao, &err), HEALTH_EINVAL);

  /* From the environment: a bad value names its variable, changes nothing. */
  setenv("HEALTH_STARTUP_DEADLINE_MS", "500", 1);
  setenv("HEALTH_AGENT_PORT", "8o81", 1);
  ck_assert_int_eq(health_controls_from_env(h, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "HEALTH_AGENT_PORT='8o81'"), "%s", err.text);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 0);
  ck_assert_int_eq(h->ctl->agent_enabled, 0);
  unsetenv("HEALTH_AGENT_PORT");
  setenv("HEALTH_AGENT_WEIGHT", "50", 1);
  ck_assert_int_eq(health_controls_from_env(h, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "need HEALTH_AGENT_PORT"), "%s", err.text);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 0);
  setenv("HEALTH_AGENT_WEIGHT", "300", 1);
  setenv("HEALTH_AGENT_PORT", "0", 1);
  ck_assert_int_eq(health_controls_from_env(h, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "HEALTH_AGENT_WEIGHT='300'"), "%s", err.text);
  setenv("HEALTH_AGENT_WEIGHT", "25", 1);
  setenv("HEALTH_AGENT_ADDRESS", "not-an-ip", 1);
  ck_assert_int_eq(health_controls_from_env(h, &err), HEALTH_EINVAL);
  ck_assert_msg(strstr(err.text, "HEALTH_AGENT_"), "%s", err.text);
  ck_assert_int_eq(h->ctl->agent_enabled, 0);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 0);
  setenv("HEALTH_AGENT_ADDRESS", "127.0.0.1", 1);
  ck_assert_msg(health_controls_from_env(h, &err) == 0, "%s", err.text);
  ck_assert_uint_eq(h->ctl->startup_deadline_ms, 500);
  start(h);
  ck_assert_uint_gt(health_agent_port(h), 0);
  ck_assert_int_eq(health_controls_from_env(h, &err), HEALTH_ESTATE);
  char line[64];
  ck_assert_int_eq(health_gate_open(h, "g", NULL), 0);
  agent_line(h, line, sizeof line);
  ck_assert_str_eq(line, "up ready 25%\n");
  health_agent_options_init(&ao);
  ck_assert_int_eq(health_agent_set(h, &ao, &err), HEALTH_ESTATE);
  health_stop(h);
  ck_assert_int_eq(health_heartbeat_add(h, "y", 1000, &dup, &err), HEALTH_ESTATE);
  health_free(h);
}
END_TEST

/* ---- a stale heartbeat names itself to listeners; a pause is no staleness ---- */

static pthread_mutex_t reason_mu = PTHREAD_MUTEX_INITIALIZER;
static char live_reason[256];

static void reason_listener(const health_transition_t *t, void *arg) {
  (void)arg;
  pthread_mutex_lock(&reason_mu);
  if (t->subject == HEALTH_LIVENESS && t->to == HEALTH_FAIL && !live_reason[0])
    snprintf(live_reason, sizeof live_reason, "%s", t->reason ? t->reason : "");
  pthread_mutex_unlock(&reason_mu);
}

static int live_failed(void *arg) {
  (void)arg;
  pthread_mutex_lock(&reason_mu);
  int got = live_reason[0] != 0;
  pthread_mutex_unlock(&reason_mu);
  return got;
}

START_TEST(test_stale_heartbeat_reason) {
  health_t *h = new_handle();
  health_error_t err;
  ck_assert_int_eq(health_listener_add(h, reason_listener, NULL, &err), 0);
  health_heartbeat_t *hb;
  ck_assert_int_eq(health_heartbeat_add(h, "loop", TS(200), &hb, &err), 0);
  beater_t b;
  beater_start(&b, hb);
  start(h);
  ck_assert(first_answer(h, "/health", 200, TS(3000), NULL, 0));
  beater_pause(&b);
  ck_assert(th_wait_until(live_failed, NULL, TS(3000)));
  pthread_mutex_lock(&reason_mu);
  ck_assert_msg(strstr(live_reason, "heartbeat 'loop'"), "reason: %s", live_reason);
  pthread_mutex_unlock(&reason_mu);
  beater_stop(&b);
  health_free(h);
}
END_TEST

/* The child's work loop: 200 ms of CPU time between beats.  CPU time does
 * not pass while the process is stopped, so after SIGCONT the loop still
 * owes the rest of its work before the next beat, as a real one would
 * (a sleeping one would beat at once: its sleep ran out during the stop). */
static void *cpu_beater(void *arg) {
  health_heartbeat_t *hb = arg;
  for (;;) {
    health_heartbeat_beat(hb);
    struct timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 200);
  }
  return NULL;
}

/* The parent's side of the pause tests: the child writes its health port
 * to `fd`; once `path` answers 200 (within ready_ms) the child is stopped
 * for pause_ms, continued, and every answer after SIGCONT must be 200. */
static void stop_and_probe(pid_t pid, int fd, const char *path, unsigned ready_ms,
                           unsigned pause_ms) {
  unsigned port = 0;
  ck_assert_int_eq(read(fd, &port, sizeof port), (ssize_t)sizeof port);
  close(fd);
  uint64_t until = th_now_ms() + ready_ms;
  while (th_status(port, "GET", path) != 200 && th_now_ms() < until) sleep_ms(5);
  ck_assert_int_eq(th_status(port, "GET", path), 200);
  kill(pid, SIGSTOP);
  sleep_ms(pause_ms); /* the pause itself: time must pass while stopped */
  kill(pid, SIGCONT);
  int first = th_status(port, "GET", path);
  int fails = first == 200 ? 0 : 1;
  for (int i = 0; i < 20; i++) {
    if (th_status(port, "GET", path) != 200) fails++;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  ck_assert_msg(first == 200 && fails == 0, "after SIGCONT: first answer %d, %d failures", first,
                fails);
}

/* A child whose work loop beats a heartbeat (max age 1 s) is stopped for
 * 2 s (SIGSTOP; CLOCK_MONOTONIC runs on) and continued: its first answers
 * must not blame the heartbeat for the pause. */
START_TEST(test_pause_is_not_staleness) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(p[0]);
    health_options_t o;
    health_options_init(&o);
    o.address = "127.0.0.1";
    o.port = 0;
    o.handle_signals = 0;
    o.exit_on_shutdown = 0;
    o.log_level = HEALTH_LOG_OFF;
    health_t *h;
    health_error_t err;
    health_heartbeat_t *hb;
    if (health_new(&h, &o, &err) || health_heartbeat_add(h, "loop", 1000, &hb, &err)) _exit(1);
    pthread_t t;
    if (pthread_create(&t, NULL, cpu_beater, hb) || health_start(h, &err)) _exit(2);
    unsigned port = health_port(h);
    if (write(p[1], &port, sizeof port) != (ssize_t)sizeof port) _exit(3);
    for (;;) pause();
  }
  close(p[1]);
  stop_and_probe(pid, p[0], "/health", TS(3000), 2000);
}
END_TEST

/* The same for a check's result: interval 500 ms, timeout 1 s, a run
 * takes 300 ms, so after a 3 s stop no fresh result can come for 300 ms,
 * and the old one must not be called stale for the pause. */
static void slow_pass(health_result_t *r, void *arg) {
  (void)arg;
  sleep_ms(300);
  health_result_set(r, HEALTH_PASS, NULL);
}

START_TEST(test_pause_does_not_age_checks) {
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(p[0]);
    health_options_t o;
    health_options_init(&o);
    o.address = "127.0.0.1";
    o.port = 0;
    o.handle_signals = 0;
    o.exit_on_shutdown = 0;
    o.log_level = HEALTH_LOG_OFF;
    health_check_options_t co;
    health_check_options_init(&co);
    co.interval_ms = 500;
    co.timeout_ms = 1000;
    health_t *h;
    health_error_t err;
    if (health_new(&h, &o, &err) || health_check_add(h, "slow", slow_pass, NULL, NULL, &co, &err) ||
        health_start(h, &err))
      _exit(1);
    unsigned port = health_port(h);
    if (write(p[1], &port, sizeof port) != (ssize_t)sizeof port) _exit(3);
    for (;;) pause();
  }
  close(p[1]);
  stop_and_probe(pid, p[0], "/ready", TS(5000), 3000);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("liveness");
  TCase *t = tcase_create("liveness");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_heartbeat_stale_and_recover);
  tcase_add_test(t, test_watchdog_stops_during_stall);
  tcase_add_test(t, test_manual_toggle);
  tcase_add_test(t, test_gate_never_opened);
  tcase_add_test(t, test_gate_without_deadline_and_pending_check);
  tcase_add_test(t, test_draining_keeps_liveness);
  tcase_add_test(t, test_heartbeat_from_signal_handler_and_removal);
  tcase_add_test(t, test_agent_replies);
  tcase_add_test(t, test_bad_input);
  tcase_add_test(t, test_stale_heartbeat_reason);
  tcase_add_test(t, test_pause_is_not_staleness);
  tcase_add_test(t, test_pause_does_not_age_checks);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
