/*
 * The shutdown sequence, on the library's shutdown thread (started by
 * shutdown.c): readiness 503 at once, the drain window, the flush hooks
 * (each under its timeout, all under the deadline), then the exit code (and
 * _exit() if asked).  Repeated signals and their debounce: see shutdown.c.
 *
 * What SIGTERM needs is made at start (health__seq_reserve), so a process
 * out of descriptors, threads or address space still runs every hook:
 *  - a hook runner thread, waiting on a condition variable; a hook that
 *    returns writes 'h' to the wake pipe (made at health_new).  A hook
 *    abandoned at its timeout keeps the runner; the next hook gets a new one,
 *    or, if no thread can be made, runs on the sequence thread itself;
 *  - a watchdog thread that holds the deadline whatever the sequence is
 *    blocked in (a log sink, a lock, a listener, a hook run inline): at the
 *    deadline + WATCHDOG_GRACE_MS it _exit()s with the code the sequence
 *    decided, or HEALTH_EXIT_DEADLINE (without exit_on_shutdown it makes
 *    health_wait() return that code instead).
 */
#include "health-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIGNAL_DEBOUNCE_MS 1000

typedef struct {
  uint64_t t0; /* when the first signal was seen */
  uint64_t deadline;
  int skip_drain;       /* a second signal */
  int forced;           /* a third signal */
  int quit;             /* health_stop(): abandon the sequence */
  uint64_t last_signal; /* when the last counted signal was seen */
} seq_t;

static void ms_str(char *buf, size_t n, uint64_t ms) {
  snprintf(buf, n, "%llu", (unsigned long long)ms);
}

/* Read every pending byte of the wake pipe and update the sequence. */
static void drain_wake_pipe(health_t *h, seq_t *s, int *started) {
  char buf[64];
  ssize_t n;
  while ((n = read(h->sd.wake_pipe[0], buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == 'q') s->quit = 1;
      if (buf[i] != 's') continue;
      uint64_t now = health__now_ms();
      if (!*started) {
        *started = 1;
        s->last_signal = now;
        continue;
      }
      char c[16], el[24];
      ms_str(el, sizeof el, now - s->t0);
      if (now - s->last_signal < SIGNAL_DEBOUNCE_MS) {
        health__log(h, HEALTH_LOG_INFO, "shutdown_signal_duplicate", "#elapsed_ms", el,
                    "action", "ignored: within 1000 ms of the previous one", NULL);
        continue;
      }
      s->last_signal = now;
      int count = ++*started;
      snprintf(c, sizeof c, "%d", count);
      if (count == 2) {
        s->skip_drain = 1;
        health__log(h, HEALTH_LOG_WARN, "shutdown_signal_repeated", "#count", c, "#elapsed_ms", el,
                    "action", "skip the rest of the drain window; flush hooks still run", NULL);
      } else {
        s->forced = 1;
        health__log(h, HEALTH_LOG_ERROR, "shutdown_signal_repeated", "#count", c, "#elapsed_ms", el,
                    "action", "forced exit: remaining flush hooks are skipped", NULL);
      }
    }
  }
}

/* Wait on the wake pipe (and optionally another fd) until `until`.
 * Returns 1 if `fd` became readable. */
static int wait_until(health_t *h, seq_t *s, int *started, int fd, uint64_t until) {
  for (;;) {
    uint64_t now = health__now_ms();
    if (s->quit || s->forced) return 0;
    if (now >= until) return 0;
    struct pollfd p[2] = {{h->sd.wake_pipe[0], POLLIN, 0}, {fd, POLLIN, 0}};
    int n = poll(p, fd >= 0 ? 2 : 1, (int)(until - now));
    if (n < 0 && errno != EINTR) return 0;
    if (n > 0 && (p[0].revents & POLLIN)) {
      drain_wake_pipe(h, s, started);
      if (s->skip_drain && fd < 0) return 0;
    }
    if (fd >= 0 && n > 0 && (p[1].revents & (POLLIN | POLLHUP))) return 1;
    if (fd < 0 && n > 0 && (p[0].revents & POLLIN)) return 0; /* re-check caller's condition */
  }
}

/* ---- the hook runner ---- */

struct health__hook_runner {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a job, or quit */
  pthread_t thread;
  int wake_fd; /* the wake pipe's write end: 'h' when a hook returns */
  health_hook_fn fn;
  void *arg;
  unsigned budget;
  int job, done, rc;
  int quit;      /* the owner stops an idle runner (joined) */
  int abandoned; /* the sequence gave up on the hook: the thread frees */
};

static void runner_free(health__hook_runner_t *r) {
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r);
}

static void *runner_main(void *arg) {
  health__hook_runner_t *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (!r->job && !r->quit) pthread_cond_wait(&r->cond, &r->lock);
    if (!r->job) break;
    health_hook_fn fn = r->fn;
    void *a = r->arg;
    unsigned budget = r->budget;
    pthread_mutex_unlock(&r->lock);
    int rc = fn(a, budget);
    pthread_mutex_lock(&r->lock);
    r->job = 0;
    r->done = 1;
    r->rc = rc;
    if (r->abandoned) break;
    /* Under r->lock: until it is abandoned, the handle (and the pipe) lives.
     * The pipe is non-blocking: a full one already wakes the sequence. */
    ssize_t n;
    do n = write(r->wake_fd, "h", 1);
    while (n < 0 && errno == EINTR);
  }
  int mine = r->abandoned;
  pthread_mutex_unlock(&r->lock);
  if (mine) runner_free(r);
  return NULL;
}

/* A joinable runner thread, or NULL (no memory, no thread). */
static health__hook_runner_t *runner_new(health_t *h) {
  health__hook_runner_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  if (pthread_mutex_init(&r->lock, NULL) != 0) {
    free(r);
    return NULL;
  }
  if (pthread_cond_init(&r->cond, NULL) != 0) {
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
  }
  r->wake_fd = h->sd.wake_pipe[1];
  if (health__thread_create(&r->thread, runner_main, r, 0) != 0) {
    runner_free(r);
    return NULL;
  }
  return r;
}

/* Stop an idle runner the handle still owns, and free it. */
static void runner_stop(health__hook_runner_t *r) {
  pthread_mutex_lock(&r->lock);
  r->quit = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  pthread_join(r->thread, NULL);
  runner_free(r);
}

/* ---- the watchdog ---- */

/* After the deadline the sequence gets this long to finish on its own (its
 * deadline lines, _exit) before the watchdog ends the process. */
#define WATCHDOG_GRACE_MS 100

static void *watchdog_main(void *arg) {
  health_t *h = arg;
  uint64_t req;
  for (;;) { /* until the first shutdown request, or stop */
    if (sem_wait(&h->sd.wd_sem) != 0 && errno != EINTR) return NULL;
    pthread_mutex_lock(&h->sd.done_lock);
    int quit = h->sd.wd_quit;
    pthread_mutex_unlock(&h->sd.done_lock);
    if (quit) return NULL;
    if ((req = atomic_load(&h->sd.requested_ms)) != 0) break;
  }
  uint64_t fire = req + h->opt.shutdown_deadline_ms + WATCHDOG_GRACE_MS;
  pthread_mutex_lock(&h->sd.done_lock);
  while (!h->sd.done && !h->sd.wd_quit && health__now_ms() < fire) {
    struct timespec ts = health__timespec_ms(fire);
    pthread_cond_timedwait(&h->sd.done_cond, &h->sd.done_lock, &ts);
  }
  if (h->sd.done || h->sd.wd_quit) {
    pthread_mutex_unlock(&h->sd.done_lock);
    return NULL;
  }
  /* The sequence is stuck (a log sink, a lock, a listener, a hook run on
   * its own thread): the code it decided, or the deadline's.  Nothing here
   * may block: no log line, no flush, no quiesce. */
  int code = atomic_load(&h->sd.final_code);
  if (code < 0) code = HEALTH_EXIT_DEADLINE;
  if (h->opt.exit_on_shutdown) _exit(code);
  h->sd.exit_code = code;
  h->sd.done = 1;
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
  return NULL;
}

int health__seq_reserve(health_t *h, health_error_t *err) {
  /* A request made before start counts from now: the sequence starts now. */
  uint64_t req = atomic_load(&h->sd.requested_ms);
  if (req) atomic_compare_exchange_strong(&h->sd.requested_ms, &req, health__now_ms());
  h->sd.runner = runner_new(h);
  if (!h->sd.runner)
    return health__err(err, HEALTH_ESYS, "could not start the shutdown hook thread: %s", strerror(errno));
  if (health__thread_create(&h->sd.wd_thread, watchdog_main, h, 0) != 0) {
    int e = errno;
    runner_stop(h->sd.runner);
    h->sd.runner = NULL;
    return health__err(err, HEALTH_ESYS, "could not start the shutdown watchdog thread: %s", strerror(e));
  }
  h->sd.wd_started = 1;
  return 0;
}

void health__seq_release(health_t *h) {
  if (h->sd.wd_started) {
    pthread_mutex_lock(&h->sd.done_lock);
    h->sd.wd_quit = 1;
    pthread_cond_broadcast(&h->sd.done_cond);
    pthread_mutex_unlock(&h->sd.done_lock);
    sem_post(&h->sd.wd_sem);
    pthread_join(h->sd.wd_thread, NULL);
    h->sd.wd_started = 0;
  }
  if (h->sd.runner) {
    runner_stop(h->sd.runner);
    h->sd.runner = NULL;
  }
}

/* ---- hooks ---- */

/* Run the hook on the reserved runner (or a new one if that was abandoned);
 * 1 and *rc if it returned by `until`, 0 if it was abandoned.  With no
 * runner to be had, the hook runs here, on the sequence thread: it cannot be
 * abandoned at its timeout, and the watchdog still holds the deadline. */
static int hook_on_runner(health_t *h, seq_t *s, int *started, const health__hook_t *k,
                          unsigned budget, uint64_t until, int *rc) {
  health__hook_runner_t *r = h->sd.runner;
  if (!r) r = h->sd.runner = runner_new(h);
  if (!r) {
    health__log(h, HEALTH_LOG_WARN, "hook_inline", "hook", k->name, "reason",
                "no thread for the hook: it runs on the shutdown thread, its timeout cannot cut it, the deadline still does",
                NULL);
    *rc = k->fn(k->arg, budget);
    return 1;
  }
  pthread_mutex_lock(&r->lock);
  r->fn = k->fn;
  r->arg = k->arg;
  r->budget = budget;
  r->done = 0;
  r->job = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  for (;;) {
    pthread_mutex_lock(&r->lock);
    int done = r->done;
    *rc = r->rc;
    if (done) r->done = 0;
    pthread_mutex_unlock(&r->lock);
    if (done) return 1;
    if (s->quit || s->forced || health__now_ms() >= until) break;
    wait_until(h, s, started, -1, until); /* 'h' on the wake pipe: re-check */
  }
  pthread_mutex_lock(&r->lock);
  int done = r->done;
  *rc = r->rc;
  r->done = 0;
  if (!done) {
    /* It keeps its thread, which frees the runner when the hook returns. */
    r->abandoned = 1;
    pthread_detach(r->thread);
    h->sd.runner = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  return done;
}

/* Run one hook; returns the exit code it implies. */
static int run_hook(health_t *h, seq_t *s, int *started, const health__hook_t *k) {
  uint64_t begin = health__now_ms();
  uint64_t until = begin + k->timeout_ms;
  if (until > s->deadline) until = s->deadline;
  char el[24], dur[24], to[24], bu[24];
  ms_str(el, sizeof el, begin - s->t0);
  ms_str(to, sizeof to, k->timeout_ms);
  /* The budget is what the hook really gets: its timeout, cut by the
   * deadline. */
  ms_str(bu, sizeof bu, until > begin ? until - begin : 0);
  health__log(h, HEALTH_LOG_INFO, "hook_started", "hook", k->name, "#budget_ms", bu,
              "#timeout_ms", to, "#elapsed_ms", el, NULL);
  int hook_rc = 0;
  int done = hook_on_runner(h, s, started, k, (unsigned)(until > begin ? until - begin : 0), until, &hook_rc);
  ms_str(dur, sizeof dur, health__now_ms() - begin);
  ms_str(el, sizeof el, health__now_ms() - s->t0);
  int code = HEALTH_EXIT_OK;
  if (done) {
    char rc[16];
    snprintf(rc, sizeof rc, "%d", hook_rc);
    if (hook_rc == 0) {
      health__log(h, HEALTH_LOG_INFO, "hook_done", "hook", k->name, "result", "ok",
                  "#duration_ms", dur, "#elapsed_ms", el, NULL);
    } else {
      health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name, "result", "failed",
                  "#rc", rc, "#duration_ms", dur, "#elapsed_ms", el, NULL);
      code = HEALTH_EXIT_HOOK_FAILED;
    }
  } else if (!s->quit && !s->forced) {
    int deadline = health__now_ms() >= s->deadline;
    health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name,
                "result", deadline ? "abandoned at the shutdown deadline" : "timeout: abandoned",
                "#duration_ms", dur, "#elapsed_ms", el, NULL);
    code = deadline ? HEALTH_EXIT_DEADLINE : HEALTH_EXIT_HOOK_TIMEOUT;
  } else {
    health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name, "result", "abandoned: forced exit",
                "#duration_ms", dur, "#elapsed_ms", el, NULL);
    code = HEALTH_EXIT_FORCED;
  }
  return code;
}

static int worse(int a, int b) {
  /* forced > deadline > hook timeout > hook failed > ok */
  return a > b ? a : b;
}

static void finish(health_t *h, seq_t *s, int code) {
  char c[16], el[24];
  /* Decided: if what follows blocks, the watchdog exits with this code. */
  atomic_store(&h->sd.final_code, code);
  health__obs_phase(h, HEALTH__PHASE_DONE);
  snprintf(c, sizeof c, "%d", code);
  ms_str(el, sizeof el, health__now_ms() - s->t0);
  health__log(h, code == 0 ? HEALTH_LOG_INFO : HEALTH_LOG_ERROR, "shutdown_complete",
              "#exit_code", c, "#elapsed_ms", el, NULL);
  if (health__notify_watched(h)) {
    char st[64];
    snprintf(st, sizeof st, "STATUS=shutdown complete, exit code %d", code);
    health__notify(h, st);
  }
  if (h->opt.exit_on_shutdown) {
    /* The health server stayed up to here; quiesce it so nothing new is
     * accepted while the process goes.  _exit: other threads are running
     * application code, so atexit handlers are not safe to run now.  No
     * fflush(NULL): it waits for every stdio lock, and an application
     * thread blocked writing to a pipe nobody reads holds its stream's lock
     * forever.  The library writes no stdio; the application's streams are
     * its flush hooks' to flush. */
    health__http_quiesce(h);
    _exit(code);
  }
  pthread_mutex_lock(&h->sd.done_lock);
  if (!h->sd.done) h->sd.exit_code = code; /* else the watchdog answered */
  h->sd.done = 1;
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
}

void *health__shutdown_main(void *arg) {
  health_t *h = arg;
  seq_t s;
  memset(&s, 0, sizeof s);
  int started = 0;
  while (!started) {
    struct pollfd p = {h->sd.wake_pipe[0], POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return NULL;
    /* The watchdog counts from the same instant. */
    uint64_t req = atomic_load(&h->sd.requested_ms);
    s.t0 = req ? req : health__now_ms();
    drain_wake_pipe(h, &s, &started);
    if (s.quit) return NULL;
  }

  /* 1. Readiness flips now; liveness is untouched. */
  s.deadline = s.t0 + h->opt.shutdown_deadline_ms;
  pthread_mutex_lock(&h->lock);
  atomic_store(&h->sd.draining, 1);
  health__state_changed_locked(h);
  pthread_mutex_unlock(&h->lock);
  ssize_t w;
  do w = write(h->sd.drain_pipe[1], "d", 1);
  while (w < 0 && errno == EINTR);
  char dl[24], dr[24], infl[16];
  ms_str(dl, sizeof dl, h->opt.shutdown_deadline_ms);
  ms_str(dr, sizeof dr, h->opt.drain_ms);
  health__log(h, HEALTH_LOG_INFO, "shutdown_started", "#drain_ms", dr, "#deadline_ms", dl, NULL);
  /* The plan again, in absolute times: what an operator compares with the
   * lines that follow.  Hooks are put in run order here, once. */
  health__plan_sort_hooks(h->sd.hooks, h->sd.nhooks);
  health__plan_t plan;
  if (health__plan_derive(h, &plan, NULL) == 0) {
    health__plan_log(h, &plan, s.t0);
    health__plan_free(&plan);
  }
  health__log(h, HEALTH_LOG_INFO, "readiness_flipped", "ready", "fail", "reason", "draining", NULL);
  if (health__notify_watched(h)) health__notify(h, "STOPPING=1\nSTATUS=draining");
  if (h->sd.on_drain) h->sd.on_drain(h->sd.on_drain_arg);

  /* 2. The drain window. */
  uint64_t drain_end = s.t0 + h->opt.drain_ms;
  uint64_t early = s.t0 + h->opt.drain_min_ms;
  const char *why = "window elapsed";
  for (;;) {
    uint64_t now = health__now_ms();
    if (s.quit) return NULL;
    if (s.forced) {
      why = "forced";
      break;
    }
    if (s.skip_drain) {
      why = "repeated signal";
      break;
    }
    if (now >= drain_end) break;
    if (h->opt.drain_min_ms < h->opt.drain_ms && now >= early &&
        atomic_load(&h->sd.inflight) <= 0) {
      why = "nothing in flight";
      break;
    }
    wait_until(h, &s, &started, -1, now < early && h->opt.drain_min_ms < h->opt.drain_ms ? early : drain_end);
  }
  char el[24];
  ms_str(el, sizeof el, health__now_ms() - s.t0);
  snprintf(infl, sizeof infl, "%d", atomic_load(&h->sd.inflight));
  health__log(h, HEALTH_LOG_INFO, "drain_ended", "reason", why, "#elapsed_ms", el,
              "#inflight", infl, NULL);
  if (health__notify_watched(h)) health__notify(h, "STATUS=running flush hooks");

  /* 3. Flush hooks in order, each under its timeout, all under the deadline. */
  health__obs_phase(h, HEALTH__PHASE_FLUSHING);
  int code = HEALTH_EXIT_OK;
  for (size_t i = 0; i < h->sd.nhooks; i++) {
    if (s.quit) return NULL;
    if (s.forced || health__now_ms() >= s.deadline) {
      int forced = s.forced;
      for (size_t j = i; j < h->sd.nhooks; j++)
        health__log(h, HEALTH_LOG_ERROR, "hook_skipped", "hook", h->sd.hooks[j]->name,
                    "reason", forced ? "forced exit (repeated signal)" : "shutdown deadline reached", NULL);
      code = worse(code, forced ? HEALTH_EXIT_FORCED : HEALTH_EXIT_DEADLINE);
      if (!forced) health__log(h, HEALTH_LOG_ERROR, "deadline_fired", NULL);
      break;
    }
    int rc = run_hook(h, &s, &started, h->sd.hooks[i]);
    if (s.quit) return NULL;
    code = worse(code, rc);
    if (rc == HEALTH_EXIT_DEADLINE) {
      health__log(h, HEALTH_LOG_ERROR, "deadline_fired", NULL);
      for (size_t j = i + 1; j < h->sd.nhooks; j++)
        health__log(h, HEALTH_LOG_ERROR, "hook_skipped", "hook", h->sd.hooks[j]->name,
                    "reason", "shutdown deadline reached", NULL);
      break;
    }
  }
  if (s.forced) code = HEALTH_EXIT_FORCED;
  finish(h, &s, code);
  return NULL;
}
