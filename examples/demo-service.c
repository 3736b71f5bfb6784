/* demo-service: a small HTTP service that uses libhealth for checks, /health, /ready and a lossless
 * shutdown. */
/*
 * Application port PORT (default 8080):
 *   GET  /            200 "ok"
 *   POST /work        records the body, answers 200 once recorded
 *   GET  /slow?ms=N   answers after N ms (N <= 60000)
 *   GET  /ready, /health, /metrics: the library's answers, rendered by
 *        health_answer_render() (for a load balancer that probes the one port)
 *   POST /stall?ms=N  blocks the work loop for N ms (N <= 60000): its
 *                     heartbeat goes stale after WORK_MAX_AGE_MS
 *   POST /admin/not-ready[?reason=TEXT], POST /admin/ready
 *                     manual readiness (no authentication: a demo)
 * Health port HEALTH_PORT (default 8081; "off": none): /health, /ready,
 * /ready?check=NAME, /metrics (Prometheus).  Every status transition is
 * logged by a status listener.
 * DATABASE_URL and REDIS_URL (+ REDIS_CA_FILE, REDIS_CERT_FILE,
 * REDIS_KEY_FILE) add the built-in checks.  On SIGTERM the flush hook writes
 * every recorded body to FLUSH_FILE (one per line, fsynced) before exit.
 * A work loop beats the "work-loop" heartbeat (max age WORK_MAX_AGE_MS,
 * default 1000) and opens the "warm-up" startup gate STARTUP_DELAY_MS
 * (default 0) after start; HEALTH_STARTUP_DEADLINE_MS and HEALTH_AGENT_PORT
 * (HAProxy agent-check) come from the environment.
 */
#define _GNU_SOURCE
#include <health.h>
#include <microhttpd.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (64 * 1024)

static health_t *health;
static struct MHD_Daemon *app;

/* Recorded work, appended by request threads, written by the flush hook. */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static char **work;
static size_t nwork, capwork;
static int work_closed; /* set by the flush hook: later POSTs get 503 */
/* Requests in progress on the application port, and whether the server is
 * closing (answers then carry "Connection: close" so that no client or load
 * balancer reuses a connection that is about to go away). */
static atomic_int app_inflight;
static atomic_int app_closing;
static const char *flush_file;

/*
 * The demo's own log lines never block and never raise SIGPIPE, as the
 * library's do not: a log driver that stops reading (a full pipe) or goes
 * away must not stall the work loop (its heartbeat), the flush hook or a
 * request.  So no stdio (a thread blocked in fprintf holds stderr's lock,
 * and the exit's fflush would wait for it): one write(2) of the whole
 * line (well under PIPE_BUF: atomic on a pipe), only when poll says there
 * is room now, through an O_NONBLOCK descriptor of our own when stderr is
 * a pipe (reopened through /proc: fd 2's own flags stay as they are).  A
 * line that does not fit now is dropped.  SIGPIPE is blocked around the
 * write and one it raised is consumed.
 */
static int log_fd = STDERR_FILENO, log_sock;

static void log_open(void) {
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) {
    log_fd = -1; /* stderr closed: no log */
    return;
  }
  log_sock = S_ISSOCK(st.st_mode);
  if (S_ISFIFO(st.st_mode)) {
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd > 2) log_fd = fd;
    else if (fd >= 0) close(fd);
  }
}

static void log_write(const char *line, size_t n) {
  if (log_fd < 0) return;
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  struct pollfd p = {log_fd, POLLOUT, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
    if (log_sock) (void)!send(log_fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    else (void)!write(log_fd, line, n);
  }
  if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void logj(const char *level, const char *event, const char *fmt, ...) {
  char msg[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  for (char *p = msg; *p; p++)
    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char line[768];
  int n = snprintf(
      line, sizeof line,
      "{\"mono_ms\":%lld.%03ld,\"level\":\"%s\",\"app\":\"demo-service\",\"event\":\"%s\",\"message\":\"%s\"}\n",
      (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, (ts.tv_nsec / 1000) % 1000, level, event,
      msg);
  if (n > 0) log_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  logj("warn", "http_server", "%s", msg);
}

/* 0 recorded, -1 closed (shutting down), -2 out of memory. */
static int record(const char *body, size_t len) {
  char *copy = malloc(len + 1);
  if (!copy) return -2;
  for (size_t i = 0; i < len; i++) copy[i] = (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i];
  copy[len] = 0;
  pthread_mutex_lock(&work_lock);
  int rc = 0;
  if (work_closed) rc = -1;
  else if (nwork == capwork) {
    size_t cap = capwork ? capwork * 2 : 256;
    char **g = realloc(work, cap * sizeof *g);
    if (!g) rc = -2;
    else {
      work = g;
      capwork = cap;
    }
  }
  if (rc == 0) work[nwork++] = copy;
  pthread_mutex_unlock(&work_lock);
  if (rc) free(copy);
  return rc;
}

typedef struct {
  char *body;
  size_t len;
  int too_big;
} req_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain");
  if (atomic_load(&app_closing)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

/* The library's answers on the application's port: health_answer_render() hands
 * out the body rendered once per change of state (the same bytes the
 * health port sends); the detail policy and the Accept header apply. */
static unsigned health_route(const char *url) {
  if (strcmp(url, "/ready") == 0) return HEALTH_READINESS;
  if (strcmp(url, "/health") == 0) return HEALTH_LIVENESS;
  if (strcmp(url, "/metrics") == 0) return HEALTH_METRICS;
  return 0;
}

/* *con_cls of a request for one of the library's answers. */
static char health_request;

static enum MHD_Result serve_health(struct MHD_Connection *c, unsigned what) {
  health_answer_t a;
  const char *check = what == HEALTH_METRICS
                          ? NULL
                          : MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "check");
  if (health_answer_render(
          health, what, check,
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT), &a, NULL) != 0)
    return MHD_NO;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(a.body_len, (void *)a.body, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret = MHD_NO;
  if (r) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a.content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(c, a.code, r);
    MHD_destroy_response(r);
  }
  health_answer_release(&a);
  return ret;
}

/* Status listener: runs on the library's notifier thread, in order. */
static const char *status_word(health_status_t s) {
  return s == HEALTH_PASS   ? "pass"
         : s == HEALTH_WARN ? "warn"
         : s == HEALTH_FAIL ? "fail"
                            : "pending";
}

static void on_transition(const health_transition_t *t, void *arg) {
  (void)arg;
  logj(t->to == HEALTH_FAIL ? "warn" : "info", "transition", "%s %s -> %s (%s)",
       t->check                         ? t->check
       : t->subject == HEALTH_READINESS ? "readiness"
                                        : "liveness",
       status_word(t->from), status_word(t->to), t->reason);
}

/* ---- liveness: the work loop, its heartbeat, stalls, manual readiness and
 * the startup gate ---- */
static health_heartbeat_t *work_hb;
static atomic_long stall_request; /* ms the loop must block for, 0: none */
static atomic_int loop_quit;
static pthread_t loop_thread;
static unsigned long startup_delay_ms;

static long env_ms(const char *var, long def, long max) {
  const char *v = getenv(var);
  if (!v || !*v) return def;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 0 || n > max || v[0] < '0' || v[0] > '9') {
    logj("error", "bad_config", "%s must be a whole number of ms from 0 to %ld", var, max);
    return -1;
  }
  return n;
}

static void *work_loop(void *arg) {
  (void)arg;
  struct timespec t0, now, tick = {0, 10 * 1000000L};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int gate_open = 0;
  while (!atomic_load(&loop_quit)) {
    health_heartbeat_beat(work_hb);
    if (!gate_open) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      long long el =
          (long long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
      if (el >= (long long)startup_delay_ms) {
        health_gate_open(health, "warm-up", NULL);
        gate_open = 1;
        logj("info", "warmed_up", "startup gate opened after %lld ms", el);
      }
    }
    long ms = atomic_exchange(&stall_request, 0);
    if (ms > 0) { /* the loop is stuck: no beat until it ends */
      logj("info", "stall", "work loop blocked for %ld ms", ms);
      struct timespec st = {ms / 1000, (ms % 1000) * 1000000L};
      while (nanosleep(&st, &st) < 0 && errno == EINTR) {}
      logj("info", "stall_end", "work loop running again");
    }
    nanosleep(&tick, NULL);
  }
  return NULL;
}

/* Before health_start(): heartbeat and gate. */
static int liveness_setup(void) {
  health_error_t err;
  long max_age = env_ms("WORK_MAX_AGE_MS", 1000, 86400000);
  long delay = env_ms("STARTUP_DELAY_MS", 0, 3600000);
  if (max_age < 0 || delay < 0) return -1;
  startup_delay_ms = (unsigned long)delay;
  if (health_heartbeat_add(health, "work-loop", (unsigned)max_age, &work_hb, &err) != 0 ||
      health_gate_add(health, "warm-up", &err) != 0) {
    logj("error", "bad_config", "%s", err.text);
    return -1;
  }
  return 0;
}

static int liveness_start(void) {
  return pthread_create(&loop_thread, NULL, work_loop, NULL) == 0 ? 0 : -1;
}

static void liveness_stop(void) {
  atomic_store(&loop_quit, 1);
  pthread_join(loop_thread, NULL);
}

/* POST /stall, /admin/not-ready, /admin/ready; 0 when `url` is not one. */
static int liveness_route(struct MHD_Connection *c, const char *url, const char *method,
                          enum MHD_Result *ret) {
  int stall = strcmp(url, "/stall") == 0, nr = strcmp(url, "/admin/not-ready") == 0,
      ready = strcmp(url, "/admin/ready") == 0;
  if (!stall && !nr && !ready) return 0;
  if (strcmp(method, "POST") != 0) {
    *ret = reply(c, 405, "use POST\n");
    return 1;
  }
  if (stall) {
    const char *ms = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ms");
    char *end = NULL;
    long n = ms && *ms >= '0' && *ms <= '9' ? strtol(ms, &end, 10) : -1;
    if (n < 0 || *end || n > 60000) {
      *ret = reply(c, 400, "ms must be 0..60000\n");
      return 1;
    }
    atomic_store(&stall_request, n);
    *ret = reply(c, 202, "stalling the work loop\n");
  } else if (nr) {
    const char *why = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reason");
    health_error_t err;
    if (health_ready_hold(health, why && *why ? why : "maintenance", &err) != 0) {
      *ret = reply(c, 400, "reason must be 1-256 printable characters\n");
      return 1;
    }
    *ret = reply(c, 200, "not ready\n");
  } else {
    health_ready_release(health, NULL);
    *ret = reply(c, 200, "ready\n");
  }
  return 1;
}

static enum MHD_Result app_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *data,
                                   size_t *data_size, void **con_cls) {
  (void)cls;
  (void)version;
  unsigned what = health_route(url);
  if (what && *con_cls == &health_request) return serve_health(c, what);
  if (what && !*con_cls) { /* probes are not work: not counted in flight */
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
      return reply(c, 405, "method not allowed\n");
    *con_cls = &health_request; /* answered on the next call */
    return MHD_YES;
  }
  req_t *rq = *con_cls;
  if (!rq) {
    rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    *con_cls = rq;
    atomic_fetch_add(&app_inflight, 1);
    health_inflight_begin(health);
    return MHD_YES;
  }
  if (strcmp(url, "/work") == 0 && strcmp(method, "POST") == 0) {
    if (*data_size) {
      if (rq->len + *data_size > MAX_BODY) rq->too_big = 1;
      else {
        char *g = realloc(rq->body, rq->len + *data_size + 1);
        if (!g) return MHD_NO;
        memcpy(g + rq->len, data, *data_size);
        rq->body = g;
        rq->len += *data_size;
      }
      *data_size = 0;
      return MHD_YES;
    }
    if (rq->too_big) return reply(c, 413, "body too large\n");
    int rc = record(rq->body ? rq->body : "", rq->len);
    if (rc == -1) return reply(c, 503, "shutting down\n");
    if (rc < 0) return reply(c, 500, "out of memory\n");
    return reply(c, 200, "recorded\n");
  }
  if (*data_size) { /* ignore bodies elsewhere */
    *data_size = 0;
    return MHD_YES;
  }
  enum MHD_Result lr;
  if (liveness_route(c, url, method, &lr)) return lr;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(c, 405, "method not allowed\n");
  if (strcmp(url, "/") == 0) return reply(c, 200, "ok\n");
  if (strcmp(url, "/slow") == 0) {
    const char *ms = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ms");
    char *end = NULL;
    long n = ms ? strtol(ms, &end, 10) : -1;
    if (!ms || !*ms || *end || n < 0 || n > 60000) return reply(c, 400, "ms must be 0..60000\n");
    struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    return reply(c, 200, "slow done\n");
  }
  return reply(c, 404, "not found\n");
}

static void app_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  req_t *rq = *con_cls;
  if (!rq || *con_cls == &health_request) return;
  free(rq->body);
  free(rq);
  *con_cls = NULL;
  atomic_fetch_sub(&app_inflight, 1);
  health_inflight_end(health);
}

/* Custom check: the flush file's directory must be writable, or a
 * shutdown would lose the recorded work. */
static void check_flush_dir(health_result_t *r, void *arg) {
  (void)arg;
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", flush_file);
  char *slash = strrchr(dir, '/');
  if (slash == dir) dir[1] = 0;
  else if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  if (access(dir, W_OK) != 0) {
    health_result_set(r, HEALTH_FAIL, "flush directory not writable: %s", strerror(errno));
    return;
  }
  pthread_mutex_lock(&work_lock);
  size_t n = nwork;
  pthread_mutex_unlock(&work_lock);
  health_result_observe(r, (double)n, "records");
  health_result_set(r, HEALTH_PASS, NULL);
}

/* Hook 1: stop taking connections and let requests in flight finish, within
 * the hook's budget; connections kept alive are closed after their current
 * answer. */
static int hook_stop_app(void *arg, unsigned budget_ms) {
  (void)arg;
  atomic_store(&app_closing, 1);
  MHD_socket fd = MHD_quiesce_daemon(app);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  struct timespec t0, now, nap = {0, 5 * 1000000L};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int n = atomic_load(&app_inflight);
    if (n <= 0) return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long el =
        (long long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (budget_ms > 10 && el >= (long long)budget_ms - 10) {
      logj("warn", "requests_cut", "%d requests still in flight after %lld ms", n, el);
      return 0;
    }
    nanosleep(&nap, NULL);
  }
}

/* Hook 2: refuse new work, then write and fsync every recorded body. */
static int hook_flush(void *arg, unsigned budget_ms) {
  (void)arg;
  (void)budget_ms;
  pthread_mutex_lock(&work_lock);
  work_closed = 1;
  pthread_mutex_unlock(&work_lock);
  int fd = open(flush_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    logj("error", "flush_failed", "open: %s", strerror(errno));
    return 1;
  }
  int rc = 0;
  for (size_t i = 0; i < nwork && rc == 0; i++) {
    size_t len = strlen(work[i]);
    char *line = malloc(len + 1);
    if (!line) {
      rc = 1;
      break;
    }
    memcpy(line, work[i], len);
    line[len] = '\n';
    size_t off = 0;
    while (off < len + 1) {
      ssize_t w = write(fd, line + off, len + 1 - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        rc = 1;
        break;
      }
      off += (size_t)w;
    }
    free(line);
  }
  if (rc == 0 && fsync(fd) != 0) rc = 1;
  if (close(fd) != 0) rc = 1;
  logj(rc ? "error" : "info", "flushed", "%zu records to the flush file%s", nwork,
       rc ? " FAILED" : "");
  return rc;
}

static int env_port(const char *var, unsigned def, unsigned *out) {
  const char *v = getenv(var);
  if (!v || !*v) {
    *out = def;
    return 0;
  }
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 1 || n > 65535) {
    logj("error", "bad_config", "%s must be a port number 1-65535", var);
    return -1;
  }
  *out = (unsigned)n;
  return 0;
}

/* `demo-service --healthcheck`: the service binary is its own container
 * HEALTHCHECK (no curl in the image): GET /health on HEALTH_PORT. */
static int healthcheck(void) {
  unsigned port;
  const char *hp = getenv("HEALTH_PORT");
  if (hp && strcmp(hp, "off") == 0) { /* answered on the application port */
    if (env_port("PORT", 8080, &port) < 0) return 1;
  } else if (env_port("HEALTH_PORT", 8081, &port) < 0) {
    return 1;
  }
  char url[64], reason[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/health", port);
  int rc = health_probe(url, 2000, reason, sizeof reason);
  if (rc != 0) fprintf(stderr, "demo-service --healthcheck: %s\n", reason);
  return rc;
}

int main(int argc, char **argv) {
  /* As real services do: the library's output must not follow LC_NUMERIC
   * (tests/demo-drain.sh runs the demo under de_DE.UTF-8). */
  setlocale(LC_ALL, "");
  if (argc == 2 && strcmp(argv[1], "--healthcheck") == 0) return healthcheck();
  if (argc > 1) {
    fprintf(stderr, "usage: demo-service [--healthcheck]\n");
    return 2;
  }
  log_open();
  health_error_t err;
  health_options_t opts;
  health_options_init(&opts);
  opts.description = "libhealth demo service";
  opts.service_id = "demo-service";
  unsigned port;
  if (env_port("PORT", 8080, &port) < 0) return 2;
  flush_file = getenv("FLUSH_FILE");
  if (!flush_file || !*flush_file) flush_file = "demo-flush.log";

  if (health_new(&health, &opts, &err) != 0) {
    logj("error", "health_new", "%s", err.text);
    return 2;
  }
  /* Every HEALTH_* variable, all or nothing: the options, fleet, paths,
   * controls, HEALTH_NOFILE_MAX and the checks an operator adds without
   * recompiling: HEALTH_CHECK_<NAME>=<target> (tcp://, http(s)://,
   * disk:/path, memory:, fds:, postgresql://, redis(s)://). */
  if (health_config_from_env(health, &err) != 0) {
    logj("error", "bad_config", "%s", err.text);
    return 2;
  }
  health_check_options_t co;
  health_check_options_init(&co);
  co.endpoints = HEALTH_READINESS;
  co.component_type = "system";
  co.measurement = "records";
  if (health_check_add(health, "flush-file", check_flush_dir, NULL, NULL, &co, &err) != 0) {
    logj("error", "add_check", "%s", err.text);
    return 2;
  }
  const char *db = getenv("DATABASE_URL");
  if (db && *db && health_postgres_add(health, "postgres", db, NULL, NULL, &err) != 0) {
    logj("error", "add_postgres", "%s", err.text);
    return 2;
  }
  const char *redis = getenv("REDIS_URL");
  if (redis && *redis) {
    health_redis_options_t ro;
    health_redis_options_init(&ro);
    ro.ca_file = getenv("REDIS_CA_FILE");
    ro.cert_file = getenv("REDIS_CERT_FILE");
    ro.key_file = getenv("REDIS_KEY_FILE");
    if (health_redis_add(health, "redis", redis, &ro, NULL, &err) != 0) {
      logj("error", "add_redis", "%s", err.text);
      return 2;
    }
  }
  if (health_listener_add(health, on_transition, NULL, &err) != 0) {
    logj("error", "add_listener", "%s", err.text);
    return 2;
  }
  if (health_hook_add(health, "stop-app-server", 0, 2000, hook_stop_app, NULL, &err) != 0 ||
      health_hook_add(health, "flush-work", 10, 0, hook_flush, NULL, &err) != 0) {
    logj("error", "add_hook", "%s", err.text);
    return 2;
  }

  if (liveness_setup() != 0) return 2;

  /* The library keeps its own descriptors off 0-2; ours (the server's
   * sockets, the connections it accepts) are the application's business:
   * started with stdio closed, occupy 0-2 with /dev/null first, so that no
   * later printf of anyone writes into a connection. */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int n = open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) close(n);
    }
  app = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, app_handler, NULL,
                         /* not MHD's default logger: stdio, which blocks */
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                         app_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         /* no LISTENING_ADDRESS_REUSE: it means SO_REUSEPORT,
                          * so a busy port would be shared instead of failing */
                         MHD_OPTION_END);
  if (!app) {
    logj("error", "listen", "cannot listen on application port %u", port);
    return 2;
  }
  if (health_start(health, &err) != 0) {
    logj("error", "health_start", "%s", err.text);
    MHD_stop_daemon(app);
    return 2;
  }
  if (liveness_start() != 0) {
    logj("error", "work_loop", "cannot start the work loop thread");
    return 2;
  }
  logj("info", "listening", "application port %u, health port %u", port, health_port(health));

  /* Returns only when HEALTH_EXIT=0; otherwise the library exits the
   * process with the shutdown's exit code. */
  int code = health_wait(health);
  liveness_stop();
  health_free(health);
  MHD_stop_daemon(app);
  for (size_t i = 0; i < nwork; i++) free(work[i]);
  free(work);
  return code;
}
