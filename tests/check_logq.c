/* Logging that can never block or kill the process, and descriptors that
 * stay off stdio (issue 23, items 1, 4, 5): the sink runs on the library's
 * writer thread with no lock of the handle held; a stuck stderr pipe holds
 * up neither the API, nor /ready, nor health_stop(); a log reader that is
 * gone raises no SIGPIPE; with fds 0-2 closed the library takes none of
 * them and the drain fd is not readable. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "health_int.h"
#include "testhelp.h"

static health_t *g_h;
static pthread_t g_main;
static atomic_int g_sink_lines, g_sink_on_main, g_sink_status_ok;

/* A sink that takes the handle's lock (health_status): called with that
 * lock held on the same thread, it would deadlock (the test times out). */
static void locking_sink(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)line, (void)arg;
  if (pthread_equal(pthread_self(), g_main)) atomic_fetch_add(&g_sink_on_main, 1);
  if (g_h && health_status(g_h, HEALTH_READINESS) >= 0) atomic_fetch_add(&g_sink_status_ok, 1);
  atomic_fetch_add(&g_sink_lines, 1);
}

static int sink_got(void *arg) { return atomic_load(&g_sink_lines) >= *(int *)arg; }

static health_options_t options(void) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_DEBUG;
  return o;
}

START_TEST(test_sink_on_writer_without_lock) {
  g_main = pthread_self();
  health_options_t o = options();
  o.log_fn = locking_sink;
  health_error_t err;
  ck_assert_int_eq(health_new(&g_h, &o, &err), 0);
  ck_assert_int_eq(health_gate_add(g_h, "warm", &err), 0);
  ck_assert_int_eq(health_start(g_h, &err), 0);
  int before = atomic_load(&g_sink_lines);
  atomic_store(&g_sink_on_main, 0);
  /* gate_open is logged by the call, on this thread, with the lock held. */
  ck_assert_int_eq(health_gate_open(g_h, "warm", NULL), 0);
  ck_assert_int_eq(health_ready_hold(g_h, "test", &err), 0);
  health_ready_release(g_h, NULL);
  int want = before + 1;
  ck_assert(th_wait_until(sink_got, &want, TS(3000)));
  ck_assert_int_eq(atomic_load(&g_sink_on_main), 0);
  ck_assert_int_gt(atomic_load(&g_sink_status_ok), 0);
  health_free(g_h);
  g_h = NULL;
}
END_TEST

/* ---- a child process with stderr in a full pipe nobody reads ---- */

static void fill(int w) {
  int fl = fcntl(w, F_GETFL);
  fcntl(w, F_SETFL, fl | O_NONBLOCK);
  char b[4096];
  memset(b, 'x', sizeof b);
  for (int i = 0; i < 1024 && write(w, b, sizeof b) > 0; i++) {}
  fcntl(w, F_SETFL, fl); /* blocking again, as a log driver's pipe is */
}

/* Exit codes of the children: 0 pass, 10+ the step that failed. */
static int run_child(int (*fn)(void *), void *arg, unsigned limit_ms) {
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) _exit(fn(arg));
  int st = 0;
  uint64_t until = th_now_ms() + limit_ms;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (th_now_ms() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1; /* hung */
    }
    usleep(5000);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int stuck_child(void *arg) {
  (void)arg;
  int p[2];
  if (pipe(p) != 0) return 10;
  fill(p[1]);
  dup2(p[1], STDERR_FILENO); /* the read end stays open, unread */
  health_options_t o = options();
  health_t *h;
  health_error_t err;
  if (health_new(&h, &o, &err) != 0) return 11;
  if (health_gate_add(h, "warm", &err) != 0) return 12;
  if (health_start(h, &err) != 0) return 13;
  unsigned port = health_port(h);
  /* Every call below logs; none may wait for the pipe. */
  uint64_t t0 = th_now_ms();
  if (health_gate_open(h, "warm", NULL) != 0) return 14;
  for (int i = 0; i < 3000; i++) {
    if (health_ready_hold(h, "test", &err) != 0) return 15;
    health_ready_release(h, NULL);
  }
  if (th_now_ms() - t0 > TS(2000)) return 16;
  th_response_t r;
  t0 = th_now_ms();
  if (th_http(port, "GET", "/ready", &r) != 0 || th_now_ms() - t0 > TS(1000)) return 17;
  th_response_free(&r);
  if (th_http(port, "GET", "/metrics", &r) != 0) return 18;
  const char *m = r.body ? strstr(r.body, "\nlibhealth_log_lines_dropped_total ") : NULL;
  int dropped = m && atoi(m + strlen("\nlibhealth_log_lines_dropped_total ")) > 0;
  th_response_free(&r);
  if (!dropped) return 19;
  t0 = th_now_ms();
  health_free(h); /* the writer waits a second for the pipe, then gives up */
  if (th_now_ms() - t0 > TS(3000)) return 20;
  return 0;
}

START_TEST(test_stuck_stderr_blocks_nothing) {
  ck_assert_int_eq(run_child(stuck_child, NULL, TS(15000)), 0);
}
END_TEST

/* ---- the reader of stderr is gone: EPIPE, never a SIGPIPE ---- */

static int gone_child(void *arg) {
  (void)arg;
  signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill: status 128 + 13 */
  int p[2];
  if (pipe(p) != 0) return 10;
  dup2(p[1], STDERR_FILENO);
  close(p[1]);
  close(p[0]);
  health_options_t o = options();
  health_t *h;
  health_error_t err;
  /* Before start: the lines go out on this thread. */
  if (health_new(&h, &o, &err) != 0) return 11;
  if (health_gate_add(h, "warm", &err) != 0) return 12;
  if (health_start(h, &err) != 0) return 13;
  if (health_gate_open(h, "warm", NULL) != 0) return 14;
  for (int i = 0; i < 50; i++) {
    health_ready_hold(h, "test", &err);
    health_ready_release(h, NULL);
  }
  health_free(h); /* after stop: on this thread again */
  health__log(NULL, HEALTH_LOG_WARN, "no_handle", NULL);
  sigset_t pend;
  sigpending(&pend);
  if (sigismember(&pend, SIGPIPE)) return 15; /* none left pending here */
  /* One the application had pending stays pending. */
  sigset_t s, old;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, &old);
  raise(SIGPIPE);
  health__log(NULL, HEALTH_LOG_WARN, "no_handle", NULL);
  sigpending(&pend);
  if (!sigismember(&pend, SIGPIPE)) return 16;
  return 0;
}

START_TEST(test_reader_gone_no_sigpipe) {
  ck_assert_int_eq(run_child(gone_child, NULL, TS(15000)), 0);
}
END_TEST

/* ---- stdio closed: the library takes none of 0-2 ---- */

static int closed_child(void *arg) {
  (void)arg;
  close(0);
  close(1);
  close(2);
  health_options_t o = options();
  health_t *h;
  health_error_t err;
  if (health_new(&h, &o, &err) != 0) return 10;
  if (health_gate_add(h, "warm", &err) != 0) return 11;
  if (health_start(h, &err) != 0) return 12;
  health_gate_open(h, "warm", NULL); /* lines for a closed stderr: nowhere */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) >= 0) return 13 + fd;
  struct pollfd p = {health_drain_fd(h), POLLIN, 0};
  if (poll(&p, 1, 300) != 0) return 16; /* nothing is draining */
  th_response_t r;
  if (th_http(health_port(h), "GET", "/ready", &r) != 0 || r.status != 200) return 17;
  th_response_free(&r);
  /* Connections libmicrohttpd accepts take the lowest free number, which
   * the library cannot move (docs/guide.md): here our client took 0 and the
   * server's side of it 1.  Nothing else may be there: no pipe, no
   * eventfd, no listening socket. */
  for (int fd = 0; fd < 3; fd++) {
    char path[32], target[64] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (readlink(path, target, sizeof target - 1) < 0) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (strncmp(target, "pipe:", 5) == 0 || strncmp(target, "anon_inode:", 11) == 0 ||
        (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening))
      return 18 + fd;
  }
  health_free(h);
  return 0;
}

START_TEST(test_closed_stdio) { ck_assert_int_eq(run_child(closed_child, NULL, TS(15000)), 0); }
END_TEST

static Suite *logq_suite(void) {
  Suite *s = suite_create("logq");
  TCase *tc = tcase_create("logq");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sink_on_writer_without_lock);
  tcase_add_test(tc, test_stuck_stderr_blocks_nothing);
  tcase_add_test(tc, test_reader_gone_no_sigpipe);
  tcase_add_test(tc, test_closed_stdio);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(logq_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
