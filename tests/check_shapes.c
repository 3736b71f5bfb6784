/* The shapes C services take: signal handlers the application installs
 * before or after health_start() (chained, replaced, noticed), fork() with
 * a started handle (the child's copy is inert, never reaches the parent,
 * keeps no listening socket), and shared heartbeats for pre-forked
 * workers.  Real processes, real sockets; every wait bounded. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"

static health_t *start_handle(int handle_signals, health_heartbeat_shared_t **shared,
                              unsigned shared_max_age_ms) {
  health_options_t o;
  health_options_init(&o);
  o.port = 0;
  o.address = "127.0.0.1";
  o.handle_signals = handle_signals;
  o.exit_on_shutdown = 0;
  o.drain_ms = 100;
  o.drain_min_ms = 100;
  o.log_fn = th_capture_log;
  o.log_level = HEALTH_LOG_DEBUG;
  health_t *h = NULL;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  if (shared)
    ck_assert_msg(
        health_heartbeat_shared_add(h, "workers", 2, shared_max_age_ms, shared, &err) == 0, "%s",
        err.text);
  ck_assert_msg(health_start(h, &err) == 0, "%s", err.text);
  return h;
}

/* Wait for child `pid` at most timeout_ms; on timeout kill it and fail. */
static int wait_child(pid_t pid, unsigned timeout_ms) {
  uint64_t end = th_now_ms() + timeout_ms;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    ck_assert_int_eq(r, 0);
    if (th_now_ms() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      ck_abort_msg("child %d did not end within %u ms (deadlock?)", (int)pid, timeout_ms);
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
}

static int draining(void *arg) { return health_drain_active(arg); }

static int log_has(void *arg) { return th_log_contains(arg); }

/* ---- signals ---- */

static volatile sig_atomic_t app_term, app_int_info;
static void app_on_term(int sig) {
  (void)sig;
  app_term++;
}
static void app_on_int(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  if (sig == SIGINT && si && si->si_pid == getpid()) app_int_info++;
}

static void install_app_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = app_on_term;
  ck_assert_int_eq(sigaction(SIGTERM, &sa, NULL), 0);
  sa.sa_sigaction = app_on_int;
  sa.sa_flags = SA_SIGINFO;
  ck_assert_int_eq(sigaction(SIGINT, &sa, NULL), 0);
}

static int app_term_seen(void *arg) {
  (void)arg;
  return app_term > 0;
}

/* Installed before start: the library records the signal (readiness
 * fails), then the application's handler runs (sa_handler and
 * sa_sigaction with its siginfo), and health_start() said so. */
START_TEST(test_prior_handler_chained) {
  install_app_handlers();
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  ck_assert_msg(th_log_contains("\"event\":\"signal_chained\"") &&
                    th_log_contains("\"signal\":\"SIGTERM\"") &&
                    th_log_contains("\"signal\":\"SIGINT\""),
                "%s", th_log_text() ? th_log_text() : "(no log)");
  ck_assert_int_eq(kill(getpid(), SIGINT), 0);
  ck_assert(th_wait_until(draining, h, TS(2000)));
  ck_assert_int_eq(app_int_info, 1);
  ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
  ck_assert(th_wait_until(app_term_seen, NULL, TS(2000)));
  ck_assert_int_eq(health_wait(h), 0);
  health_free(h);
  /* health_stop() put the application's handlers back. */
  struct sigaction cur;
  sigaction(SIGTERM, NULL, &cur);
  ck_assert(cur.sa_handler == app_on_term);
}
END_TEST

/* HEALTH_SIGNALS_REPLACE: the application's handler no longer runs, and
 * the log says so. */
START_TEST(test_prior_handler_replaced) {
  install_app_handlers();
  health_t *h = start_handle(HEALTH_SIGNALS_REPLACE, NULL, 0);
  ck_assert(th_log_contains("\"event\":\"signal_replaced\""));
  ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
  ck_assert(th_wait_until(draining, h, TS(2000)));
  ck_assert_int_eq(health_wait(h), 0);
  ck_assert_int_eq(app_term, 0);
  health_free(h);
}
END_TEST

/* Installed after start over the library's: one warn line within a
 * second, and the gauge in /metrics. */
START_TEST(test_handler_replaced_after_start) {
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = app_on_term;
  uint64_t t0 = th_now_ms();
  ck_assert_int_eq(sigaction(SIGTERM, &sa, NULL), 0);
  ck_assert_msg(th_wait_until(log_has, "\"event\":\"signal_handler_replaced\"", TS(3000)),
                "no signal_handler_replaced line");
  uint64_t took = th_now_ms() - t0;
  ck_assert_msg(took <= TS(1000), "noticed after %llu ms", (unsigned long long)took);
  ck_assert(th_log_contains("\"level\":\"warn\""));
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL), 0);
  ck_assert_msg(strstr(a.body, "libhealth_signal_handler_replaced{signal=\"SIGTERM\"} 1") &&
                    strstr(a.body, "libhealth_signal_handler_replaced{signal=\"SIGINT\"} 0"),
                "%s", a.body);
  health_answer_release(&a);
  /* Once: two more watch periods add no line. */
  struct timespec ts = {0, 600000000};
  nanosleep(&ts, NULL);
  ck_assert_int_eq(th_log_count("\"event\":\"signal_handler_replaced\""), 1);
  /* health_stop() leaves the application's handler in place. */
  health_free(h);
  struct sigaction cur;
  sigaction(SIGTERM, NULL, &cur);
  ck_assert(cur.sa_handler == app_on_term);
}
END_TEST

static health_t *coop_handle;
static void coop_on_term(int sig) {
  (void)sig;
  health_shutdown(coop_handle); /* async-signal-safe: the fastest wiring */
}

typedef struct {
  health_t *h;
  uint64_t t0, flip_ms, answered_ms;
  int status;
} coop_t;

static void *coop_watch(void *arg) {
  coop_t *c = arg;
  if (th_wait_until(draining, c->h, TS(1000))) c->flip_ms = th_now_ms() - c->t0;
  c->status = th_status(health_port(c->h), "GET", "/ready");
  c->answered_ms = th_now_ms() - c->t0;
  return NULL;
}

/* handle_signals = 0, the application's handler calls health_shutdown():
 * readiness flips on the library's thread at once, while the thread that
 * took the signal stays busy for 500 ms (a loop stuck behind a slow query). */
START_TEST(test_cooperative_flip_is_immediate) {
  health_t *h = start_handle(HEALTH_SIGNALS_OFF, NULL, 0);
  coop_handle = h;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = coop_on_term;
  ck_assert_int_eq(sigaction(SIGTERM, &sa, NULL), 0);
  coop_t c = {h, 0, UINT64_MAX, UINT64_MAX, -1};
  /* The watcher blocks SIGTERM: this (busy) thread takes it. */
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  pthread_t t;
  c.t0 = th_now_ms();
  ck_assert_int_eq(pthread_create(&t, NULL, coop_watch, &c), 0);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
  while (th_now_ms() - c.t0 < 500) { /* busy: no call into the library */
  }
  pthread_join(t, NULL);
  ck_assert_int_eq(c.status, 503);
  ck_assert_msg(c.flip_ms <= TS(50) && c.answered_ms <= TS(100),
                "flip %llu ms, 503 answered %llu ms", (unsigned long long)c.flip_ms,
                (unsigned long long)c.answered_ms);
  printf("cooperative: draining %llu ms, /ready 503 answered %llu ms after the signal, loop busy\n",
         (unsigned long long)c.flip_ms, (unsigned long long)c.answered_ms);
  ck_assert_int_eq(health_wait(h), 0);
  health_free(h);
}
END_TEST

/* ---- fork() ---- */

/* The child frees its copy and exits cleanly; the parent still answers and
 * drains on SIGTERM. */
START_TEST(test_child_free_parent_lives) {
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  unsigned port = health_port(h);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    health_free(h);
    /* _exit, not exit: a child of a threaded process may call only
     * async-signal-safe functions (POSIX), and exit() runs atexit handlers
     * and, under AddressSanitizer, a leak check that needs allocator locks
     * another parent thread may have held at fork().  Seen once under
     * ASan: the child never ended; health_free in a child takes no lock. */
    _exit(0);
  }
  int st = wait_child(pid, TS(5000));
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 200);
  ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
  ck_assert(th_wait_until(draining, h, TS(2000)));
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 503);
  ck_assert_int_eq(health_wait(h), 0);
  health_free(h);
}
END_TEST

static atomic_int hammer_stop;
static void *hammer(void *arg) {
  health_t *h = arg;
  while (!atomic_load(&hammer_stop)) {
    health_status(h, HEALTH_READINESS);
    health_answer_t a;
    if (health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL) == 0)
      health_answer_release(&a);
  }
  return NULL;
}

/* Many forks while another thread is inside the library: every child's
 * calls return at once with their documented answers (no deadlock), and
 * none of them reaches the parent. */
START_TEST(test_child_calls_inert) {
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  unsigned port = health_port(h);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, hammer, h), 0);
  /* 100 forks; fewer where each child is slow to run and to leave (under
   * valgrind every child does its own leak check at exit: about 12 s
   * each), never fewer than 10. */
  int forks = 100 / (int)th_time_scale();
  if (forks < 10) forks = 10;
  for (int i = 0; i < forks; i++) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
      int bad = 0;
      if (health_status(h, HEALTH_READINESS) != HEALTH_FAIL) bad |= 1;
      if (health_wait(h) != HEALTH_EFORKED) bad |= 2;
      health_shutdown(h);
      health_inflight_begin(h);
      health_inflight_end(h);
      if (health_drain_fd(h) != -1) bad |= 4;
      if (health_ready_hold(h, "child", NULL) != HEALTH_EFORKED) bad |= 8;
      health_answer_t a;
      if (health_answer_render(h, HEALTH_READINESS, NULL, NULL, NULL, &a, NULL) != HEALTH_EFORKED)
        bad |= 16;
      health_stop(h);
      health_free(h);
      _exit(bad);
    }
    int st = wait_child(pid, TS(5000));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x", i, st);
  }
  atomic_store(&hammer_stop, 1);
  pthread_join(t, NULL);
  ck_assert_int_eq(health_drain_active(h), 0);
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 200);
  health_free(h);
}
END_TEST

/* SIGTERM to a child (a worker) ends the child as the application's
 * disposition says (default: terminated) and leaves the parent ready. */
START_TEST(test_child_sigterm_stays_in_child) {
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  unsigned port = health_port(h);
  int go[2];
  ck_assert_int_eq(pipe(go), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(go[1]);
    char c;
    (void)!read(go[0], &c, 1); /* the parent's SIGTERM ends this */
    _exit(3);
  }
  close(go[0]);
  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  int st = wait_child(pid, TS(5000));
  close(go[1]);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "child status %#x", st);
  /* The parent's shutdown thread wakes at once for a request (it polls the
   * pipe); give it several watch periods to prove nothing came. */
  struct timespec ts = {0, 300000000};
  nanosleep(&ts, NULL);
  ck_assert_int_eq(health_drain_active(h), 0);
  ck_assert_int_eq(th_status(port, "GET", "/ready"), 200);
  health_free(h);
}
END_TEST

static int connect_errno(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = rc == 0 ? 0 : errno;
  close(fd);
  return e;
}

/* 1 if process `pid` holds a listening TCP socket on 127.0.0.1:port
 * (/proc/net/tcp's inode among /proc/pid/fd's sockets). */
static int holds_listener(pid_t pid, unsigned port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  ck_assert_ptr_nonnull(f);
  char line[512], want[64][32];
  size_t n = 0;
  while (fgets(line, sizeof line, f) && n < 64) {
    unsigned lport, st;
    unsigned long inode;
    if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &st,
               &inode) == 3 &&
        lport == port && st == 0x0A)
      snprintf(want[n++], sizeof want[0], "socket:[%lu]", inode);
  }
  fclose(f);
  int found = 0;
  for (int fd = 0; fd < 1024 && !found; fd++) {
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = 0;
    for (size_t i = 0; i < n; i++)
      if (strcmp(target, want[i]) == 0) found = 1;
  }
  return found;
}

/* Once the parent has released the health port, it is refused although a
 * child is still alive: the child holds no copy of the listening socket. */
START_TEST(test_port_refused_while_child_lives) {
  health_t *h = start_handle(HEALTH_SIGNALS_CHAIN, NULL, 0);
  unsigned port = health_port(h);
  int go[2], up[2];
  ck_assert_int_eq(pipe(go), 0);
  ck_assert_int_eq(pipe(up), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(go[1]);
    close(up[0]);
    (void)!write(up[1], "u", 1); /* past fork(): the atfork handler has run */
    char c;
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  close(go[0]);
  close(up[1]);
  struct pollfd p = {up[0], POLLIN, 0};
  ck_assert_int_eq(poll(&p, 1, (int)TS(5000)), 1);
  close(up[0]);
  ck_assert_int_eq(holds_listener(getpid(), port), 1); /* the probe works */
  ck_assert_int_eq(holds_listener(pid, port), 0);
  health_free(h);
  ck_assert_int_eq(kill(pid, 0), 0); /* the child lives */
  ck_assert_int_eq(connect_errno(port), ECONNREFUSED);
  close(go[1]);
  int st = wait_child(pid, TS(5000));
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- shared heartbeats ---- */

static pid_t beating_worker(health_heartbeat_shared_t *s, unsigned slot) {
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 3000; i++) { /* at most 60 s */
      health_heartbeat_shared_beat(s, slot);
      struct timespec ts = {0, 20000000};
      nanosleep(&ts, NULL);
    }
    _exit(0);
  }
  ck_assert_int_eq(health_heartbeat_shared_attach(s, slot, pid, NULL), 0);
  return pid;
}

typedef struct {
  health_t *h;
  health_status_t want;
} want_t;
static int liveness_is(void *arg) {
  want_t *w = arg;
  return health_status(w->h, HEALTH_LIVENESS) == w->want;
}

/* A stalled worker fails the master's liveness within its maximum age and
 * recovers when it beats again; an exited (reaped) worker fails it at
 * once; a detached slot is not looked at. */
START_TEST(test_shared_heartbeat) {
  health_heartbeat_shared_t *s = NULL;
  health_t *h = start_handle(HEALTH_SIGNALS_OFF, &s, 300);
  pid_t w0 = beating_worker(s, 0), w1 = beating_worker(s, 1);
  want_t pass = {h, HEALTH_PASS}, fail = {h, HEALTH_FAIL};
  ck_assert(th_wait_until(liveness_is, &pass, TS(3000)));
  health_check_info_t info;

  ck_assert_int_eq(kill(w1, SIGSTOP), 0);
  uint64_t t0 = th_now_ms();
  ck_assert(th_wait_until(liveness_is, &fail, TS(3000)));
  uint64_t took = th_now_ms() - t0;
  ck_assert_msg(took >= 250 && took <= TS(1000), "stall reported after %llu ms",
                (unsigned long long)took);
  ck_assert_int_eq(health_check_find(h, "workers", &info, NULL), 0);
  ck_assert_msg(strstr(info.output, "worker 1") && strstr(info.output, "no beat"), "%s",
                info.output);
  ck_assert_int_eq(kill(w1, SIGCONT), 0);
  ck_assert(th_wait_until(liveness_is, &pass, TS(3000)));

  ck_assert_int_eq(kill(w0, SIGKILL), 0);
  int st;
  ck_assert_int_eq(waitpid(w0, &st, 0), w0);
  t0 = th_now_ms();
  ck_assert(th_wait_until(liveness_is, &fail, TS(3000)));
  ck_assert_int_eq(health_check_find(h, "workers", &info, NULL), 0);
  ck_assert_msg(strstr(info.output, "exited"), "%s", info.output);
  ck_assert_msg(th_now_ms() - t0 <= TS(300), "exit reported late");

  ck_assert_int_eq(health_heartbeat_shared_detach(s, 0, NULL), 0);
  ck_assert(th_wait_until(liveness_is, &pass, TS(3000)));
  kill(w1, SIGKILL);
  waitpid(w1, &st, 0);
  health_heartbeat_shared_detach(s, 1, NULL);
  health_free(h);
}
END_TEST

START_TEST(test_shared_heartbeat_bad_input) {
  health_t *h = NULL;
  health_options_t o;
  health_options_init(&o);
  o.port = HEALTH_PORT_OFF;
  o.handle_signals = 0;
  ck_assert_int_eq(health_new(&h, &o, NULL), 0);
  health_heartbeat_shared_t *s = (void *)1;
  health_error_t err;
  ck_assert_int_eq(health_heartbeat_shared_add(h, "w", 0, 1000, &s, &err), HEALTH_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(health_heartbeat_shared_add(h, "w", 2, 50, &s, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_shared_add(h, "bad name", 2, 1000, &s, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_shared_add(h, "w", 2, 1000, &s, &err), 0);
  ck_assert_int_eq(health_heartbeat_shared_attach(s, 2, 1, NULL), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_shared_attach(s, 0, 0, NULL), HEALTH_EINVAL);
  ck_assert_int_eq(health_heartbeat_shared_detach(s, 2, NULL), HEALTH_EINVAL);
  health_heartbeat_shared_beat(s, 7); /* ignored */
  health_heartbeat_shared_beat(NULL, 0);
  ck_assert_str_eq(health_err_name(HEALTH_EFORKED), "HEALTH_EFORKED");
  health_free(h);
}
END_TEST

/* Check's runner installs SIGTERM/SIGINT handlers that the forked test
 * inherits (and the library would chain to): start from the defaults. */
static void setup(void) {
  th_log_clear();
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
}

static Suite *shapes_suite(void) {
  Suite *s = suite_create("shapes");
  TCase *tc = tcase_create("signals");
  tcase_set_timeout(tc, 30);
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_prior_handler_chained);
  tcase_add_test(tc, test_prior_handler_replaced);
  tcase_add_test(tc, test_handler_replaced_after_start);
  tcase_add_test(tc, test_cooperative_flip_is_immediate);
  suite_add_tcase(s, tc);
  tc = tcase_create("fork");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_child_free_parent_lives);
  tcase_add_test(tc, test_child_calls_inert);
  tcase_add_test(tc, test_child_sigterm_stays_in_child);
  tcase_add_test(tc, test_port_refused_while_child_lives);
  tcase_add_test(tc, test_shared_heartbeat);
  tcase_add_test(tc, test_shared_heartbeat_bad_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return th_run_suite(shapes_suite(), CK_ENV, CK_FORK) ? 1 : 0; /* signals, fork() */
}
