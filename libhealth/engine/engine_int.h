/*
 * The check engine's private header: a check, its result, the engine's
 * state (registry, scheduler, workers), fleet-scale timing (engine/jitter.c,
 * engine/backoff.c), and the endpoint status (http/status.c) built on it.  Below
 * everything that shows a status; calls up only through core/core.c's
 * observers.
 */
#ifndef HEALTH_CHECKS_INT_H
#define HEALTH_CHECKS_INT_H

#include "core/base_int.h"

/* ---- fleet scale: jitter, reconnect backoff (engine/jitter.c, engine/backoff.c) ---- */
typedef struct health__fleet {
  int initial_offset, backoff, keep_connections;
  unsigned run_percent;
  atomic_uint_fast64_t rng; /* splitmix64 state, shared by the handle's threads */
} health__fleet_t;

/* Per-checker memory of failed connection attempts (engine/backoff.c). */
typedef struct health__backoff {
  unsigned failures; /* consecutive failed connection attempts */
} health__backoff_t;

/* ---- checks (engine/registry.c) ---- */
struct health_result {
  health_status_t status;
  int status_set;
  char output[HEALTH__OUTPUT_MAX + 1];
  int has_observed;
  double observed_value;
  char observed_unit[16];
  uint64_t deadline_ms; /* monotonic */
  unsigned max_output;
  /* fleet (engine/jitter.c, engine/backoff.c): set by the engine before the run */
  health_t *h;
  unsigned interval_ms;
  /* set by a checker whose connection attempt failed: next run this long
   * after the start of this one (health__backoff_failed) */
  int retry_set;
  unsigned retry_ms;
  /* The step the run is in ("dns", "tls handshake", ...; a static string,
   * NULL: none said), set by the checker (health__result_phase) and read
   * by the scheduler when the run outlives its deadline, so the engine's
   * timeout names the same phase the checker's own would have. */
  _Atomic(const char *) phase;
};

/* ---- observability: per-check counters for /metrics (http/metrics.c) ---- */
#define HEALTH__BUCKETS 7 /* histogram upper bounds, +Inf apart (http/metrics.c) */
typedef struct health__check_obs {
  uint64_t started_us;                  /* monotonic, when the current run was dispatched */
  uint64_t last_duration_us;            /* of the last completed or timed-out run */
  uint64_t bucket[HEALTH__BUCKETS + 1]; /* per bucket, not cumulative; last: above all */
  uint64_t sum_us, count;               /* observed durations */
  uint64_t failures, timeouts;          /* runs that failed / were cut at the deadline */
  int64_t last_success_wall_ms;         /* last pass or warn; 0: never */
  size_t name_len;                      /* strlen(name), 0 until the first render */
} health__check_obs_t;

typedef struct health__check {
  char *name;
  char *key; /* "<name>:<measurement>" */
  char *component_type;
  char *component_id; /* may be NULL */
  health_check_fn fn;
  void *arg;
  void (*free_arg)(void *);
  unsigned interval_ms, timeout_ms, failure_threshold, success_threshold;
  int critical;
  unsigned endpoints;

  /* Scheduler state, guarded by health_t.lock. */
  int running;                 /* a worker is executing fn */
  int timed_out;               /* the current run passed its deadline */
  health_result_t *run_result; /* the worker's result while running */
  uint64_t started_ms, deadline_ms, next_due_ms;

  /* Published result, guarded by health_t.lock. */
  health_status_t effective; /* HEALTH_PENDING until the first result */
  health_status_t last;
  unsigned consecutive_failures, consecutive_successes;
  uint64_t runs;
  char *output; /* NULL for none */
  int has_observed;
  double observed_value;
  char observed_unit[16];
  int64_t result_wall_ms;
  uint64_t result_mono_ms;

  /* What was last logged as this check's report (transition detection,
   * engine/registry.c), guarded by health_t.lock. */
  health_status_t reported; /* HEALTH_PENDING until the first line */
  char *reported_output;    /* NULL: none logged */
  int stale_reported;       /* the current result's staleness was logged */
  health__repeat_t repeat;  /* identical check_status lines */

  struct health__check *next_job; /* worker queue link */

  health__check_obs_t obs; /* http/metrics.c, guarded by health_t.lock */
} health__check_t;

/* Slack before a result counts as stale, for scheduling jitter. */
#define HEALTH__STALE_GRACE_MS 250
/* When the check's published result goes stale (h->lock held). */
static inline uint64_t health__stale_after(const health__check_t *c) {
  return c->result_mono_ms + c->interval_ms + c->timeout_ms + HEALTH__STALE_GRACE_MS;
}

/* A worker thread of the check pool. */
typedef struct health__worker {
  health_t *h;
  pthread_t thread;
  int finished; /* left its loop (guarded by h->lock) */
  int reaped;   /* joined or detached by health__checks_stop() */
} health__worker_t;

/* The check engine's state: owned by engine/registry.c (registry), engine/state.c
 * (results) and engine/scheduler.c (scheduler, workers). */
typedef struct health__engine {
  int inited;                  /* the condition variables (engine/scheduler.c) */
  pthread_cond_t sched_cond;   /* scheduler wakes: result, stop */
  pthread_cond_t work_cond;    /* workers wake: job queued, stop */
  pthread_cond_t workers_done; /* nworkers reached 0 */
  /* The registry: grows before start only, then frozen.  The layers above
   * read the array and the checks (h->lock held) but never write them. */
  health__check_t **checks;
  size_t nchecks;
  /* Scheduler and pool, guarded by h->lock. */
  health__check_t *queue_head, *queue_tail;
  size_t nworkers, idle_workers;
  size_t queued;             /* jobs in the queue */
  size_t starting_workers;   /* created, not yet waiting for work */
  health__worker_t *workers; /* nchecks slots, allocated at start */
  size_t nworker_slots;
  int free_pending; /* health_free() ran while workers were stuck */
  int sched_stop;
  uint64_t sched_wake_ms; /* when the waiting scheduler wakes by itself */
  int sched_started;
  pthread_t sched_thread;
} health__engine_t;

/* How a check's status counts in the endpoints: no result yet and a
 * failure fail the endpoint for a critical check, only warn for another. */
static inline health_status_t health__shown_status(health_status_t s, int critical) {
  return s == HEALTH_PENDING || s == HEALTH_FAIL ? (critical ? HEALTH_FAIL : HEALTH_WARN) : s;
}

/* A check as the bodies show it, filled by the engine (engine/state.c) so
 * that http/render.c reads no raw check state and decides no mapping. */
typedef struct health__check_view {
  const char *key, *component_type, *component_id; /* component_id may be NULL */
  int critical;
  health_status_t status; /* health__check_status_locked(): stale counts as fail */
  health_status_t shown;  /* health__shown_status(): never PENDING */
  const char *word;       /* "pass", "warn" or "fail": `shown` */
  const char *output;     /* why it is so, else the check's output; NULL: none */
  int has_result;         /* a result was published: its time is shown */
  int64_t result_wall_ms;
  int has_observed; /* a finite observed value to show */
  double observed_value;
  const char *observed_unit; /* "" for none */
} health__check_view_t;
/* Fill `v` for `c` at `now` (h->lock held; v's strings live as long as
 * the lock is held). */
void health__check_view_locked(const health_t *h, const health__check_t *c, uint64_t now,
                               health__check_view_t *v);

/* The condition variables (health_new()): 0 or -1; freed by _free. */
int health__engine_init(health_t *h);
/* health_free(), after health_stop(): 1 if a worker still runs a hung
 * check, which then frees the handle (h->core.free_final) when the last one
 * leaves; 0 if none does and the caller frees it now. */
int health__engine_defer_free(health_t *h);
/* ---- fleet scale (engine/jitter.c, engine/backoff.c) ---- */
/* Defaults and a random seed, from health_new(). */
void health__fleet_init(health_t *h);
/* Uniform in [0, n) (0 for n == 0).  Any thread. */
uint64_t health__rand_below(health_t *h, uint64_t n);
/* When a check's first run is due, at start (h->lock held). */
uint64_t health__first_due_locked(health_t *h, const struct health__check *c, uint64_t now);
/* When a check is due again after the run that started at c->started_ms
 * and ended at `now`; `r` is its result or NULL (h->lock held). */
uint64_t health__next_due_locked(health_t *h, const struct health__check *c,
                                 const health_result_t *r, uint64_t now);
/* A connection attempt failed: ask the engine for a jittered retry. */
/* Publish the step a run is in (engine/registry.c; see struct health_result). */
void health__result_phase(health_result_t *r, const char *phase);
void health__backoff_failed(health__backoff_t *b, health_result_t *r);
/* A connection attempt succeeded. */
void health__backoff_reset(health__backoff_t *b);
/* The checker should close its connection after this run. */
int health__keep_connections(const health_result_t *r);
/* The retry bound after `failures` failed attempts for `interval_ms`:
 * min(interval, interval/4 x 2^failures), at least 1. */
unsigned health__backoff_cap(unsigned interval_ms, unsigned failures);

/*
 * Register a check with a library-owned argument.  Used by the public
 * health_check_add() and by built-in checkers (which pass their own
 * default component type).  On failure `free_arg(arg)` has NOT been called.
 */
int health__add_check(health_t *h, const char *name, health_check_fn fn, void *arg,
                      void (*free_arg)(void *), const health_check_options_t *opts,
                      const char *default_component_type, health_error_t *err);

int health__checks_start(health_t *h, health_error_t *err);
void health__checks_stop(health_t *h);
void health__checks_free(health_t *h);

/* Log what the check now reports if it changed (engine/state.c, h->lock
 * held); `cause`: "result", "timeout", "stale". */
void health__check_report_locked(health_t *h, health__check_t *c, uint64_t now, const char *cause);
/* Apply a completed (or timed-out) run (engine/state.c, h->lock held). */
void health__publish_locked(health_t *h, health__check_t *c, health_status_t status,
                            const char *output, const health_result_t *r);

/* What health_check_find() reports about `c`, with h->lock held (also used
 * by health_check_foreach()). */
void health__check_info_locked(health_t *h, const health__check_t *c, health_check_info_t *out);
/* Effective status of a check as rendered (stale results count as failed). */
health_status_t health__check_status_locked(const health_t *h, const health__check_t *c,
                                            uint64_t now, const char **why);

/* Aggregate status of an endpoint (HEALTH_READINESS / HEALTH_LIVENESS)
 * with h->lock held; *valid_until_ms receives when it may go stale. */
health_status_t health__aggregate_locked(health_t *h, unsigned endpoint, uint64_t now,
                                         uint64_t *valid_until_ms);
/* ---- the registry, read by the layers above (engine/registry.c) ----
 * Nothing outside the engine walks h->eng.checks: it calls these.  The
 * registry grows only before start, so after start an index stays valid
 * and a check pointer lives until the handle is freed.  The *_locked ones
 * want h->lock, or a registry that cannot change (after start). */
/* The i-th check in registration order, or NULL when i >= the count:
 *   for (size_t i = 0; (c = health__check_at_locked(h, i)); i++) */
const health__check_t *health__check_at_locked(const health_t *h, size_t i);
size_t health__checks_count_locked(const health_t *h);
/* The check whose name (key: 0) or body key (key: 1) is `s`, or NULL;
 * *idx (may be NULL) receives its index. */
const health__check_t *health__check_find_locked(const health_t *h, const char *s, int key,
                                                 size_t *idx);

/* ---- ready-made checkers configured from the environment (checkers/env_checks.c) ---- */
/* HEALTH_CHECK_* parsed (the values are `lookup`'s, which must outlive
 * the result; `names` as environ: "NAME" or "NAME=VALUE", NULL-ended), then
 * registered all or nothing (a failure removes what it added). */
typedef struct health__checks_env health__checks_env_t;
int health__checks_env_parse(health__lookup_fn lookup, void *arg, const char *const *names,
                             health__checks_env_t **out, health_error_t *err);
int health__checks_env_add(health_t *h, health__checks_env_t *ce, unsigned *added,
                           health_error_t *err);
void health__checks_env_free(health__checks_env_t *ce);
/* Number of registered checks (takes h->lock), and dropping those after the first `keep`
 * (before start; engine/registry.c). */
size_t health__checks_count(health_t *h);
void health__checks_truncate(health_t *h, size_t keep);

#endif /* HEALTH_CHECKS_INT_H */
