/*
 * Graceful shutdown: SIGTERM -> readiness 503 at once -> drain window ->
 * flush hooks (each under its timeout) -> exit, all under one hard deadline.
 *
 * The signal handler only writes a byte to a self-pipe (async-signal-safe,
 * errno saved); everything else happens on the library's shutdown thread.
 * Hooks run on a runner thread made at start (a new one only after one was
 * abandoned at a hook's timeout), and a watchdog thread made at start
 * enforces the deadline whatever the sequence is blocked in: see
 * shutdown/sequence.c.
 *
 * Repeated signals (documented in docs/guide.md, "Shutdown"):
 *   1st  starts the sequence;
 *   2nd  ends the drain window now (logged); hooks still run;
 *   3rd+ exits at once with HEALTH_EXIT_FORCED, logging every hook skipped.
 * A signal within SIGNAL_DEBOUNCE_MS of the previous one counts as the same
 * request (logged, ignored): supervisors and shell wrappers often deliver one
 * stop as a burst (the process group plus a forwarded copy), and a burst
 * must never turn into a forced exit that skips the flush.
 *
 * This file: the public calls, the thread's start and stop.  The signal
 * handlers: shutdown/signals.c.  The sequence itself (drain, hooks, exit):
 * shutdown/sequence.c.  In a child after fork() every call here is inert
 * (health__forked): the pipes and the thread are the parent's.
 */
#include "health_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wake(const health_t *h, char c) {
  ssize_t n;
  do n = write(h->sd.wake_pipe[1], &c, 1);
  while (n < 0 && errno == EINTR);
}

HEALTH_EXPORT void health_shutdown(health_t *h) {
  if (!h || health__forked(h)) return;
  health__seq_request(h); /* shutdown/reserve.c, as the signal handler */
}

HEALTH_EXPORT int health_drain_active(const health_t *h) {
  return h ? atomic_load(&((health_t *)h)->sd.draining) : 0;
}

HEALTH_EXPORT int health_drain_fd(const health_t *h) {
  return h && !health__forked(h) ? h->sd.drain_pipe[0] : -1;
}

HEALTH_EXPORT void health_inflight_begin(health_t *h) {
  if (h) atomic_fetch_add_explicit(&h->sd.inflight, 1, memory_order_relaxed);
}

HEALTH_EXPORT void health_inflight_end(health_t *h) {
  if (!h) return;
  /* The last request out during the drain wakes the shutdown thread, so the
   * drain can end early without polling. */
  /* Both seq_cst: the shutdown thread stores draining then loads inflight,
   * we do the reverse; weaker orders let both miss each other (no wake-up,
   * the drain runs its full window) on ARM. */
  if (atomic_fetch_sub(&h->sd.inflight, 1) == 1 && atomic_load(&h->sd.draining) &&
      !health__forked(h))
    wake(h, 'i');
}

HEALTH_EXPORT int health_drain_notify(health_t *h, void (*fn)(void *), void *arg,
                                      health_error_t *err) {
  /* A NULL callback is refused like a NULL check or hook: a caller that
   * meant to set one learns at once that it did not. */
  if (!h || !fn) return health__err(err, HEALTH_EINVAL, "%s is NULL", !h ? "handle" : "callback");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  int rc = 0;
  pthread_mutex_lock(&h->lock); /* h->state moves under it (health_start) */
  if (h->state != HEALTH__ST_NEW) {
    rc = health__err(err, HEALTH_ESTATE, "the drain callback is set before health_start()");
  } else {
    h->sd.on_drain = fn;
    h->sd.on_drain_arg = arg;
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

static int add_hook_locked(health_t *h, const char *name, int order, unsigned timeout_ms,
                           health_hook_fn fn, void *arg, health_error_t *err) {
  if (h->state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "hooks must be added before health_start()");
  for (size_t i = 0; i < h->sd.nhooks; i++)
    if (strcmp(h->sd.hooks[i]->name, name) == 0)
      return health__err(err, HEALTH_EEXIST, "a hook named '%s' already exists", name);
  health__hook_t *k = calloc(1, sizeof *k);
  health__hook_t **grown = k ? realloc(h->sd.hooks, (h->sd.nhooks + 1) * sizeof *grown) : NULL;
  if (!grown || !(k->name = strdup(name))) {
    if (grown) h->sd.hooks = grown;
    free(k);
    return health__err(err, HEALTH_ENOMEM, "out of memory adding hook '%s'", name);
  }
  h->sd.hooks = grown;
  k->order = order;
  k->timeout_ms = timeout_ms ? timeout_ms : h->opt.hook_timeout_ms;
  k->fn = fn;
  k->arg = arg;
  k->seq = h->sd.nhooks;
  h->sd.hooks[h->sd.nhooks++] = k;
  return 0;
}

HEALTH_EXPORT int health_hook_add(health_t *h, const char *name, int order, unsigned timeout_ms,
                                  health_hook_fn fn, void *arg, health_error_t *err) {
  if (!h || !name || !fn)
    return health__err(err, HEALTH_EINVAL,
                       "health_hook_add: a handle, a name and a function are required");
  if (!health__valid_name(name))
    return health__err(err, HEALTH_EINVAL, "hook name must be 1-%d characters of A-Z a-z 0-9 . _ -",
                       HEALTH__NAME_MAX);
  if (timeout_ms > 600000)
    return health__err(err, HEALTH_EINVAL, "hook '%s': timeout must be at most 600000 ms", name);
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_hook_add: the handle belongs to the parent process");
  pthread_mutex_lock(&h->lock); /* h->state moves under it (health_start) */
  int rc = add_hook_locked(h, name, order, timeout_ms, fn, arg, err);
  pthread_mutex_unlock(&h->lock);
  return rc;
}

int health__shutdown_init(health_t *h) {
  h->sd.drain_pipe[0] = h->sd.drain_pipe[1] = -1;
  h->sd.wake_pipe[0] = h->sd.wake_pipe[1] = -1;
  if (health__pipe2(h->sd.drain_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
  if (health__pipe2(h->sd.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
  atomic_init(&h->sd.final_code, -1);
  if (pthread_mutex_init(&h->sd.done_lock, NULL) != 0) return -1;
  /* Monotonic: the watchdog waits on it until the deadline. */
  if (health__cond_init_monotonic(&h->sd.done_cond) != 0) {
    pthread_mutex_destroy(&h->sd.done_lock);
    return -1;
  }
  h->sd.inited = 1;
  if (sem_init(&h->sd.wd_sem, 0, 0) != 0) return -1;
  h->sd.wd_sem_inited = 1;
  return 0;
}

void health__shutdown_free(health_t *h) {
  for (size_t i = 0; i < h->sd.nhooks; i++) {
    free(h->sd.hooks[i]->name);
    free(h->sd.hooks[i]);
  }
  free(h->sd.hooks);
  h->sd.hooks = NULL;
  h->sd.nhooks = 0;
  for (int i = 0; i < 2; i++) {
    if (h->sd.drain_pipe[i] >= 0) close(h->sd.drain_pipe[i]);
    if (h->sd.wake_pipe[i] >= 0) close(h->sd.wake_pipe[i]);
  }
  if (h->sd.inited) {
    pthread_mutex_destroy(&h->sd.done_lock);
    pthread_cond_destroy(&h->sd.done_cond);
  }
  if (h->sd.wd_sem_inited) sem_destroy(&h->sd.wd_sem);
}

/* ---- the sequence ---- */
int health__shutdown_start(health_t *h, health_error_t *err) {
  /* Everything the sequence will need, before any signal can start it. */
  int rc = health__seq_reserve(h, err);
  if (rc) return rc;
  rc = health__signals_install(h, err); /* shutdown/signals.c */
  if (rc) return rc;
  if (health__thread_create(&h->sd.shutdown_thread, health__shutdown_main, h, 0) != 0) {
    health__shutdown_stop(h);
    return health__err(err, HEALTH_ESYS, "could not start the shutdown thread: %s",
                       strerror(errno));
  }
  h->sd.shutdown_started = 1;
  return 0;
}

/* Wait for the sequence's thread to return.  It does at once when idle or
 * draining ('q'); one blocked for good (a drain callback or a hook run on
 * it that never returns) is waited for until HEALTH__STOP_LEAVE_MS after
 * the watchdog gave up on it.  @return 0 when it returned, -1 when it is
 * left. */
static int wait_sequence(health_t *h) {
  int left = 0;
  pthread_mutex_lock(&h->sd.done_lock);
  while (!h->sd.seq_ended) {
    if (!h->sd.abandoned_ms) {
      /* The watchdog broadcasts when it gives up; the thread when it ends. */
      pthread_cond_wait(&h->sd.done_cond, &h->sd.done_lock);
      continue;
    }
    uint64_t until = h->sd.abandoned_ms + HEALTH__STOP_LEAVE_MS;
    if (health__now_ms() >= until) {
      left = h->sd.left = 1;
      break;
    }
    struct timespec ts = health__timespec_ms(until);
    pthread_cond_timedwait(&h->sd.done_cond, &h->sd.done_lock, &ts);
  }
  pthread_mutex_unlock(&h->sd.done_lock);
  return left ? -1 : 0;
}

int health__shutdown_left(health_t *h) {
  pthread_mutex_lock(&h->sd.done_lock);
  int left = h->sd.left;
  pthread_mutex_unlock(&h->sd.done_lock);
  return left;
}

int health__shutdown_stop(health_t *h) {
  /* The thread first: it reads the handlers' state (health__signals_watch);
   * a signal meanwhile only writes to the pipe, still open. */
  if (h->sd.shutdown_started) {
    wake(h, 'q');
    /* A thread blocked for good keeps everything it may use: the pipes, the
     * runner, the watchdog, the handlers, the handle. */
    if (wait_sequence(h) != 0) {
      health__seq_join_watchdog(h); /* it has returned: none left unjoined */
      return -1;
    }
    pthread_join(h->sd.shutdown_thread, NULL);
    h->sd.shutdown_started = 0;
  }
  health__signals_restore(h);
  health__seq_release(h); /* after the sequence: it uses the runner */
  /* Anyone still in health_wait() gets an answer. */
  pthread_mutex_lock(&h->sd.done_lock);
  if (!h->sd.done) {
    h->sd.done = 1;
    h->sd.exit_code = HEALTH_EXIT_OK;
  }
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
  return 0;
}

HEALTH_EXPORT int health_wait(health_t *h) {
  if (!h) return HEALTH_EINVAL;
  if (health__forked(h)) return HEALTH_EFORKED; /* the sequence is the parent's */
  /* Before start nothing could ever finish the sequence: say so at once
   * rather than block forever. */
  pthread_mutex_lock(&h->lock);
  int st = h->state;
  pthread_mutex_unlock(&h->lock);
  if (st == HEALTH__ST_NEW) return HEALTH_ESTATE;
  pthread_mutex_lock(&h->sd.done_lock);
  while (!h->sd.done) pthread_cond_wait(&h->sd.done_cond, &h->sd.done_lock);
  int code = h->sd.exit_code;
  pthread_mutex_unlock(&h->sd.done_lock);
  return code;
}
