/* prefork-service: a pre-fork server whose master owns libhealth and watches its workers through a
 * shared heartbeat. */
/*
 * The master binds the application port PORT (default 8080), forks WORKERS
 * (default 2, 1-64) workers, then starts the library (health port
 * HEALTH_PORT, default 8081, every HEALTH_* setting from the environment).
 * The workers accept on the shared listening socket, one request at a time:
 *   GET  /            200 "ok"
 *   GET  /slow?ms=N   answers after N ms (N <= 60000; the worker keeps beating)
 *   POST /work        appends the body to FLUSH_FILE (O_APPEND, one write)
 *                     before answering 200: an acknowledged body is in the
 *                     file; the master's hook fsyncs it at shutdown
 *   POST /stall?ms=N  blocks the worker N ms without beating
 * Each worker beats slot i of the shared heartbeat "workers" (max age
 * WORKER_MAX_AGE_MS, default 1000): a stalled or dead worker fails the
 * master's /health and /ready.  A worker that exits while the master runs
 * is replaced in its slot (SIGTERM to a worker is an orderly stop).
 *
 * SIGTERM to the master (the library owns it, exit_on_shutdown = 0):
 * readiness fails at once; workers keep serving through the drain; then the
 * hook "stop-workers" sends them SIGTERM (each finishes its request) and
 * waits for them within its budget (SIGKILL after it), the hook "flush"
 * fsyncs FLUSH_FILE, and main() returns the sequence's exit code with no
 * worker left.  Workers inherit no health port socket and none of the
 * library's signal handling (fork() makes their copy of the handle inert).
 */
#define _GNU_SOURCE
#include <health.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define MAX_REQUEST 65536

static health_t *health;
static health_heartbeat_shared_t *beats;
static int listen_fd = -1;
static const char *flush_file;
static unsigned nworkers = 2;
static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t workers[MAX_WORKERS]; /* 0: none in that slot */
static int stopping;               /* under workers_lock: no more replacements */

static void logj(const char *level, const char *event, const char *fmt, ...) {
  char msg[256] = "";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(
      stderr,
      "{\"mono_ms\":%lld,\"level\":\"%s\",\"app\":\"prefork-service\",\"pid\":%d,\"event\":\"%s\",\"message\":\"%s\"}\n",
      (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level, (int)getpid(), event, msg);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the worker ---- */

static volatile sig_atomic_t worker_stop;
static void worker_on_term(int sig) {
  (void)sig;
  worker_stop = 1;
}

/* Sleep ms; beat every 50 ms unless stalling. */
static void worker_sleep(unsigned slot, long ms, int beat) {
  uint64_t end = now_ms() + (uint64_t)ms;
  for (uint64_t t = now_ms(); t < end; t = now_ms()) {
    uint64_t step = end - t < 50 ? end - t : 50;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL); /* EINTR (SIGTERM): go on, the request is answered */
    if (beat) health_heartbeat_shared_beat(beats, slot);
  }
}

static void send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* the client went away */
    buf += n;
    len -= (size_t)n;
  }
}

static void answer(int fd, int code, const char *text) {
  char head[256];
  int n = snprintf(
      head, sizeof head,
      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
      code, code == 200 ? "OK" : "Error", strlen(text));
  send_all(fd, head, (size_t)n);
  send_all(fd, text, strlen(text));
}

static long query_ms(const char *target) {
  const char *q = strstr(target, "?ms=");
  if (!q) return -1;
  char *end;
  long ms = strtol(q + 4, &end, 10);
  return end == q + 4 || (*end && *end != ' ') || ms < 0 || ms > 60000 ? -1 : ms;
}

/* Read one request (head and Content-Length body) within 10 s. */
static ssize_t read_request(int fd, char *buf, size_t cap, char **body, size_t *body_len) {
  size_t got = 0;
  uint64_t end = now_ms() + 10000;
  for (;;) {
    buf[got] = 0;
    char *eoh = strstr(buf, "\r\n\r\n");
    if (eoh) {
      const char *cl = strcasestr(buf, "\r\nContent-Length:");
      size_t want = cl && cl < eoh ? strtoul(cl + 17, NULL, 10) : 0;
      *body = eoh + 4;
      if (want > cap - 1 - (size_t)(*body - buf)) return -1;
      if ((size_t)(buf + got - *body) >= want) {
        *body_len = want;
        return (ssize_t)got;
      }
    }
    uint64_t t = now_ms();
    if (got == cap - 1 || t >= end) return -1;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(end - t)) <= 0) continue;
    ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
}

static void serve(int fd, unsigned slot, int work_fd) {
  static char buf[MAX_REQUEST + 4096];
  char *body = NULL;
  size_t body_len = 0;
  if (read_request(fd, buf, sizeof buf, &body, &body_len) < 0) return;
  char method[8] = "", target[256] = "";
  if (sscanf(buf, "%7s %255s", method, target) != 2) {
    answer(fd, 400, "bad request\n");
  } else if (strcmp(method, "GET") == 0 && strcmp(target, "/") == 0) {
    answer(fd, 200, "ok\n");
  } else if (strcmp(method, "GET") == 0 && strncmp(target, "/slow", 5) == 0 &&
             query_ms(target) >= 0) {
    worker_sleep(slot, query_ms(target), 1);
    answer(fd, 200, "slow\n");
  } else if (strcmp(method, "POST") == 0 && strncmp(target, "/stall", 6) == 0 &&
             query_ms(target) >= 0) {
    worker_sleep(slot, query_ms(target), 0);
    answer(fd, 200, "stalled\n");
  } else if (strcmp(method, "POST") == 0 && strcmp(target, "/work") == 0) {
    /* One write() of the line with O_APPEND: lines of several workers
     * never interleave.  Acknowledged only once written. */
    for (size_t i = 0; i < body_len; i++)
      if (body[i] == '\n' || body[i] == '\r') body[i] = ' ';
    body[body_len] = '\n';
    int ok = work_fd >= 0 && write(work_fd, body, body_len + 1) == (ssize_t)(body_len + 1);
    answer(fd, ok ? 200 : 500, ok ? "recorded\n" : "not recorded\n");
  } else {
    answer(fd, 404, "not found\n");
  }
}

static void worker_main(unsigned slot) {
  /* fork() put back the master's prior SIGTERM disposition (the default):
   * a worker's SIGTERM means "finish the request and exit". */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = worker_on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGINT, SIG_IGN); /* a terminal's ^C is for the master */
  int work_fd = flush_file ? open(flush_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
  while (!worker_stop) {
    health_heartbeat_shared_beat(beats, slot);
    struct pollfd p = {listen_fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue; /* another worker took it, or EINTR */
    serve(fd, slot, work_fd);
    close(fd);
  }
  if (work_fd >= 0) close(work_fd);
  _exit(0);
}

/* ---- the master ---- */

static int spawn(unsigned slot) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) worker_main(slot);
  health_heartbeat_shared_attach(beats, slot, pid, NULL);
  workers[slot] = pid;
  logj("info", "worker_started", "slot %u pid %d", slot, (int)pid);
  return 0;
}

/* Reap exited workers; replace them unless stopping. */
static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    pthread_mutex_lock(&workers_lock);
    for (unsigned i = 0; i < nworkers; i++) {
      if (workers[i] != pid) continue;
      health_heartbeat_shared_detach(beats, i, NULL);
      workers[i] = 0;
      logj("warn", "worker_exited", "slot %u pid %d status %d", i, (int)pid, st);
      if (!stopping && spawn(i) != 0) logj("error", "fork", "%s", strerror(errno));
    }
    pthread_mutex_unlock(&workers_lock);
  }
}

/* Hook 1, after the drain: SIGTERM every worker, wait for them within the
 * budget, SIGKILL what is left. */
static int hook_stop_workers(void *arg, unsigned budget_ms) {
  (void)arg;
  pthread_mutex_lock(&workers_lock);
  stopping = 1;
  for (unsigned i = 0; i < nworkers; i++) {
    health_heartbeat_shared_detach(beats, i, NULL);
    if (workers[i] > 0) kill(workers[i], SIGTERM);
  }
  uint64_t end = now_ms() + (budget_ms > 200 ? budget_ms - 200 : budget_ms / 2);
  int left;
  do {
    left = 0;
    for (unsigned i = 0; i < nworkers; i++) {
      if (workers[i] <= 0) continue;
      pid_t r = waitpid(workers[i], NULL, WNOHANG);
      if (r == workers[i] || (r < 0 && errno == ECHILD)) workers[i] = 0; /* (main reaped it) */
      else left++;
    }
    if (left) {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
  } while (left && now_ms() < end);
  for (unsigned i = 0; i < nworkers; i++)
    if (workers[i] > 0) {
      logj("warn", "worker_killed", "slot %u pid %d outlived the budget", i, (int)workers[i]);
      kill(workers[i], SIGKILL);
      waitpid(workers[i], NULL, 0);
      workers[i] = 0;
    }
  pthread_mutex_unlock(&workers_lock);
  logj("info", "workers_stopped", "%s", left ? "some killed" : "all exited");
  return left ? 1 : 0;
}

/* Hook 2: the workers wrote every acknowledged body; make it durable. */
static int hook_flush(void *arg, unsigned budget_ms) {
  (void)arg;
  (void)budget_ms;
  if (!flush_file) return 0;
  int fd = open(flush_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  int rc = fsync(fd) != 0;
  return close(fd) != 0 || rc;
}

static int listen_on(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static long env_num(const char *var, long def, long lo, long hi) {
  const char *v = getenv(var);
  if (!v || !*v) return def;
  char *end;
  long n = strtol(v, &end, 10);
  return *end || n < lo || n > hi ? -1 : n;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  long port = env_num("PORT", 8080, 1, 65535), n = env_num("WORKERS", 2, 1, MAX_WORKERS),
       max_age = env_num("WORKER_MAX_AGE_MS", 1000, 100, 86400000);
  if (port < 0 || n < 0 || max_age < 0) {
    logj("error", "config", "PORT 1-65535, WORKERS 1-%d, WORKER_MAX_AGE_MS 100-86400000",
         MAX_WORKERS);
    return 2;
  }
  nworkers = (unsigned)n;
  flush_file = getenv("FLUSH_FILE");
  health_options_t opts;
  health_error_t err;
  health_options_init(&opts);
  opts.exit_on_shutdown = 0; /* main() returns once the workers are gone */
  if (health_new(&health, &opts, &err) != 0 || health_config_from_env(health, &err) != 0 ||
      health_heartbeat_shared_add(health, "workers", nworkers, (unsigned)max_age, &beats, &err) !=
          0 ||
      health_hook_add(health, "stop-workers", 0, 10000, hook_stop_workers, NULL, &err) != 0 ||
      health_hook_add(health, "flush", 1, 5000, hook_flush, NULL, &err) != 0) {
    logj("error", "health", "%s", err.text);
    return 1;
  }
  if ((listen_fd = listen_on((unsigned)port)) < 0) {
    logj("error", "listen", "port %ld: %s", port, strerror(errno));
    return 1;
  }
  /* Workers first: readiness passes only once they are attached (and they
   * never see the health port's socket). */
  pthread_mutex_lock(&workers_lock);
  for (unsigned i = 0; i < nworkers; i++)
    if (spawn(i) != 0) logj("error", "fork", "%s", strerror(errno));
  pthread_mutex_unlock(&workers_lock);
  if (health_start(health, &err) != 0) {
    logj("error", "health_start", "%s", err.text);
    hook_stop_workers(NULL, 2000);
    return 1;
  }
  /* Replace exited workers until the drain starts; then the hooks own them. */
  struct pollfd p = {health_drain_fd(health), POLLIN, 0};
  for (;;) {
    int r = poll(&p, 1, 100);
    if (r > 0 || (r < 0 && errno != EINTR)) break;
    reap();
  }
  logj("info", "draining", "the workers serve until the drain ends");
  int code = health_wait(health);
  close(listen_fd);
  health_free(health);
  return code;
}
