/* libevent-service: an evhttp service whose event loop cooperates with libhealth's SIGTERM
 * sequence. */
/*
 * Application port PORT (default 8080), one libevent loop on the main thread:
 *   GET  /            200 "ok"
 *   GET  /slow?ms=N   answers after N ms (a timer: the loop stays free)
 *   POST /work        records the body, answers 200 once recorded
 *   POST /stall?ms=N  blocks the loop for N ms (N <= 60000)
 * Health port HEALTH_PORT (default 8081) and every HEALTH_* setting from the
 * environment.  On SIGTERM (the library owns it, exit_on_shutdown = 0):
 * readiness fails at once, on the library's thread, whatever the loop is
 * doing; the loop sees health_drain_fd() readable and answers with
 * "Connection: close" from then on; after the drain the hook "stop-loop"
 * waits for the answers the loop still owes (within its budget) and ends the loop
 * (event_base_loopexit is thread-safe once evthread_use_pthreads() was called), the hook "flush"
 * writes every recorded body to FLUSH_FILE (one per line, fsynced), and main() returns
 * health_wait()'s exit code.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <health.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static health_t *health;
static struct event_base *base;
static atomic_int closing; /* draining: answers carry Connection: close */
static const char *flush_file;

/* Recorded work: appended by the loop, written by the flush hook. */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static char **work;
static size_t nwork, capwork;
static int work_closed;

static void logj(const char *level, const char *event, const char *msg) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(
      stderr,
      "{\"mono_ms\":%lld,\"level\":\"%s\",\"app\":\"libevent-service\",\"event\":\"%s\",\"message\":\"%s\"}\n",
      (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level, event, msg);
}

static void reply(struct evhttp_request *req, int code, const char *text) {
  struct evbuffer *b = evbuffer_new();
  if (b) evbuffer_add(b, text, strlen(text));
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "text/plain");
  if (atomic_load(&closing)) evhttp_add_header(out, "Connection", "close");
  evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
  if (b) evbuffer_free(b);
}

/* N of "?ms=N" (0-60000), or -1. */
static long query_ms(struct evhttp_request *req) {
  const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  struct evkeyvalq kv;
  if (!q || evhttp_parse_query_str(q, &kv) != 0) return -1;
  const char *v = evhttp_find_header(&kv, "ms");
  char *end = NULL;
  long ms = v ? strtol(v, &end, 10) : -1;
  if (!v || end == v || *end || ms < 0 || ms > 60000) ms = -1;
  evhttp_clear_headers(&kv);
  return ms;
}

/* 0 recorded, -1 closed (shutting down), -2 out of memory. */
static int record(const char *body, size_t len) {
  char *copy = malloc(len + 1);
  if (!copy) return -2;
  for (size_t i = 0; i < len; i++) copy[i] = (body[i] == '\n' || body[i] == '\r') ? ' ' : body[i];
  copy[len] = 0;
  pthread_mutex_lock(&work_lock);
  int rc = 0;
  if (work_closed) {
    rc = -1;
  } else if (nwork == capwork) {
    size_t cap = capwork ? capwork * 2 : 256;
    char **g = realloc(work, cap * sizeof *g);
    if (g) {
      work = g;
      capwork = cap;
    } else {
      rc = -2;
    }
  }
  if (rc == 0) work[nwork++] = copy;
  pthread_mutex_unlock(&work_lock);
  if (rc) free(copy);
  return rc;
}

typedef struct {
  struct evhttp_request *req;
  struct event *ev;
} slow_t;

/* Requests the loop still owes an answer (the /slow timers): the hook that
 * ends the loop waits for them, within its budget. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_cond = PTHREAD_COND_INITIALIZER;
static unsigned pending;

static void slow_done(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  slow_t *s = arg;
  reply(s->req, 200, "slow\n");
  event_free(s->ev);
  free(s);
  pthread_mutex_lock(&pending_lock);
  if (--pending == 0) pthread_cond_broadcast(&pending_cond);
  pthread_mutex_unlock(&pending_lock);
  health_inflight_end(health);
}

static void on_request(struct evhttp_request *req, void *arg) {
  (void)arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  enum evhttp_cmd_type m = evhttp_request_get_command(req);
  if (!path) path = "/";
  if (m == EVHTTP_REQ_GET && strcmp(path, "/") == 0) {
    reply(req, 200, "ok\n");
  } else if (m == EVHTTP_REQ_GET && strcmp(path, "/slow") == 0) {
    long ms = query_ms(req);
    slow_t *s = ms < 0 ? NULL : calloc(1, sizeof *s);
    if (!s) {
      reply(req, 400, "ms must be 0-60000\n");
      return;
    }
    s->req = req;
    s->ev = evtimer_new(base, slow_done, s);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    health_inflight_begin(health); /* ended when answered */
    pthread_mutex_lock(&pending_lock);
    pending++;
    pthread_mutex_unlock(&pending_lock);
    evtimer_add(s->ev, &tv);
  } else if (m == EVHTTP_REQ_POST && strcmp(path, "/work") == 0) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    int rc = len > 65536 ? -3 : record(body, len);
    reply(req,
          rc == 0    ? 200
          : rc == -1 ? 503
          : rc == -3 ? 413
                     : 500,
          rc == 0    ? "recorded\n"
          : rc == -1 ? "shutting down\n"
          : rc == -3 ? "too large\n"
                     : "out of memory\n");
  } else if (m == EVHTTP_REQ_POST && strcmp(path, "/stall") == 0) {
    long ms = query_ms(req);
    if (ms < 0) {
      reply(req, 400, "ms must be 0-60000\n");
      return;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L}, rem;
    while (nanosleep(&ts, &rem) != 0 && errno == EINTR) ts = rem; /* the loop is stuck */
    reply(req, 200, "stalled\n");
  } else {
    reply(req, 404, "not found\n");
  }
}

/* The drain started: readable health_drain_fd(), seen by the loop. */
static void on_drain(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  atomic_store(&closing, 1);
  logj("info", "draining", "readiness fails; answering with Connection: close");
}

/* Hook 1, after the drain: end the loop (from a library thread) once the
 * requests it still owes are answered, or when the hook's budget is spent
 * (a drain cut short by a second signal, a loop slower than the window). */
static int hook_stop_loop(void *arg, unsigned budget_ms) {
  (void)arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  unsigned wait_ms = budget_ms > 100 ? budget_ms - 100 : 0; /* leave time to exit the loop */
  until.tv_sec += (time_t)(wait_ms / 1000);
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&pending_lock);
  while (pending > 0 && pthread_cond_timedwait(&pending_cond, &pending_lock, &until) == 0) {}
  pthread_mutex_unlock(&pending_lock);
  return event_base_loopexit(base, NULL) == 0 ? 0 : 1;
}

/* Hook 2: refuse new work, then write and fsync every recorded body. */
static int hook_flush(void *arg, unsigned budget_ms) {
  (void)arg;
  (void)budget_ms;
  pthread_mutex_lock(&work_lock);
  work_closed = 1;
  pthread_mutex_unlock(&work_lock);
  if (!flush_file) return 0;
  int fd = open(flush_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  int rc = 0;
  for (size_t i = 0; i < nwork && rc == 0; i++) {
    size_t len = strlen(work[i]);
    if (write(fd, work[i], len) != (ssize_t)len || write(fd, "\n", 1) != 1) rc = 1;
  }
  if (rc == 0 && fsync(fd) != 0) rc = 1;
  if (close(fd) != 0) rc = 1;
  return rc;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* a client that went away is an error, not a death */
  const char *p = getenv("PORT");
  long port = p && *p ? strtol(p, NULL, 10) : 8080;
  if (port < 1 || port > 65535) {
    logj("error", "config", "PORT must be 1-65535");
    return 2;
  }
  flush_file = getenv("FLUSH_FILE");
  health_options_t opts;
  health_error_t err;
  health_options_init(&opts);
  opts.exit_on_shutdown = 0; /* main() returns; the loop's code after dispatch runs */
  if (health_new(&health, &opts, &err) != 0 || health_config_from_env(health, &err) != 0 ||
      health_hook_add(health, "stop-loop", 0, 3000, hook_stop_loop, NULL, &err) != 0 ||
      health_hook_add(health, "flush", 1, 5000, hook_flush, NULL, &err) != 0) {
    logj("error", "health", err.text);
    return 1;
  }
  if (evthread_use_pthreads() != 0 || !(base = event_base_new())) {
    logj("error", "libevent", "no event base");
    return 1;
  }
  struct evhttp *http = evhttp_new(base);
  if (!http || evhttp_bind_socket(http, "0.0.0.0", (ev_uint16_t)port) != 0) {
    logj("error", "listen", strerror(errno));
    return 1;
  }
  evhttp_set_gencb(http, on_request, NULL);
  if (health_start(health, &err) != 0) {
    logj("error", "health_start", err.text);
    return 1;
  }
  struct event *drain = event_new(base, health_drain_fd(health), EV_READ, on_drain, NULL);
  if (!drain || event_add(drain, NULL) != 0) {
    logj("error", "libevent", "cannot watch the drain fd");
    return 1;
  }
  logj("info", "listening", "the loop runs");
  event_base_dispatch(base); /* until the hook "stop-loop" */
  logj("info", "loop_ended", "waiting for the shutdown sequence");
  int code = health_wait(health); /* the hooks' verdict */
  event_free(drain);
  evhttp_free(http);
  event_base_free(base);
  health_free(health);
  for (size_t i = 0; i < nwork; i++) free(work[i]);
  free(work);
  return code;
}
