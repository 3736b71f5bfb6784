/*
 * The shutdown subsystem's private header (shutdown/shutdown.c: public calls,
 * signals, thread; shutdown/sequence.c: the sequence; shutdown/reserve.c: the
 * hook runner and the watchdog; shutdown/plan.c: the plan).
 * Above the HTTP server (the sequence quiesces it at exit); other files
 * read only health__draining() and health__inflight().
 */
#ifndef HEALTH_SHUTDOWN_INT_H
#define HEALTH_SHUTDOWN_INT_H

#include <semaphore.h>
#include <signal.h>

#include "core/base_int.h"

typedef struct health__hook {
  char *name;
  int order;
  unsigned timeout_ms;
  health_hook_fn fn;
  void *arg;
  size_t seq;
} health__hook_t;

/* The hook runner (shutdown/sequence.c): a thread made at start that runs one
 * hook at a time, so that SIGTERM needs no descriptor or thread.  Shared by
 * the sequence and the thread; the last of the two frees it. */
typedef struct health__hook_runner health__hook_runner_t;

typedef struct health__shutdown {
  int inited; /* done_lock, done_cond (shutdown/shutdown.c) */
  atomic_int draining;
  atomic_int inflight;
  int drain_pipe[2]; /* readable once draining */
  int wake_pipe[2];  /* signal handler / health_shutdown() -> thread */
  pthread_t shutdown_thread;
  int shutdown_started;
  void (*on_drain)(void *);
  void *on_drain_arg;
  health__hook_t **hooks;
  size_t nhooks;
  pthread_mutex_t done_lock;
  pthread_cond_t done_cond;
  int done; /* sequence finished */
  int exit_code;
  struct sigaction old_term, old_int; /* what the application had (shutdown/signals.c) */
  int handlers_installed;
  atomic_int signals_lost; /* bit 0 SIGTERM, bit 1 SIGINT replaced after start */
  /* The deadline, enforced by a watchdog thread of its own (shutdown/sequence.c)
   * so that a blocked sequence (a log sink, a lock, a listener) cannot hold
   * the exit up.  health_shutdown() stamps the first request and posts the
   * semaphore (both async-signal-safe); the watchdog then waits on
   * done_cond (monotonic) until the deadline. */
  _Atomic uint64_t requested_ms; /* health__now_ms() of the first request, 0: none */
  atomic_int final_code;         /* the code the sequence decided, -1 before */
  sem_t wd_sem;
  int wd_sem_inited;
  int wd_quit; /* under done_lock */
  /* Under done_lock: the sequence's thread has returned (seq_ended); the
   * watchdog answered health_wait() for a sequence still blocked, at this
   * health__now_ms() (abandoned_ms, 0: not); health_stop() gave up waiting
   * for it and left the handle running (left). */
  int seq_ended;
  uint64_t abandoned_ms;
  int left;
  pthread_t wd_thread;
  int wd_started;
  health__hook_runner_t *runner; /* the reserved runner, NULL once abandoned */
} health__shutdown_t;

/* ---- shutdown (shutdown/shutdown.c) ---- */
int health__shutdown_init(health_t *h); /* in health_new */
int health__shutdown_start(health_t *h, health_error_t *err);
/* Stop the sequence's thread and the signal handling.  @return 0, or -1
 * when the sequence is still blocked HEALTH__STOP_LEAVE_MS after the
 * watchdog gave up on it: then nothing it may use was touched, and the
 * caller must leave the handle running (health.c). */
#define HEALTH__STOP_LEAVE_MS 1000
int health__shutdown_stop(health_t *h);
/* 1 once health_stop() left the handle running (see above). */
int health__shutdown_left(health_t *h);
void health__shutdown_free(health_t *h);
void *health__shutdown_main(void *h); /* the sequence's thread (shutdown/sequence.c) */
/* What the sequence needs, made at start (shutdown/sequence.c): the watchdog
 * thread and a hook runner thread.  0 or an error; undone by _release. */
int health__seq_reserve(health_t *h, health_error_t *err);
void health__seq_release(health_t *h);
/* A shutdown request, from health_shutdown() or the signal handler
 * (async-signal-safe): the first one starts the watchdog's clock; each
 * writes 's' to the wake pipe. */
void health__seq_request(health_t *h);
/* Join the watchdog after it gave up on a blocked sequence (health_stop
 * leaving the handle running). */
void health__seq_join_watchdog(health_t *h);
/* The hook runner (shutdown/reserve.c), on the sequence thread only: the
 * reserved runner, or a new one if it was abandoned, or NULL (no thread). */
health__hook_runner_t *health__runner_get(health_t *h);
void health__runner_submit(health__hook_runner_t *r, health_hook_fn fn, void *arg, unsigned budget);
/* 1 and *rc once the hook returned (the runner writes 'h' to the wake pipe). */
int health__runner_done(health__hook_runner_t *r, int *rc);
/* Give up on the hook: 1 and *rc if it returned after all; otherwise 0,
 * and the runner belongs to its thread (h->sd.runner is NULL). */
int health__runner_abandon(health_t *h, health__hook_runner_t *r, int *rc);

/* ---- signals (shutdown/signals.c) ---- */
/* How often the shutdown thread, while idle, looks whether the library's
 * handlers are still installed (health__signals_watch). */
#define HEALTH__SIGNAL_WATCH_MS 250
/* Install the handlers as handle_signals says; HEALTH_ESTATE if another
 * handle has them. */
int health__signals_install(health_t *h, health_error_t *err);
/* Put back what the application had, unless replaced meanwhile. */
void health__signals_restore(health_t *h);
/* Warn once when a handler replaced the library's (shutdown thread). */
void health__signals_watch(health_t *h);
/* In a child after fork(): the application's dispositions again, and the
 * library's handler no longer reaches any handle (atfork child handler). */
void health__signals_forked(void);

/* ---- shutdown plan (shutdown/plan.c) ---- */
typedef struct health__plan_hook {
  const health__hook_t *hook;
  unsigned timeout_ms;      /* as configured */
  unsigned latest_start_ms; /* after the signal, if the drain and every hook before use their whole
                               time */
  unsigned budget_ms;       /* min(timeout, deadline - latest start): what it is sure to get */
} health__plan_hook_t;

typedef struct health__plan {
  unsigned drain_ms, drain_min_ms, deadline_ms;
  int early; /* drain_min < drain: may end once nothing is in flight */
  size_t nhooks;
  health__plan_hook_t *hooks; /* in run order */
  unsigned hooks_ms;          /* sum of the hook timeouts */
  unsigned worst_exit_ms;     /* min(deadline, drain + hooks_ms) */
} health__plan_t;

/* Sort hooks into run order: ascending order, ties in registration order. */
void health__plan_sort_hooks(health__hook_t **hooks, size_t n);
/* The plan from the frozen options and hooks: 0, HEALTH_EINVAL naming the
 * fields of an impossible plan, or HEALTH_ENOMEM.  Free with _free. */
int health__plan_derive(const health_t *h, health__plan_t *p, health_error_t *err);
void health__plan_free(health__plan_t *p);
/* Log "shutdown_plan": relative times when t0 == 0 (at start), absolute
 * monotonic and wall-clock times from the signal at t0 otherwise. */
void health__plan_log(const health_t *h, const health__plan_t *p, uint64_t t0);
/* One "shutdown_plan_risk" warn line per hook the deadline may cut. */
void health__plan_warn(const health_t *h, const health__plan_t *p);

#endif /* HEALTH_SHUTDOWN_INT_H */
