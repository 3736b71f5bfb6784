/* Graceful shutdown with real processes: a child links the library, the
 * parent drives it over HTTP and signals and checks timings (parent and
 * child share CLOCK_MONOTONIC), hook order and timeouts, the deadline,
 * repeated signals, exit codes, the drain fd and callback, sd_notify, and
 * that the library's threads never take the application's signals. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"

/* ------------------------------------------------------------------ */
/* Scenarios                                                          */
/* ------------------------------------------------------------------ */

typedef enum { HK_OK, HK_FAIL, HK_HANG } hook_kind_t;

typedef struct {
  const char *name;
  int order;
  unsigned timeout_ms;
  hook_kind_t kind;
} hook_spec_t;

typedef struct {
  unsigned drain_ms, drain_min_ms, deadline_ms;
  int handle_signals; /* the library owns SIGTERM/SIGINT */
  int app_signals;    /* handle_signals 0: the app's SIGUSR1 handler calls health_shutdown() */
  int exit_on_shutdown;
  int inflight;               /* one request in flight from the start; ended on 'e' */
  int drain_watch;            /* on_drain callback + a thread polling health_drain_fd() */
  unsigned check_delay_ms;    /* > 0: a readiness check whose first run takes this long */
  unsigned check_interval_ms; /* its interval (default 60 s) */
  const char *notify_path;    /* NOTIFY_SOCKET for the child (WATCHDOG_USEC=200000) */
  int stdout_stuck;           /* stdout is a pipe nobody reads; an app thread writes to it */
  int log_off;                /* log_level HEALTH_LOG_OFF */
  int log_block;              /* the log sink blocks forever once draining */
  int drain_hang;             /* a drain callback that never returns (no watch thread) */
  int no_threads;             /* after start: no new thread can be made (RLIMIT_NPROC) */
  size_t nhooks;
  hook_spec_t hooks[6];
} scen_t;

static void scen_init(scen_t *s) {
  memset(s, 0, sizeof *s);
  s->drain_ms = 100;
  s->drain_min_ms = 100;
  s->deadline_ms = 10000;
  s->handle_signals = 1;
  s->exit_on_shutdown = 1;
}

static void scen_hook(scen_t *s, const char *name, int order, unsigned timeout_ms,
                      hook_kind_t kind) {
  ck_assert_uint_lt(s->nhooks, 6);
  s->hooks[s->nhooks++] = (hook_spec_t){name, order, timeout_ms, kind};
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------ */
/* The child: a service linking the library                           */
/* ------------------------------------------------------------------ */

static int c_rep = -1, c_ctl = -1, c_log = -1, c_stuck = -1;
static int c_log_block; /* under c_block_mu */
static pthread_mutex_t c_block_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c_block_cv = PTHREAD_COND_INITIALIZER;
static const char *c_order_path;
static health_t *c_h;
static volatile sig_atomic_t c_handler_runs, c_handler_off_main;

/* One line to the parent; one write() of < PIPE_BUF bytes is atomic. */
static void report(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w;
  do w = write(c_rep, buf, (size_t)n);
  while (w < 0 && errno == EINTR);
}

static void child_log(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)arg;
  /* A sink that stops, as a container log driver in blocking mode does,
   * until the application lets it go (only with exit_on_shutdown = 0). */
  if (health_drain_active(c_h)) {
    pthread_mutex_lock(&c_block_mu);
    while (c_log_block) pthread_cond_wait(&c_block_cv, &c_block_mu);
    pthread_mutex_unlock(&c_block_mu);
  }
  size_t n = strlen(line);
  char *b = malloc(n + 1);
  if (!b) return;
  memcpy(b, line, n);
  b[n] = '\n';
  ssize_t w;
  do w = write(c_log, b, n + 1);
  while (w < 0 && errno == EINTR);
  free(b);
}

/* For every task but the main thread: is SIGTERM (and SIGINT) blocked? */
static void report_sigblk(const char *tag) {
  DIR *d = opendir("/proc/self/task");
  int count = 0, bad = 0;
  char bad_names[128] = "";
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    int tid = atoi(e->d_name);
    if (tid <= 0 || tid == getpid()) continue;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* the thread just exited */
    unsigned long long mask = 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "SigBlk: %llx", &mask) == 1) found = 1;
    fclose(f);
    if (!found) continue;
    count++;
    if (!(mask & (1ull << (SIGTERM - 1))) || !(mask & (1ull << (SIGINT - 1)))) {
      bad++;
      snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
      f = fopen(path, "r");
      if (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        size_t l = strlen(bad_names);
        snprintf(bad_names + l, sizeof bad_names - l, "%s,", line);
      }
      if (f) fclose(f);
    }
  }
  if (d) closedir(d);
  report("sigblk %s %d %d %s", tag, count, bad, bad_names[0] ? bad_names : "-");
}

static int hook_fn(void *arg, unsigned budget_ms) {
  const hook_spec_t *k = arg;
  report("hook %s %llu %u", k->name, (unsigned long long)th_now_ms(), budget_ms);
  int fd = open(c_order_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0) {
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", k->name);
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
  }
  report_sigblk(k->name);
  report("handler %d %d", (int)c_handler_runs, (int)c_handler_off_main);
  switch (k->kind) {
    case HK_OK: return 0;
    case HK_FAIL: return 1;
    case HK_HANG:
      for (;;) pause(); /* every signal is blocked here: forever */
  }
  return 0;
}

static void app_signal(int sig) {
  (void)sig;
  int saved = errno;
  c_handler_runs++;
  if (syscall(SYS_gettid) != getpid()) c_handler_off_main = 1;
  health_shutdown(c_h); /* async-signal-safe */
  errno = saved;
}

static int c_drain_hang;

static void on_drain(void *arg) {
  (void)arg;
  report("on_drain %llu %d", (unsigned long long)th_now_ms(), health_drain_active(c_h));
  /* A callback that breaks its contract ("must not block"): the shutdown
   * thread stays here for good. */
  while (c_drain_hang) pause();
}

static void *drain_watch_main(void *arg) {
  (void)arg;
  struct pollfd p = {health_drain_fd(c_h), POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
  report("drain_fd %llu %d", (unsigned long long)th_now_ms(), health_drain_active(c_h));
  return NULL;
}

static void *ctl_main(void *arg) {
  (void)arg;
  char c;
  while (read(c_ctl, &c, 1) == 1) {
    if (c == 'e') {
      report("end %llu", (unsigned long long)th_now_ms());
      health_inflight_end(c_h);
    }
  }
  return NULL;
}

static void slow_first_check(health_result_t *r, void *arg) {
  unsigned *delay = arg;
  if (*delay) {
    struct timespec ts = {(time_t)(*delay / 1000), (long)(*delay % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    *delay = 0;
  }
  health_result_set(r, HEALTH_PASS, NULL);
}

/* An application thread writing to stdout until the pipe is full, then
 * blocked in write() holding stdout's lock, forever. */
static void *stdout_main(void *arg) {
  (void)arg;
  static const char line[] = "application output, nobody reads it\n";
  for (;;) fputs(line, stdout);
  return NULL;
}

/* No new thread or process for this user from now on.  Root ignores
 * RLIMIT_NPROC: become nobody first (the descriptors stay open). */
static int forbid_threads(void) {
  if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0) return -1;
  struct rlimit rl = {1, 1};
  return setrlimit(RLIMIT_NPROC, &rl);
}

/* App threads block the signals too, so that only the main thread takes
 * them (and so they do not count as library threads in report_sigblk). */
static int app_thread(pthread_t *t, void *(*fn)(void *)) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(t, NULL, fn, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

static void child_main(scen_t *s) {
  static unsigned delay;
  /* Start like a fresh process: Check's runner handles SIGTERM/SIGINT. */
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (s->notify_path) {
    setenv("NOTIFY_SOCKET", s->notify_path, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    unsetenv("WATCHDOG_PID");
  }
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = s->handle_signals;
  o.exit_on_shutdown = s->exit_on_shutdown;
  o.drain_ms = s->drain_ms;
  o.drain_min_ms = s->drain_min_ms;
  o.shutdown_deadline_ms = s->deadline_ms;
  o.log_fn = child_log;
  o.log_level = s->log_off ? HEALTH_LOG_OFF : HEALTH_LOG_DEBUG;
  c_log_block = s->log_block;
  c_drain_hang = s->drain_hang;
  if (s->stdout_stuck) {
    dup2(c_stuck, STDOUT_FILENO);
    close(c_stuck);
  }
  health_error_t err;
  if (health_new(&c_h, &o, &err) != 0) {
    report("error health_new %s", err.text);
    _exit(100);
  }
  for (size_t i = 0; i < s->nhooks; i++)
    if (health_hook_add(c_h, s->hooks[i].name, s->hooks[i].order, s->hooks[i].timeout_ms, hook_fn,
                        &s->hooks[i], &err) != 0) {
      report("error add_hook %s", err.text);
      _exit(101);
    }
  if (s->check_delay_ms) {
    delay = s->check_delay_ms;
    health_check_options_t co;
    health_check_options_init(&co);
    co.timeout_ms = delay + 2000;
    co.interval_ms = s->check_interval_ms ? s->check_interval_ms : 60000;
    if (health_check_add(c_h, "slow-first", slow_first_check, &delay, NULL, &co, &err) != 0) {
      report("error add_check %s", err.text);
      _exit(102);
    }
  }
  pthread_t watch, ctl;
  if (s->drain_hang) health_drain_notify(c_h, on_drain, NULL, NULL);
  if (s->drain_watch) {
    health_drain_notify(c_h, on_drain, NULL, NULL);
    struct pollfd p = {health_drain_fd(c_h), POLLIN, 0};
    report("drainfd_before %d", poll(&p, 1, 0));
  }
  if (s->app_signals) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = app_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
  }
  if (s->inflight) health_inflight_begin(c_h);
  if (health_start(c_h, &err) != 0) {
    report("error health_start %s", err.text);
    _exit(103);
  }
  if (s->drain_watch && app_thread(&watch, drain_watch_main) != 0) _exit(104);
  if (s->inflight && app_thread(&ctl, ctl_main) != 0) _exit(105);
  pthread_t out;
  if (s->stdout_stuck && app_thread(&out, stdout_main) != 0) _exit(106);
  if (s->no_threads) {
    if (forbid_threads() != 0) {
      report("error forbid_threads %s", strerror(errno));
      _exit(107);
    }
    pthread_t t;
    report("nproc %s", app_thread(&t, ctl_main) == 0 ? "ignored" : "enforced");
  }
  struct sigaction cur;
  sigaction(SIGTERM, NULL, &cur);
  report("sigterm_handler %d", cur.sa_handler != SIG_DFL);
  report_sigblk("start");
  report("port %u", health_port(c_h));

  int code = health_wait(c_h);
  /* Only with exit_on_shutdown = 0. */
  report("wait %d %llu", code, (unsigned long long)th_now_ms());
  /* health_free() joins the sequence, still blocked in the log sink: let
   * the sink go first. */
  pthread_mutex_lock(&c_block_mu);
  c_log_block = 0;
  pthread_cond_broadcast(&c_block_cv);
  pthread_mutex_unlock(&c_block_mu);
  if (s->drain_watch) pthread_join(watch, NULL);
  health_free(c_h);
  report("freed %llu", (unsigned long long)th_now_ms());
  exit(40 + code);
}

/* ------------------------------------------------------------------ */
/* The parent                                                         */
/* ------------------------------------------------------------------ */

typedef struct {
  pid_t pid;
  int rep, ctl;
  char buf[16384];
  size_t len;
  char *lines[256];
  int used[256];
  size_t nlines;
  int eof;
  unsigned port;
  char *dir;
  char log_path[256], order_path[256];
  int stuck; /* the read end of the child's stdout (stdout_stuck), never read */
} child_t;

static child_t g_child;
/* The sd_notify tests' socket directory. */
static char *g_ndir;
static char g_nsock[200];
/* Every temporary file lives under one directory that the runner process
 * removes after the suite: a failed test ends with _exit(), skipping its
 * own teardown. */
static char *g_base;

static void pump(child_t *c, unsigned timeout_ms) {
  if (c->eof) return;
  struct pollfd p = {c->rep, POLLIN, 0};
  if (poll(&p, 1, (int)timeout_ms) <= 0) return;
  ssize_t n = read(c->rep, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (n <= 0) {
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) c->eof = 1;
    return;
  }
  c->len += (size_t)n;
  char *nl;
  while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
    *nl = 0;
    if (c->nlines < 256) c->lines[c->nlines++] = strdup(c->buf);
    if (getenv("HEALTH_TEST_LOG")) fprintf(stderr, "child: %s\n", c->buf);
    size_t rest = c->len - (size_t)(nl + 1 - c->buf);
    memmove(c->buf, nl + 1, rest);
    c->len = rest;
  }
}

/* The first unused line starting with `prefix`, waiting up to timeout_ms;
 * NULL if none came. */
static const char *wait_line(child_t *c, const char *prefix, unsigned timeout_ms) {
  uint64_t deadline = th_now_ms() + timeout_ms;
  size_t pl = strlen(prefix);
  for (;;) {
    for (size_t i = 0; i < c->nlines; i++)
      if (!c->used[i] && strncmp(c->lines[i], prefix, pl) == 0) {
        c->used[i] = 1;
        return c->lines[i];
      }
    uint64_t now = th_now_ms();
    if (now >= deadline || c->eof) return NULL;
    pump(c, (unsigned)(deadline - now));
  }
}

static int has_line(child_t *c, const char *prefix) {
  pump(c, 0);
  for (size_t i = 0; i < c->nlines; i++)
    if (strncmp(c->lines[i], prefix, strlen(prefix)) == 0) return 1;
  return 0;
}

/* "hook NAME T" -> T */
static uint64_t hook_time(child_t *c, const char *name, unsigned timeout_ms) {
  char prefix[80];
  snprintf(prefix, sizeof prefix, "hook %s ", name);
  const char *l = wait_line(c, prefix, timeout_ms);
  ck_assert_msg(l != NULL, "hook '%s' did not run", name);
  unsigned long long t = 0;
  ck_assert_int_eq(sscanf(l + strlen(prefix), "%llu", &t), 1);
  return t;
}

static void spawn(const scen_t *s, child_t *c) {
  memset(c, 0, sizeof *c);
  c->dir = th_tmpdir("shutdown");
  ck_assert_ptr_nonnull(c->dir);
  snprintf(c->log_path, sizeof c->log_path, "%s/log", c->dir);
  snprintf(c->order_path, sizeof c->order_path, "%s/order", c->dir);
  int rep[2], ctl[2];
  ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
  int log = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ck_assert_int_ge(log, 0);
  int stuck[2] = {-1, -1};
  if (s->stdout_stuck) ck_assert_int_eq(pipe2(stuck, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* Dies with the test process, even when an assertion ends it early. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(99);
    close(rep[0]);
    close(ctl[1]);
    c_rep = rep[1];
    c_ctl = ctl[0];
    c_log = log;
    c_stuck = stuck[1];
    c_order_path = c->order_path;
    child_main((scen_t *)s);
    _exit(98);
  }
  close(rep[1]);
  close(ctl[0]);
  close(log);
  if (s->stdout_stuck) close(stuck[1]);
  c->stuck = stuck[0];
  c->pid = pid;
  c->rep = rep[0];
  c->ctl = ctl[1];
  const char *l = wait_line(c, "port ", TS(15000));
  if (!l) {
    const char *e = wait_line(c, "error", 0);
    ck_abort_msg("the child did not start: %s", e ? e : "(no message)");
  }
  c->port = (unsigned)atoi(l + 5);
  ck_assert_uint_gt(c->port, 0);
}

/* Wait for the child to exit; returns its exit status (or 128 + signal),
 * -1 on timeout.  *when receives the time the exit was seen. */
static int wait_exit(child_t *c, unsigned timeout_ms, uint64_t *when) {
  uint64_t deadline = th_now_ms() + timeout_ms;
  for (;;) {
    int st;
    pid_t r = waitpid(c->pid, &st, WNOHANG);
    if (r == c->pid) {
      if (when) *when = th_now_ms();
      c->pid = 0;
      while (!c->eof) pump(c, 100); /* collect the last lines */
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    uint64_t now = th_now_ms();
    if (now >= deadline) return -1;
    if (!c->eof) pump(c, 1);
    else {
      /* The pipe closed at exit: the zombie appears at once. */
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  }
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return strdup("");
  char *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      buf = realloc(buf, cap);
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    if (n == 0) break;
    len += n;
  }
  fclose(f);
  buf[len] = 0;
  return buf;
}

static int log_has(child_t *c, const char *needle) {
  char *text = read_file(c->log_path);
  int found = strstr(text, needle) != NULL;
  free(text);
  return found;
}

/* mono_ms of the first log line containing `needle`, or 0. */
static uint64_t log_mono_ms(child_t *c, const char *needle) {
  char *text = read_file(c->log_path);
  char *hit = strstr(text, needle);
  uint64_t ms = 0;
  if (hit) {
    while (hit > text && hit[-1] != '\n') hit--;
    char *m = strstr(hit, "\"mono_ms\":");
    if (m) ms = strtoull(m + 10, NULL, 10);
  }
  free(text);
  return ms;
}

static void child_cleanup(void) {
  child_t *c = &g_child;
  if (g_ndir) {
    unlink(g_nsock);
    rmdir(g_ndir);
    free(g_ndir);
    g_ndir = NULL;
  }
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
  }
  if (c->rep > 0) close(c->rep);
  if (c->ctl > 0) close(c->ctl);
  if (c->stuck > 0) close(c->stuck);
  for (size_t i = 0; i < c->nlines; i++) free(c->lines[i]);
  if (c->dir) {
    unlink(c->log_path);
    unlink(c->order_path);
    rmdir(c->dir);
    free(c->dir);
  }
  memset(c, 0, sizeof *c);
}

/* ---- HTTP ---- */

static void wait_ready(child_t *c) {
  th_want_t w = {c->port, "/ready", 200};
  ck_assert_msg(th_wait_until(th_status_is, &w, TS(10000)), "the child never became ready");
}

/* Signal, then poll /ready every millisecond until it answers 503;
 * returns the latency in microseconds. */
static uint64_t term_and_wait_503(child_t *c, int sig, uint64_t *t_sig_ms) {
  *t_sig_ms = th_now_ms();
  uint64_t t0 = mono_us();
  ck_assert_int_eq(kill(c->pid, sig), 0);
  th_want_t w = {c->port, "/ready", 503};
  ck_assert_msg(th_wait_until(th_status_is, &w, TS(2000)), "/ready never turned 503");
  return mono_us() - t0;
}

static void check_sigblk(child_t *c, const char *tag, int min_threads) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "sigblk %s ", tag);
  const char *l = wait_line(c, prefix, TS(5000));
  ck_assert_msg(l != NULL, "no signal mask report '%s'", tag);
  int count = -1, bad = -1;
  char names[128] = "";
  ck_assert_int_ge(sscanf(l + strlen(prefix), "%d %d %127s", &count, &bad, names), 2);
  ck_assert_msg(count >= min_threads, "%s: only %d threads", tag, count);
  ck_assert_msg(bad == 0, "%s: %d library thread(s) accept SIGTERM/SIGINT: %s", tag, bad, names);
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_drain_window) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 600;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  /* The HTTP thread, the scheduler and the shutdown thread at least. */
  check_sigblk(c, "start", 3);
  const char *l = wait_line(c, "sigterm_handler ", 0);
  ck_assert_ptr_nonnull(l);
  ck_assert_str_eq(l, "sigterm_handler 1");
  wait_ready(c);

  uint64_t t_sig;
  uint64_t us = term_and_wait_503(c, SIGTERM, &t_sig);
  fprintf(stderr, "check_shutdown: SIGTERM -> /ready 503 after %.3f ms\n", (double)us / 1000.0);
  ck_assert_msg(us < TS(50000), "/ready took %.3f ms to turn 503", (double)us / 1000.0);

  /* Through the drain: liveness 200, readiness 503, until the hook runs. */
  int probes = 0;
  while (!has_line(c, "hook flush ")) {
    ck_assert_msg(th_now_ms() - t_sig < TS(5000), "the drain never ended");
    int live = th_status(c->port, "GET", "/health"), ready = th_status(c->port, "GET", "/ready");
    /* The drain may end between the check above and these probes; the
     * hook reports in before the server goes away. */
    if ((live != 200 || ready != 503) && has_line(c, "hook flush ")) break;
    ck_assert_int_eq(live, 200);
    ck_assert_int_eq(ready, 503);
    probes++;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL); /* probe pacing, not synchronisation */
  }
  ck_assert_int_gt(probes, 20);
  uint64_t hook = hook_time(c, "flush", TS(0));
  ck_assert_msg(hook >= t_sig + 600, "hook after %llu ms, drain is 600",
                (unsigned long long)(hook - t_sig));
  ck_assert_msg(hook < t_sig + 600 + TS(500), "hook only after %llu ms",
                (unsigned long long)(hook - t_sig));
  check_sigblk(c, "flush", 3); /* the hook's own thread included */
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  ck_assert(log_has(c, "\"reason\":\"window elapsed\""));
  ck_assert(log_has(c, "\"event\":\"shutdown_complete\",\"exit_code\":0"));
}
END_TEST

START_TEST(test_drain_ends_early) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = 3000;
  s.drain_min_ms = 200;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  uint64_t hook = hook_time(c, "flush", TS(5000));
  ck_assert_msg(hook >= t_sig + 200 && hook < t_sig + 200 + TS(800), "hook after %llu ms",
                (unsigned long long)(hook - t_sig));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  ck_assert(log_has(c, "\"reason\":\"nothing in flight\""));
}
END_TEST

START_TEST(test_drain_waits_for_inflight) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = 4000;
  s.drain_min_ms = 200;
  s.inflight = 1;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  /* Past drain_min, the request still runs: no hook yet. */
  uint64_t until = t_sig + 800, now = th_now_ms();
  ck_assert_ptr_null(wait_line(c, "hook ", until > now ? (unsigned)(until - now) : 0));
  ck_assert_int_eq(th_status(c->port, "GET", "/ready"), 503);
  ck_assert_int_eq(th_status(c->port, "GET", "/health"), 200);
  ck_assert_int_eq(write(c->ctl, "e", 1), 1);
  const char *l = wait_line(c, "end ", TS(2000));
  ck_assert_ptr_nonnull(l);
  uint64_t t_end = strtoull(l + 4, NULL, 10);
  uint64_t hook = hook_time(c, "flush", TS(3000));
  ck_assert_msg(hook >= t_end && hook < t_end + TS(300), "hook %lld ms after the request ended",
                (long long)(hook - t_end));
  ck_assert_uint_lt(hook, t_sig + 4000);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  ck_assert(log_has(c, "\"reason\":\"nothing in flight\""));
}
END_TEST

START_TEST(test_hook_order) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 0;
  scen_hook(&s, "c", 30, 0, HK_OK);
  scen_hook(&s, "a", 10, 0, HK_OK);
  scen_hook(&s, "b", 20, 0, HK_OK);
  scen_hook(&s, "a2", 10, 0, HK_OK); /* same order as "a": after it */
  scen_hook(&s, "first", -5, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  char *order = read_file(c->order_path);
  ck_assert_str_eq(order, "first\na\na2\nb\nc\n");
  free(order);
}
END_TEST

START_TEST(test_hook_timeout) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 0;
  scen_hook(&s, "hang", 1, 300, HK_HANG);
  scen_hook(&s, "after", 2, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  uint64_t t_hang = hook_time(c, "hang", TS(5000));
  uint64_t t_after = hook_time(c, "after", TS(5000));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_HOOK_TIMEOUT);
  ck_assert(log_has(c, "timeout: abandoned"));
  /* The timeout counts from when the library started the hook (logged),
   * a little before the hook's thread reported in. */
  uint64_t begin = log_mono_ms(c, "\"event\":\"hook_started\",\"hook\":\"hang\"");
  ck_assert_uint_gt(begin, 0);
  ck_assert_uint_le(begin, t_hang);
  ck_assert_msg(t_after >= begin + 300 && t_after < begin + 300 + TS(500),
                "next hook %llu ms after the hanging one started",
                (unsigned long long)(t_after - begin));
}
END_TEST

START_TEST(test_hook_failed) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 0;
  scen_hook(&s, "bad", 1, 0, HK_FAIL);
  scen_hook(&s, "next", 2, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_HOOK_FAILED);
  char *order = read_file(c->order_path);
  ck_assert_str_eq(order, "bad\nnext\n");
  free(order);
  ck_assert(log_has(c, "\"result\":\"failed\""));
}
END_TEST

START_TEST(test_deadline) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 100;
  s.deadline_ms = 800;
  scen_hook(&s, "hang", 1, 60000, HK_HANG);
  scen_hook(&s, "later", 2, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig = th_now_ms(), t_exit = 0;
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  ck_assert_int_eq(wait_exit(c, TS(5000), &t_exit), HEALTH_EXIT_DEADLINE);
  /* Timed by the last log line before _exit(): sanitizers may linger at
   * exit (TSan's atexit_sleep_ms). */
  uint64_t t_done = log_mono_ms(c, "\"event\":\"shutdown_complete\"");
  ck_assert_msg(t_done >= t_sig + 800 && t_done < t_sig + 800 + TS(500), "exit after %llu ms",
                (unsigned long long)(t_done - t_sig));
  ck_assert_uint_ge(t_exit, t_done);
  ck_assert(has_line(c, "hook hang "));
  ck_assert(!has_line(c, "hook later "));
  ck_assert(log_has(c, "\"event\":\"hook_skipped\",\"hook\":\"later\""));
  ck_assert(log_has(c, "deadline_fired"));
}
END_TEST

START_TEST(test_second_signal) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 5000;
  s.deadline_ms = 10000;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  /* A second signal counts only once the debounce window has passed. */
  while (th_now_ms() < t_sig + 1000 + TS(100)) usleep(10000);
  uint64_t t2 = th_now_ms();
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  uint64_t hook = hook_time(c, "flush", TS(3000));
  ck_assert_msg(hook >= t2 && hook < t2 + TS(500), "hook %lld ms after the second signal",
                (long long)(hook - t2));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  ck_assert(log_has(c, "shutdown_signal_repeated"));
  ck_assert(log_has(c, "\"reason\":\"repeated signal\""));
}
END_TEST

START_TEST(test_third_signal) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 5000;
  s.deadline_ms = 20000;
  scen_hook(&s, "hang", 1, 15000, HK_HANG);
  scen_hook(&s, "later", 2, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  while (th_now_ms() < t_sig + 1000 + TS(100)) usleep(10000); /* past the debounce window */
  uint64_t t2 = th_now_ms();
  ck_assert_int_eq(kill(c->pid, SIGINT), 0); /* SIGINT counts the same */
  hook_time(c, "hang", TS(3000));
  while (th_now_ms() < t2 + 1000 + TS(100)) usleep(10000);
  uint64_t t3 = th_now_ms(), t_exit = 0;
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  ck_assert_int_eq(wait_exit(c, TS(3000), &t_exit), HEALTH_EXIT_FORCED);
  uint64_t t_done = log_mono_ms(c, "\"event\":\"shutdown_complete\"");
  ck_assert_msg(t_done >= t3 && t_done - t3 < TS(300), "forced exit took %lld ms",
                (long long)(t_done - t3));
  ck_assert(!has_line(c, "hook later "));
  ck_assert(log_has(c, "abandoned: forced exit"));
  ck_assert(log_has(c, "\"event\":\"hook_skipped\",\"hook\":\"later\""));
}
END_TEST

/* A burst of signals (a process group plus a forwarded copy) is one
 * request: the full drain runs and every hook still runs. */
START_TEST(test_signal_burst) {
  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 600;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t0 = th_now_ms();
  for (int i = 0; i < 3; i++) ck_assert_int_eq(kill(c->pid, i == 1 ? SIGINT : SIGTERM), 0);
  uint64_t hook = hook_time(c, "flush", TS(3000));
  ck_assert_msg(hook >= t0 + 600, "drain cut short: hook %lld ms after the burst",
                (long long)(hook - t0));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  ck_assert(log_has(c, "shutdown_signal_duplicate"));
  ck_assert(!log_has(c, "shutdown_signal_repeated"));
}
END_TEST

START_TEST(test_app_owned_signals) {
  scen_t s;
  scen_init(&s);
  s.handle_signals = 0;
  s.app_signals = 1;
  s.drain_ms = s.drain_min_ms = 600;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  const char *l = wait_line(c, "sigterm_handler ", 0);
  ck_assert_ptr_nonnull(l);
  ck_assert_str_eq(l, "sigterm_handler 0"); /* the library left SIGTERM alone */
  check_sigblk(c, "start", 3);
  wait_ready(c);
  uint64_t t_sig;
  term_and_wait_503(c, SIGUSR1, &t_sig);
  ck_assert_int_eq(th_status(c->port, "GET", "/health"), 200);
  uint64_t hook = hook_time(c, "flush", TS(3000));
  ck_assert_uint_ge(hook, t_sig + 600);
  l = wait_line(c, "handler ", TS(1000));
  ck_assert_ptr_nonnull(l);
  ck_assert_msg(strcmp(l, "handler 1 0") == 0, "handler runs / off the main thread: %s", l);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
}
END_TEST

START_TEST(test_no_exit_drain_fd) {
  scen_t s;
  scen_init(&s);
  s.exit_on_shutdown = 0;
  s.drain_watch = 1;
  s.drain_ms = s.drain_min_ms = 200;
  scen_hook(&s, "bad", 0, 0, HK_FAIL);
  child_t *c = &g_child;
  spawn(&s, c);
  const char *l = wait_line(c, "drainfd_before ", 0);
  ck_assert_ptr_nonnull(l);
  ck_assert_str_eq(l, "drainfd_before 0");
  wait_ready(c);
  ck_assert(!has_line(c, "on_drain ") && !has_line(c, "drain_fd "));
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  l = wait_line(c, "on_drain ", TS(2000));
  ck_assert_ptr_nonnull(l);
  unsigned long long t = 0;
  int draining = -1;
  ck_assert_int_eq(sscanf(l, "on_drain %llu %d", &t, &draining), 2);
  ck_assert_int_eq(draining, 1);
  ck_assert(t >= t_sig && t < t_sig + TS(100));
  l = wait_line(c, "drain_fd ", TS(2000));
  ck_assert_ptr_nonnull(l);
  ck_assert_int_eq(sscanf(l, "drain_fd %llu %d", &t, &draining), 2);
  ck_assert_int_eq(draining, 1);
  ck_assert(t >= t_sig && t < t_sig + TS(100));
  l = wait_line(c, "wait ", TS(3000));
  ck_assert_ptr_nonnull(l);
  int code = -1;
  ck_assert_int_eq(sscanf(l, "wait %d %llu", &code, &t), 2);
  ck_assert_int_eq(code, HEALTH_EXIT_HOOK_FAILED);
  ck_assert_uint_ge(t, t_sig + 200);
  /* health_wait() returned; the application exits by itself. */
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), 40 + HEALTH_EXIT_HOOK_FAILED);
}
END_TEST

/* ---- sd_notify ---- */

static int recv_msg(int fd, char *buf, size_t len, unsigned timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, (int)timeout_ms) <= 0) return 0;
  ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);
  if (n <= 0) return 0;
  buf[n] = 0;
  return 1;
}

START_TEST(test_sd_notify) {
  child_t *c = &g_child;
  g_ndir = th_tmpdir("notify");
  ck_assert_ptr_nonnull(g_ndir);
  char *path = g_nsock;
  snprintf(g_nsock, sizeof g_nsock, "%s/notify.sock", g_ndir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
  strcpy(sa.sun_path, path);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);

  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 300;
  s.check_delay_ms = 700;
  s.notify_path = path;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  spawn(&s, c);

  /* Not ready yet (the first check result is pending): no READY=1. */
  ck_assert_int_eq(th_status(c->port, "GET", "/ready"), 503);
  char msg[512];
  int ready = 0, watchdog = 0, stopping = 0;
  uint64_t deadline = th_now_ms() + TS(10000);
  while (!ready && th_now_ms() < deadline)
    if (recv_msg(fd, msg, sizeof msg, 100)) {
      ck_assert_ptr_null(strstr(msg, "STOPPING=1"));
      if (strstr(msg, "READY=1")) ready++;
    }
  ck_assert_msg(ready == 1, "no READY=1");
  ck_assert_int_eq(th_status(c->port, "GET", "/ready"), 200);

  /* WATCHDOG=1 every WATCHDOG_USEC / 2. */
  uint64_t t = th_now_ms();
  while (th_now_ms() < t + TS(300))
    if (recv_msg(fd, msg, sizeof msg, 10)) {
      if (strstr(msg, "WATCHDOG=1")) watchdog++;
      if (strstr(msg, "READY=1")) ready++;
      ck_assert_ptr_null(strstr(msg, "STOPPING=1"));
    }
  ck_assert_msg(watchdog >= 2, "%d WATCHDOG=1 in %u ms", watchdog, TS(300));

  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  deadline = th_now_ms() + TS(3000);
  while (!stopping && th_now_ms() < deadline)
    if (recv_msg(fd, msg, sizeof msg, 50)) {
      if (strstr(msg, "STOPPING=1")) stopping = 1;
      if (strstr(msg, "READY=1")) ready++;
    }
  ck_assert_msg(stopping, "no STOPPING=1 after SIGTERM");
  ck_assert_uint_lt(th_now_ms(), t_sig + TS(1000));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  while (recv_msg(fd, msg, sizeof msg, 0))
    if (strstr(msg, "READY=1")) ready++;
  ck_assert_int_eq(ready, 1); /* once */
  close(fd);
}
END_TEST

/* systemd busy (its queue full): nothing in the library may wait for it,
 * neither the request path (READY=1 goes out with the state lock held) nor
 * the shutdown sequence (STOPPING=1) nor health_stop(). */
START_TEST(test_sd_notify_never_blocks) {
  child_t *c = &g_child;
  g_ndir = th_tmpdir("notify");
  ck_assert_ptr_nonnull(g_ndir);
  char *path = g_nsock;
  snprintf(g_nsock, sizeof g_nsock, "%s/notify.sock", g_ndir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  /* Fill the receive queue: the next datagram would block its sender. */
  int tx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int queued = 0;
  while (queued < 100000 &&
         sendto(tx, "X=1", 3, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa) == 3)
    queued++;
  ck_assert_int_eq(errno, EAGAIN);
  ck_assert_int_gt(queued, 0);
  close(tx);

  scen_t s;
  scen_init(&s);
  s.drain_ms = s.drain_min_ms = 100;
  s.check_delay_ms = 100; /* READY=1 from a check result, under the lock */
  s.check_interval_ms = 50;
  s.notify_path = path;
  scen_hook(&s, "flush", 0, 0, HK_OK);
  spawn(&s, c);
  wait_ready(c);
  ck_assert_int_eq(th_status(c->port, "GET", "/health"), 200);
  /* systemd catches up: the dropped READY=1 is sent again. */
  char msg[512];
  int ready = 0;
  for (int i = 0; i <= queued && recv_msg(fd, msg, sizeof msg, 0); i++)
    if (strstr(msg, "READY=1")) ready++;
  uint64_t deadline = th_now_ms() + TS(3000);
  while (!ready && th_now_ms() < deadline)
    if (recv_msg(fd, msg, sizeof msg, 50) && strstr(msg, "READY=1")) ready++;
  ck_assert_msg(ready == 1, "READY=1 was not sent again once the queue had room");
  uint64_t t_sig;
  term_and_wait_503(c, SIGTERM, &t_sig);
  hook_time(c, "flush", TS(3000));
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), HEALTH_EXIT_OK);
  close(fd);
}
END_TEST

/* ---- a hostile process around the library (issue 23) ---- */

static int pipe_full(void *arg) {
  child_t *c = arg;
  int n = 0;
  /* Less than one stdio buffer (4096) left: the next write blocks. */
  return ioctl(c->stuck, FIONREAD, &n) == 0 && n > 65536 - 4096;
}

/* The application's stdout is a pipe nobody reads, an application thread
 * blocked in it holding stdout's lock: the exit must not wait for stdio
 * (once fflush(NULL) before _exit() waited forever). */
static void stdout_stuck_case(int log_off) {
  scen_t s;
  scen_init(&s);
  s.stdout_stuck = 1;
  s.log_off = log_off;
  s.deadline_ms = 3000;
  scen_hook(&s, "flush", 1, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  ck_assert_msg(th_wait_until(pipe_full, c, TS(5000)), "the child's stdout pipe never filled");
  uint64_t t_sig = th_now_ms(), t_exit = 0;
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  int rc = wait_exit(c, TS(3000) + 3000, &t_exit);
  ck_assert_msg(rc == HEALTH_EXIT_OK, "exit %d (-1: still running %llu ms after SIGTERM)", rc,
                (unsigned long long)(th_now_ms() - t_sig));
  ck_assert(has_line(c, "hook flush "));
  fprintf(stderr, "check_shutdown: stdout stuck%s: exit 0 after %llu ms (deadline 3000 ms)\n",
          log_off ? ", log off" : "", (unsigned long long)(t_exit - t_sig));
  ck_assert_msg(t_exit < t_sig + 3000 + TS(1000), "exit after %llu ms",
                (unsigned long long)(t_exit - t_sig));
  if (!log_off) ck_assert(log_has(c, "\"event\":\"shutdown_complete\",\"exit_code\":0"));
}

START_TEST(test_stdout_stuck) { stdout_stuck_case(0); }
END_TEST

START_TEST(test_stdout_stuck_log_off) { stdout_stuck_case(1); }
END_TEST

/* These two cannot pass under tools whose own exit waits for the stuck
 * stream: TSan's _exit() interceptor flushes stdout (OnExit ->
 * FlushStreams in tsan_interceptors_posix.cpp), and valgrind never ends a
 * process with a thread blocked writing to a full pipe (a plain program
 * doing that and _exit(0) hangs under it too).  ASan's exit does not wait. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* A log sink that never returns, and a hook that never returns: the
 * watchdog ends the process at the deadline (+100 ms grace). */
START_TEST(test_watchdog_deadline) {
  scen_t s;
  scen_init(&s);
  s.log_block = 1;
  s.deadline_ms = 1000;
  scen_hook(&s, "hang", 1, 60000, HK_HANG);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig = th_now_ms(), t_exit = 0;
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  int rc = wait_exit(c, TS(3000) + 3000, &t_exit);
  ck_assert_msg(rc == HEALTH_EXIT_DEADLINE, "exit %d (-1: still running %llu ms after SIGTERM)", rc,
                (unsigned long long)(th_now_ms() - t_sig));
  fprintf(stderr,
          "check_shutdown: sink and hook blocked: exit %d after %llu ms (deadline 1000 ms)\n", rc,
          (unsigned long long)(t_exit - t_sig));
  /* Not before the deadline; after it by the grace and the machine's load. */
  ck_assert_msg(t_exit >= t_sig + 1000 && t_exit < t_sig + 1100 + TS(1000), "exit after %llu ms",
                (unsigned long long)(t_exit - t_sig));
}
END_TEST

/* A drain callback that never returns holds the shutdown thread: the
 * watchdog ends the process at the deadline and says so in the log, which
 * still takes lines. */
START_TEST(test_watchdog_line) {
  scen_t s;
  scen_init(&s);
  s.drain_hang = 1; /* no watch thread: a finished one left unjoined at
                     * the watchdog's _exit() is a TSan "thread leak" */
  s.deadline_ms = 1000;
  scen_hook(&s, "flush", 1, 500, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig = th_now_ms(), t_exit = 0;
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  ck_assert_ptr_nonnull(wait_line(c, "on_drain ", TS(2000)));
  int rc = wait_exit(c, TS(3000) + 3000, &t_exit);
  ck_assert_msg(rc == HEALTH_EXIT_DEADLINE, "exit %d (-1: still running %llu ms after SIGTERM)", rc,
                (unsigned long long)(th_now_ms() - t_sig));
  ck_assert_msg(t_exit >= t_sig + 1000 && t_exit < t_sig + 1150 + TS(1000), "exit after %llu ms",
                (unsigned long long)(t_exit - t_sig));
  /* The hook never ran: the sequence never got past the callback. */
  ck_assert(!has_line(c, "hook flush "));
  ck_assert_msg(log_has(c, "\"event\":\"shutdown_watchdog\",\"deadline_ms\":1000,\"exit_code\":5"),
                "no shutdown_watchdog line in the log");
}
END_TEST

/* The same without exit_on_shutdown: health_wait() returns the deadline's
 * code while the sequence is still blocked in the sink. */
START_TEST(test_watchdog_wait) {
  scen_t s;
  scen_init(&s);
  s.log_block = 1;
  s.exit_on_shutdown = 0;
  s.deadline_ms = 1000;
  scen_hook(&s, "hang", 1, 60000, HK_HANG);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig = th_now_ms();
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  const char *l = wait_line(c, "wait ", TS(3000) + 3000);
  ck_assert_msg(l != NULL, "health_wait() did not return %llu ms after SIGTERM",
                (unsigned long long)(th_now_ms() - t_sig));
  int code = -1;
  unsigned long long t = 0;
  ck_assert_int_eq(sscanf(l, "wait %d %llu", &code, &t), 2);
  ck_assert_int_eq(code, HEALTH_EXIT_DEADLINE);
  ck_assert_msg(t >= t_sig + 1000 && t < t_sig + 1100 + TS(1000),
                "health_wait() returned after %llu ms", t - t_sig);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), 40 + HEALTH_EXIT_DEADLINE);
}
END_TEST

/* Without exit_on_shutdown, a drain callback that never returns: the
 * watchdog answers health_wait() at the deadline; health_free() then waits
 * a second for the sequence and leaves the handle running (it returned at
 * once? it would free what the blocked thread uses; it waited for good?
 * the application could never exit). */
START_TEST(test_stop_leaves_blocked_sequence) {
  scen_t s;
  scen_init(&s);
  s.exit_on_shutdown = 0;
  s.drain_hang = 1; /* no watch thread: a finished one left unjoined at
                     * the watchdog's _exit() is a TSan "thread leak" */
  s.deadline_ms = 1000;
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  uint64_t t_sig = th_now_ms();
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  const char *l = wait_line(c, "wait ", TS(3000) + 3000);
  ck_assert_msg(l != NULL, "health_wait() did not return %llu ms after SIGTERM",
                (unsigned long long)(th_now_ms() - t_sig));
  int code = -1;
  unsigned long long t_wait = 0, t_freed = 0;
  ck_assert_int_eq(sscanf(l, "wait %d %llu", &code, &t_wait), 2);
  ck_assert_int_eq(code, HEALTH_EXIT_DEADLINE);
  l = wait_line(c, "freed ", TS(1000) + 3000);
  ck_assert_msg(l != NULL, "health_free() did not return %llu ms after health_wait()",
                (unsigned long long)(th_now_ms() - t_wait));
  ck_assert_int_eq(sscanf(l, "freed %llu", &t_freed), 1);
  ck_assert_msg(t_freed >= t_wait + 900 && t_freed < t_wait + 1000 + TS(1000),
                "health_free() returned %llu ms after health_wait()", t_freed - t_wait);
  ck_assert_int_eq(wait_exit(c, TS(5000), NULL), 40 + HEALTH_EXIT_DEADLINE);
  ck_assert(log_has(c, "\"event\":\"shutdown_watchdog\""));
  ck_assert(log_has(c, "\"event\":\"stop_incomplete\""));
}
END_TEST

/* No thread can be made after start (RLIMIT_NPROC): the first hook runs on
 * the runner reserved at start; one that hangs keeps it at its timeout; the
 * next runs on the sequence thread.  Exit 4: a hook timed out, none
 * "failed". */
START_TEST(test_hooks_without_threads) {
  scen_t s;
  scen_init(&s);
  s.no_threads = 1;
  s.deadline_ms = 5000;
  scen_hook(&s, "first", 1, 0, HK_OK);
  scen_hook(&s, "hang", 2, 300, HK_HANG);
  scen_hook(&s, "last", 3, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  const char *l = wait_line(c, "nproc ", TS(5000));
  ck_assert_ptr_nonnull(l);
  ck_assert_msg(strcmp(l, "nproc enforced") == 0, "RLIMIT_NPROC is not enforced here: %s", l);
  wait_ready(c);
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  int rc = wait_exit(c, TS(5000), NULL);
  ck_assert(has_line(c, "hook first "));
  ck_assert(has_line(c, "hook hang "));
  ck_assert(has_line(c, "hook last "));
  ck_assert_int_eq(rc, HEALTH_EXIT_HOOK_TIMEOUT);
  ck_assert(log_has(c, "\"event\":\"hook_done\",\"hook\":\"first\",\"result\":\"ok\""));
  ck_assert(log_has(c, "\"event\":\"hook_inline\",\"hook\":\"last\""));
  ck_assert(log_has(c, "\"event\":\"hook_done\",\"hook\":\"last\",\"result\":\"ok\""));
  ck_assert(!log_has(c, "\"event\":\"hook_failed\""));
}
END_TEST

/* Every hook runs with no descriptor left: none is needed at SIGTERM. */
START_TEST(test_hooks_without_fds) {
  scen_t s;
  scen_init(&s);
  s.deadline_ms = 5000;
  s.drain_watch = 0;
  scen_hook(&s, "first", 1, 0, HK_OK);
  scen_hook(&s, "second", 2, 0, HK_OK);
  child_t *c = &g_child;
  spawn(&s, c);
  wait_ready(c);
  /* Fill the child's descriptor table from outside: lower its limit to
   * what it has open now. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)c->pid);
  DIR *d = opendir(path);
  ck_assert_ptr_nonnull(d);
  char open_fd[1024] = {0};
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] != '.' && fd >= 0 && fd < (int)sizeof open_fd) open_fd[fd] = 1;
  }
  closedir(d);
  /* The limit at the lowest free descriptor: no free slot at all. */
  int lowest = 0;
  while (lowest < (int)sizeof open_fd && open_fd[lowest]) lowest++;
  ck_assert_int_gt(lowest, 3);
  struct rlimit rl = {(rlim_t)lowest, (rlim_t)lowest};
  ck_assert_int_eq(prlimit(c->pid, RLIMIT_NOFILE, &rl, NULL), 0);
  ck_assert_int_eq(kill(c->pid, SIGTERM), 0);
  int rc = wait_exit(c, TS(5000), NULL);
  ck_assert(has_line(c, "hook first "));
  ck_assert(has_line(c, "hook second "));
  ck_assert_int_eq(rc, HEALTH_EXIT_OK);
}
END_TEST

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void base_setup(void) {
  g_base = th_tmpdir("shutdown-suite");
  ck_assert_ptr_nonnull(g_base);
  setenv("TMPDIR", g_base, 1); /* th_tmpdir() creates below it */
}

static void base_teardown(void) {
  if (g_base) nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(g_base);
  g_base = NULL;
}

static Suite *shutdown_suite(void) {
  Suite *s = suite_create("shutdown");
  TCase *tc = tcase_create("sequence");
  tcase_set_timeout(tc, 30);
  tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
  tcase_add_checked_fixture(tc, NULL, child_cleanup);
  tcase_add_test(tc, test_drain_window);
  tcase_add_test(tc, test_drain_ends_early);
  tcase_add_test(tc, test_drain_waits_for_inflight);
  tcase_add_test(tc, test_hook_order);
  tcase_add_test(tc, test_hook_timeout);
  tcase_add_test(tc, test_hook_failed);
  tcase_add_test(tc, test_deadline);
  tcase_add_test(tc, test_second_signal);
  tcase_add_test(tc, test_third_signal);
  tcase_add_test(tc, test_signal_burst);
  tcase_add_test(tc, test_app_owned_signals);
  tcase_add_test(tc, test_no_exit_drain_fd);
  tcase_add_test(tc, test_sd_notify);
  tcase_add_test(tc, test_sd_notify_never_blocks);
  if (!UNDER_TSAN && !th_under_valgrind()) {
    tcase_add_test(tc, test_stdout_stuck);
    tcase_add_test(tc, test_stdout_stuck_log_off);
  }
  tcase_add_test(tc, test_watchdog_deadline);
  tcase_add_test(tc, test_watchdog_line);
  tcase_add_test(tc, test_watchdog_wait);
  tcase_add_test(tc, test_stop_leaves_blocked_sequence);
  tcase_add_test(tc, test_hooks_without_threads);
  tcase_add_test(tc, test_hooks_without_fds);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return th_run_suite(shutdown_suite(), CK_ENV, CK_FORK) ? 1 : 0; /* children, signals, _exit() */
}
