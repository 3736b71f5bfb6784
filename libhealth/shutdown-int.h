/*
 * The shutdown subsystem's private header (shutdown.c: public calls,
 * signals, thread; shutdown_seq.c: the sequence; plan.c: the plan).
 * Above the HTTP server (the sequence quiesces it at exit); other files
 * read only health__draining() and health__inflight().
 */
#ifndef HEALTH_SHUTDOWN_INT_H
#define HEALTH_SHUTDOWN_INT_H

#include <signal.h>

#include "base-int.h"

typedef struct health__hook {
  char *name;
  int order;
  unsigned timeout_ms;
  health_hook_fn fn;
  void *arg;
  size_t seq;
} health__hook_t;

typedef struct health__shutdown {
  int inited; /* done_lock, done_cond (shutdown.c) */
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
  struct sigaction old_term, old_int; /* what the application had (signals.c) */
  int handlers_installed;
  atomic_int signals_lost; /* bit 0 SIGTERM, bit 1 SIGINT replaced after start */
} health__shutdown_t;

/* ---- shutdown (shutdown.c) ---- */
int health__shutdown_init(health_t *h); /* in health_new */
int health__shutdown_start(health_t *h, health_error_t *err);
void health__shutdown_stop(health_t *h);
void health__shutdown_free(health_t *h);
void *health__shutdown_main(void *h); /* the sequence's thread (shutdown_seq.c) */

/* ---- signals (signals.c) ---- */
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

/* ---- shutdown plan (plan.c) ---- */
typedef struct health__plan_hook {
  const health__hook_t *hook;
  unsigned timeout_ms;      /* as configured */
  unsigned latest_start_ms; /* after the signal, if the drain and every hook before use their whole time */
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
