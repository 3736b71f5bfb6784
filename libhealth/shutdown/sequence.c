/*
 * The shutdown sequence, on the library's shutdown thread (started by
 * shutdown/shutdown.c): readiness 503 at once, the drain window, the flush hooks
 * (each under its timeout, all under the deadline), then the exit code (and
 * _exit() if asked).  Repeated signals and their debounce: see shutdown/shutdown.c.
 *
 * Hooks run on the runner made at start, and a watchdog holds the deadline
 * whatever this thread is blocked in: shutdown/reserve.c.  With no thread
 * for a hook (one was abandoned and none can be made), it runs here.
 */
#include "health_int.h"

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
        health__log(h, HEALTH_LOG_INFO, "shutdown_signal_duplicate", "#elapsed_ms", el, "action",
                    "ignored: within 1000 ms of the previous one", NULL);
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

/* ---- hooks ---- */

/* Run the hook on the reserved runner (or a new one if that was abandoned);
 * 1 and *rc if it returned by `until`, 0 if it was abandoned.  With no
 * runner to be had, the hook runs here, on the sequence thread: it cannot be
 * abandoned at its timeout, and the watchdog still holds the deadline. */
static int hook_on_runner(health_t *h, seq_t *s, int *started, const health__hook_t *k,
                          unsigned budget, uint64_t until, int *rc) {
  health__hook_runner_t *r = health__runner_get(h);
  if (!r) {
    health__log(
        h, HEALTH_LOG_WARN, "hook_inline", "hook", k->name, "reason",
        "no thread for the hook: it runs on the shutdown thread, its timeout cannot cut it, the deadline still does",
        NULL);
    *rc = k->fn(k->arg, budget);
    return 1;
  }
  health__runner_submit(r, k->fn, k->arg, budget);
  for (;;) {
    if (health__runner_done(r, rc)) return 1;
    if (s->quit || s->forced || health__now_ms() >= until) break;
    wait_until(h, s, started, -1, until); /* 'h' on the wake pipe: re-check */
  }
  return health__runner_abandon(h, r, rc);
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
  health__log(h, HEALTH_LOG_INFO, "hook_started", "hook", k->name, "#budget_ms", bu, "#timeout_ms",
              to, "#elapsed_ms", el, NULL);
  int hook_rc = 0;
  int done = hook_on_runner(h, s, started, k, (unsigned)(until > begin ? until - begin : 0), until,
                            &hook_rc);
  ms_str(dur, sizeof dur, health__now_ms() - begin);
  ms_str(el, sizeof el, health__now_ms() - s->t0);
  int code = HEALTH_EXIT_OK;
  if (done) {
    char rc[16];
    snprintf(rc, sizeof rc, "%d", hook_rc);
    if (hook_rc == 0) {
      health__log(h, HEALTH_LOG_INFO, "hook_done", "hook", k->name, "result", "ok", "#duration_ms",
                  dur, "#elapsed_ms", el, NULL);
    } else {
      health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name, "result", "failed", "#rc", rc,
                  "#duration_ms", dur, "#elapsed_ms", el, NULL);
      code = HEALTH_EXIT_HOOK_FAILED;
    }
  } else if (!s->quit && !s->forced) {
    int deadline = health__now_ms() >= s->deadline;
    health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name, "result",
                deadline ? "abandoned at the shutdown deadline" : "timeout: abandoned",
                "#duration_ms", dur, "#elapsed_ms", el, NULL);
    code = deadline ? HEALTH_EXIT_DEADLINE : HEALTH_EXIT_HOOK_TIMEOUT;
  } else {
    health__log(h, HEALTH_LOG_ERROR, "hook_done", "hook", k->name, "result",
                "abandoned: forced exit", "#duration_ms", dur, "#elapsed_ms", el, NULL);
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
  health__log(h, code == 0 ? HEALTH_LOG_INFO : HEALTH_LOG_ERROR, "shutdown_complete", "#exit_code",
              c, "#elapsed_ms", el, NULL);
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
    /* The queued lines (a sink that keeps up takes them in microseconds),
     * but a stuck one holds the exit a second at most, and never past the
     * deadline by more than 100 ms (reached at the deadline, the last lines
     * still get that long). */
    uint64_t now = health__now_ms(), fl = s->deadline > now + 100 ? s->deadline : now + 100;
    health__log_flush(h, fl < now + 1000 ? fl : now + 1000);
    _exit(code);
  }
  pthread_mutex_lock(&h->sd.done_lock);
  if (!h->sd.done) h->sd.exit_code = code; /* else the watchdog answered */
  h->sd.done = 1;
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
}

static void *sequence_main(health_t *h) {
  seq_t s;
  memset(&s, 0, sizeof s);
  int started = 0;
  while (!started) {
    struct pollfd p = {h->sd.wake_pipe[0], POLLIN, 0};
    /* While idle, now and then: is the library's signal handler still the
     * one installed (shutdown/signals.c)?  Never on a request's path. */
    int n = poll(&p, 1, h->sd.handlers_installed ? HEALTH__SIGNAL_WATCH_MS : -1);
    if (n < 0 && errno != EINTR) return NULL;
    if (n == 0) {
      health__signals_watch(h);
      continue;
    }
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
    wait_until(h, &s, &started, -1,
               now < early && h->opt.drain_min_ms < h->opt.drain_ms ? early : drain_end);
  }
  char el[24];
  ms_str(el, sizeof el, health__now_ms() - s.t0);
  snprintf(infl, sizeof infl, "%d", atomic_load(&h->sd.inflight));
  health__log(h, HEALTH_LOG_INFO, "drain_ended", "reason", why, "#elapsed_ms", el, "#inflight",
              infl, NULL);
  if (health__notify_watched(h)) health__notify(h, "STATUS=running flush hooks");

  /* 3. Flush hooks in order, each under its timeout, all under the deadline. */
  health__obs_phase(h, HEALTH__PHASE_FLUSHING);
  int code = HEALTH_EXIT_OK;
  for (size_t i = 0; i < h->sd.nhooks; i++) {
    if (s.quit) return NULL;
    if (s.forced || health__now_ms() >= s.deadline) {
      int forced = s.forced;
      for (size_t j = i; j < h->sd.nhooks; j++)
        health__log(h, HEALTH_LOG_ERROR, "hook_skipped", "hook", h->sd.hooks[j]->name, "reason",
                    forced ? "forced exit (repeated signal)" : "shutdown deadline reached", NULL);
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
        health__log(h, HEALTH_LOG_ERROR, "hook_skipped", "hook", h->sd.hooks[j]->name, "reason",
                    "shutdown deadline reached", NULL);
      break;
    }
  }
  if (s.forced) code = HEALTH_EXIT_FORCED;
  finish(h, &s, code);
  return NULL;
}

void *health__shutdown_main(void *arg) {
  health_t *h = arg;
  sequence_main(h);
  /* health_stop() waits for this (shutdown/shutdown.c, wait_sequence). */
  pthread_mutex_lock(&h->sd.done_lock);
  h->sd.seq_ended = 1;
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
  return NULL;
}
