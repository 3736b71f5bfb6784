/* Private structures and helpers shared by the libhealth .c files. */
#ifndef HEALTH_INT_H
#define HEALTH_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "thread.h" /* thread creation, monotonic condvars (thread.c) */

#define HEALTH__NAME_MAX 64
#define HEALTH__OUTPUT_MAX 4096 /* upper bound of max_output_bytes */

/* ---- time (time.c) ---- */
uint64_t health__now_ms(void);      /* CLOCK_MONOTONIC, milliseconds */
uint64_t health__now_us(void);      /* CLOCK_MONOTONIC, microseconds */
/* CLOCK_MONOTONIC_COARSE in ms: cheaper, never ahead of health__now_ms(),
 * behind it by at most one scheduler tick.  For the request path. */
uint64_t health__now_ms_coarse(void);
int64_t health__wall_ms(void);      /* CLOCK_REALTIME, milliseconds since the epoch */
/* "2026-11-22T10:00:00.123Z" into buf (at least 32 bytes). */
void health__rfc3339(int64_t wall_ms, char *buf, size_t len);

/* ---- options (env.c) ---- */
/* Range and cross-field checks shared by health_new() and
 * health_options_from_env(); `env` words messages for variables. */
int health__options_validate(const health_options_t *o, int env, health_error_t *err);

/* ---- errors (error.c) ---- */
/* Fill `err` (may be NULL) and return `code`. */
int health__err(health_error_t *err, int code, const char *fmt, ...)
    HEALTH_PRINTF(3, 4);

/* ---- growable buffer (buf.c) ---- */
typedef struct health__buf {
  char *data;
  size_t len;
  size_t cap;
  int failed; /* an allocation failed; contents are incomplete */
} health__buf_t;

void health__buf_init(health__buf_t *b);
void health__buf_free(health__buf_t *b);
void health__buf_add(health__buf_t *b, const char *s, size_t n);
void health__buf_adds(health__buf_t *b, const char *s);
void health__buf_printf(health__buf_t *b, const char *fmt, ...)
    HEALTH_PRINTF(2, 3);
/* Append `s` (n bytes) as the inside of a JSON string: escapes quotes,
 * backslashes and control characters, replaces invalid UTF-8 with U+FFFD. */
void health__buf_json_str(health__buf_t *b, const char *s, size_t n);

/* ---- locale-proof numbers (numfmt.c) ---- */
/* Enough for any double health__fmt_double() writes, with its NUL. */
#define HEALTH__FMT_DOUBLE_LEN 32
/*
 * The shortest decimal that reads back as `v`, whatever the process locale
 * (never a ','): "0.276", "1234.568", "0.0001", "1e+300", "1e-7", "0" (also
 * for -0).  Plain notation for 1e-7 < |v| < 1e21, exponent beyond (the
 * JavaScript layout; valid JSON and Prometheus text).  Non-finite values
 * give "NaN", "+Inf", "-Inf" (Prometheus spelling; JSON has none: check
 * isfinite() first).  Writes at most len - 1 bytes and a NUL; returns the
 * full length.  Any thread; no allocation.  Every number with a fraction
 * that leaves the library goes through here.
 */
size_t health__fmt_double(double v, char *buf, size_t len);
/* Append health__fmt_double(v) to b. */
void health__buf_double(health__buf_t *b, double v);

/* ---- logging (log.c) ---- */
/*
 * One JSON log line: {"ts":...,"mono_ms":...,"level":...,"event":...,k:v...}.
 * The variadic part is key/value pairs of C strings ending with NULL; a key
 * starting with '#' has a raw JSON value (a number), the '#' is dropped.
 * `h` may be NULL (default sink, level info).
 */
void health__log(const health_t *h, health_log_level_t level, const char *event,
                 ...);
/* Same with an explicit sink (for code that has no handle). */
void health__logv(health_log_level_t min, health_log_fn fn, void *arg,
                  health_log_level_t level, const char *event, va_list ap);
/* Same, with `extra` (",\"key\":value...", or NULL) added at the end. */
void health__logv_extra(health_log_level_t min, health_log_fn fn, void *arg,
                        health_log_level_t level, const char *event, const char *extra,
                        va_list ap);

/* ---- identical log lines, once (logrepeat.c) ---- */
/*
 * One stream of lines that may repeat (a check's status lines, a checker's
 * error lines).  A line identical (same event and fields, digits aside) to
 * one of the last HEALTH__REPEAT_SLOTS distinct lines printed, within
 * HEALTH__REPEAT_WINDOW_MS of its printing, is not printed at its level: it
 * goes to debug (nowhere if it was debug) and is counted.  The next copy
 * after the window is printed with "repeated":N; health__repeat_flush()
 * prints "log_repeated" summaries of what is still counted.  A flapping
 * check (pass, fail, pass...) is caught as well as a steady repeat.
 * Zero-initialised; guarded by the caller.
 */
#define HEALTH__REPEAT_WINDOW_MS 60000
#define HEALTH__REPEAT_SLOTS 4
typedef struct health__repeat {
  struct {
    uint64_t hash;        /* 0: empty */
    uint64_t printed_ms;  /* when it was last printed */
    unsigned suppressed;  /* copies since */
    health_log_level_t level;
    char event[32];
  } slot[HEALTH__REPEAT_SLOTS];
  unsigned next;          /* slot to reuse */
  char subject[HEALTH__NAME_MAX + 1];
} health__repeat_t;
/* Log like health__log() through the stream `r`; `subject` names what the
 * lines are about (a check name). */
void health__log_repeat(const health_t *h, health__repeat_t *r, const char *subject,
                        health_log_level_t level, const char *event, ...);
/* Print the summary of suppressed lines, if any (at stop). */
void health__repeat_flush(const health_t *h, health__repeat_t *r);

/* ---- redaction (redact.c) ---- */
/* Copy `url` to `out`, replacing any password (user:PASSWORD@) with "***". */
void health__redact_url(const char *url, char *out, size_t len);
/* Copy `text` to `out`, replacing every occurrence of `secret` (if non-empty)
 * with "***". */
void health__redact_secret(const char *text, const char *secret, char *out,
                           size_t len);

/* ---- fleet scale: jitter, reconnect backoff (jitter.c, backoff.c) ---- */
typedef struct health__fleet {
  int initial_offset, backoff, keep_connections;
  unsigned run_percent;
  atomic_uint_fast64_t rng; /* splitmix64 state, shared by the handle's threads */
} health__fleet_t;

/* Per-checker memory of failed connection attempts (backoff.c). */
typedef struct health__backoff {
  unsigned failures; /* consecutive failed connection attempts */
} health__backoff_t;

/* ---- checks (checks.c) ---- */
struct health_result {
  health_status_t status;
  int status_set;
  char output[HEALTH__OUTPUT_MAX + 1];
  int has_observed;
  double observed_value;
  char observed_unit[16];
  uint64_t deadline_ms; /* monotonic */
  unsigned max_output;
  /* fleet (jitter.c, backoff.c): set by the engine before the run */
  health_t *h;
  unsigned interval_ms;
  /* set by a checker whose connection attempt failed: next run this long
   * after the start of this one (health__backoff_failed) */
  int retry_set;
  unsigned retry_ms;
};

/* ---- observability: per-check counters for /metrics (metrics.c) ---- */
#define HEALTH__BUCKETS 7 /* histogram upper bounds, +Inf apart (metrics.c) */
typedef struct health__check_obs {
  uint64_t started_us;           /* monotonic, when the current run was dispatched */
  uint64_t last_duration_us;     /* of the last completed or timed-out run */
  uint64_t bucket[HEALTH__BUCKETS + 1]; /* per bucket, not cumulative; last: above all */
  uint64_t sum_us, count;        /* observed durations */
  uint64_t failures, timeouts;   /* runs that failed / were cut at the deadline */
  int64_t last_success_wall_ms;  /* last pass or warn; 0: never */
  size_t name_len;               /* strlen(name), 0 until the first render */
} health__check_obs_t;

typedef struct health__check {
  char *name;
  char *key;            /* "<name>:<measurement>" */
  char *component_type;
  char *component_id;   /* may be NULL */
  health_check_fn fn;
  void *arg;
  void (*free_arg)(void *);
  unsigned interval_ms, timeout_ms, failure_threshold, success_threshold;
  int critical;
  unsigned endpoints;

  /* Scheduler state, guarded by health_t.lock. */
  int running;          /* a worker is executing fn */
  int timed_out;        /* the current run passed its deadline */
  uint64_t started_ms, deadline_ms, next_due_ms;

  /* Published result, guarded by health_t.lock. */
  health_status_t effective; /* HEALTH_PENDING until the first result */
  health_status_t last;
  unsigned consecutive_failures, consecutive_successes;
  uint64_t runs;
  char *output;              /* NULL for none */
  int has_observed;
  double observed_value;
  char observed_unit[16];
  int64_t result_wall_ms;
  uint64_t result_mono_ms;

  /* What was last logged as this check's report (transition detection,
   * checks.c), guarded by health_t.lock. */
  health_status_t reported;  /* HEALTH_PENDING until the first line */
  char *reported_output;     /* NULL: none logged */
  int stale_reported;        /* the current result's staleness was logged */
  health__repeat_t repeat;   /* identical check_status lines */

  struct health__check *next_job; /* worker queue link */

  health__check_obs_t obs;  /* metrics.c, guarded by health_t.lock */
} health__check_t;

typedef struct health__hook {
  char *name;
  int order;
  unsigned timeout_ms;
  health_hook_fn fn;
  void *arg;
  size_t seq;
} health__hook_t;

/* Slack before a result counts as stale, for scheduling jitter. */
#define HEALTH__STALE_GRACE_MS 250
/* When the check's published result goes stale (h->lock held). */
static inline uint64_t health__stale_after(const health__check_t *c) {
  return c->result_mono_ms + c->interval_ms + c->timeout_ms + HEALTH__STALE_GRACE_MS;
}

/* ---- shared state and its observers (core.c) ---- */
/* Told, with h->lock held, that something rendered changed. */
typedef void (*health__state_observer_fn)(health_t *h);
/* Told, with h->lock held, that a check's effective status moved from `prev`. */
typedef void (*health__check_observer_fn)(health_t *h, const health__check_t *c,
                                          health_status_t prev);
#define HEALTH__OBSERVERS 4
typedef struct health__core {
  atomic_uint_fast64_t version; /* bumped on every published change */
  /* registered at start by the layers above the engine, h->lock held */
  health__state_observer_fn on_state[HEALTH__OBSERVERS];
  health__check_observer_fn on_check[HEALTH__OBSERVERS];
  size_t nstate, ncheck;
  /* health.c's final free, for the last abandoned worker (check_sched.c) */
  void (*free_final)(health_t *h);
} health__core_t;

/* A pre-rendered answer for one endpoint at one detail level. */
typedef struct health__view {
  uint64_t version;        /* state version it was rendered from */
  uint64_t valid_until_ms; /* re-render after this (a result goes stale) */
  unsigned code;           /* 200 or 503 */
  /* (atomic for the tests only, which look at it from their own thread) */
  _Atomic(struct MHD_Response *) response;
} health__view_t;

/* A worker thread of the check pool. */
typedef struct health__worker {
  health_t *h;
  pthread_t thread;
  int finished; /* left its loop (guarded by h->lock) */
  int reaped;   /* joined or detached by health__checks_stop() */
} health__worker_t;

enum { HEALTH__ST_NEW = 0, HEALTH__ST_STARTED, HEALTH__ST_STOPPED };

struct health {
  health__core_t core; /* version, observers (core.c) */
  /* frozen options (strings owned) */
  health_options_t opt;
  char *address, *detail_token, *service_id, *service_version, *description;

  int state; /* HEALTH__ST_* */
  int sync_inited; /* bits: 1 lock, 2 conds, 8 done_lock */

  /* checks */
  pthread_mutex_t lock;         /* guards checks' mutable fields and the queue */
  pthread_cond_t sched_cond;    /* scheduler wakes: result, stop */
  pthread_cond_t work_cond;     /* workers wake: job queued, stop */
  health__check_t **checks;
  size_t nchecks;
  health__check_t *queue_head, *queue_tail;
  size_t nworkers, idle_workers;
  size_t queued;                /* jobs in the queue */
  size_t starting_workers;      /* created, not yet waiting for work */
  health__worker_t *workers;    /* nchecks slots, allocated at start */
  size_t nworker_slots;
  int free_pending;             /* health_free() ran while workers were stuck */
  int sched_stop;
  uint64_t sched_wake_ms;       /* when the waiting scheduler wakes by itself */
  int sched_started;
  pthread_t sched_thread;
  pthread_cond_t workers_done;  /* nworkers reached 0 */

  /* HTTP */
  struct MHD_Daemon *daemon;
  unsigned bound_port;
  int quiesced_fd;              /* listening socket after quiesce, or -1 */
  /* [0 ready,1 health][0 full,1 status]: MHD's thread only (then
   * health__http_stop(), after MHD_stop_daemon() joined it) */
  health__view_t views[2][2];
  struct MHD_Response *resp_404, *resp_405, *resp_413, *resp_400, *resp_501, *resp_options;
  /* connection guard (guard.c) */
  struct health__guard *guard;  /* slow clients, eviction at the cap, fd headroom */
  unsigned long nofile_max;     /* ceiling for the soft RLIMIT_NOFILE (if nofile_set) */
  int nofile_set;               /* else: up to the hard limit */

  /* shutdown */
  atomic_int draining;
  atomic_int inflight;
  atomic_int signals;           /* shutdown requests seen by the handler/API */
  int drain_pipe[2];            /* readable once draining */
  int wake_pipe[2];             /* signal handler / health_shutdown() -> thread */
  pthread_t shutdown_thread;
  int shutdown_started;
  void (*on_drain)(void *);
  void *on_drain_arg;
  health__hook_t **hooks;
  size_t nhooks;
  pthread_mutex_t done_lock;
  pthread_cond_t done_cond;
  int done;                     /* sequence finished */
  int exit_code;
  struct sigaction old_term, old_int;
  int handlers_installed;

  /* systemd */
  int notify_fd;
  char notify_path[108];
  size_t notify_len;
  uint64_t watchdog_usec;
  int ready_notified;
  pthread_t watchdog_thread;
  int watchdog_started;
  pthread_mutex_t wd_lock;
  pthread_cond_t wd_cond;
  int wd_stop;

  /* observability: metrics, listeners, render API, paths (obs.h) */
  struct health__obs *obs;
  /* fleet scale (jitter.c): frozen at start */
  health__fleet_t fleet;
  /* heartbeats, manual readiness, startup gates, agent (readiness.c) */
  struct health__controls *ctl;
};

/* ---- fleet scale (jitter.c, backoff.c) ---- */
/* Defaults and a random seed, from health_new(). */
void health__fleet_init(health_t *h);
/* Uniform in [0, n) (0 for n == 0).  Any thread. */
uint64_t health__rand_below(health_t *h, uint64_t n);
/* When a check's first run is due, at start (h->lock held). */
uint64_t health__first_due_locked(health_t *h, const struct health__check *c,
                                  uint64_t now);
/* When a check is due again after the run that started at c->started_ms
 * and ended at `now`; `r` is its result or NULL (h->lock held). */
uint64_t health__next_due_locked(health_t *h, const struct health__check *c,
                                 const health_result_t *r, uint64_t now);
/* A connection attempt failed: ask the engine for a jittered retry. */
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
 * health_add_check() and by built-in checkers (which pass their own
 * default component type).  On failure `free_arg(arg)` has NOT been called.
 */
int health__add_check(health_t *h, const char *name, health_check_fn fn,
                      void *arg, void (*free_arg)(void *),
                      const health_check_options_t *opts,
                      const char *default_component_type, health_error_t *err);

int health__checks_start(health_t *h, health_error_t *err);
void health__checks_stop(health_t *h);
void health__checks_free(health_t *h);

/* Resolve `host` (and `port`, may be NULL) for a TCP connection, giving
 * up at `deadline` (monotonic ms) while the lookup finishes on its own
 * thread (resolve.c).  0: *out is the list (freeaddrinfo it); 1: timed
 * out; -1: failed, *why says why (static text). */
struct addrinfo;
int health__resolve(const char *host, const char *port, uint64_t deadline,
                    struct addrinfo **out, const char **why);

/* Register observers (either may be NULL), h->lock held; -1 if full. */
int health__observe_locked(health_t *h, health__state_observer_fn on_state,
                           health__check_observer_fn on_check);
/* Tell the check observers (check_state.c, h->lock held). */
void health__check_changed_locked(health_t *h, const health__check_t *c, health_status_t prev);
/* Log what the check now reports if it changed (check_state.c, h->lock
 * held); `cause`: "result", "timeout", "stale". */
void health__check_report_locked(health_t *h, health__check_t *c, uint64_t now,
                                 const char *cause);
/* Apply a completed (or timed-out) run (check_state.c, h->lock held). */
void health__publish_locked(health_t *h, health__check_t *c, health_status_t status,
                            const char *output, const health_result_t *r);

/* Aggregate status of an endpoint (HEALTH_READINESS / HEALTH_LIVENESS)
 * with h->lock held; *valid_until_ms receives when it may go stale. */
health_status_t health__aggregate_locked(health_t *h, unsigned endpoint,
                                         uint64_t now, uint64_t *valid_until_ms);
/* "pass", "warn", "fail" or "pending" (logs, listener events). */
const char *health__status_word(health_status_t s);
/* What health_check_get() reports about `c`, with h->lock held (also used
 * by health_check_foreach()). */
void health__check_info_locked(health_t *h, const health__check_t *c,
                               health_check_info_t *out);
/* Effective status of a check as rendered (stale results count as failed). */
health_status_t health__check_status_locked(const health_t *h,
                                            const health__check_t *c,
                                            uint64_t now, const char **why);
/* Something rendered changed (h->lock held): bump the version, tell the
 * observers (core.c). */
void health__state_changed(health_t *h);

/* ---- rendering (render.c) ---- */
/* Render the body for `endpoint` at `detail` (0 full, 1 status) with
 * h->lock held.  Returns the HTTP code (200/503); *valid_until_ms as above. */
unsigned health__render_locked(health_t *h, unsigned endpoint, int status_only,
                               uint64_t now, health__buf_t *out,
                               uint64_t *valid_until_ms);

/* ---- HTTP (http.c) ---- */
/* "Bearer <token>" (NULL: none) against the detail token, in constant
 * time; one rule for the health port, /metrics and health_render()
 * (serve.c). */
int health__bearer_ok(const health_t *h, const char *auth);
int health__http_start(health_t *h, health_error_t *err);
void health__http_quiesce(health_t *h);
void health__http_stop(health_t *h);
/* The fixed error and OPTIONS answers (http_fixed.c): 0 or -1 (no memory). */
int health__http_fixed_new(health_t *h);
void health__http_fixed_free(health_t *h);

/* ---- shutdown (shutdown.c) ---- */
int health__shutdown_init(health_t *h);   /* in health_new */
int health__shutdown_start(health_t *h, health_error_t *err);
void health__shutdown_stop(health_t *h);
void health__shutdown_free(health_t *h);
void *health__shutdown_main(void *h);     /* the sequence's thread (shutdown_seq.c) */

/* 1 if `n` is 1-64 characters of [A-Za-z0-9._-]: check, hook and
 * measurement names (checks.c). */
int health__valid_name(const char *n);

/* ---- shutdown plan (plan.c) ---- */
typedef struct health__plan_hook {
  const health__hook_t *hook;
  unsigned timeout_ms;      /* as configured */
  unsigned latest_start_ms; /* after the signal, if the drain and every hook before use their whole time */
  unsigned budget_ms;       /* min(timeout, deadline - latest start): what it is sure to get */
} health__plan_hook_t;

typedef struct health__plan {
  unsigned drain_ms, drain_min_ms, deadline_ms;
  int early;                /* drain_min < drain: may end once nothing is in flight */
  size_t nhooks;
  health__plan_hook_t *hooks; /* in run order */
  unsigned hooks_ms;        /* sum of the hook timeouts */
  unsigned worst_exit_ms;   /* min(deadline, drain + hooks_ms) */
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

/* ---- systemd notify (notify.c) ---- */
void health__notify_init(health_t *h);    /* sdnotify.c: NOTIFY_SOCKET, WATCHDOG_USEC */
int health__notify_start(health_t *h);
void health__notify_stop(health_t *h);
void health__notify(health_t *h, const char *msg);  /* sdnotify.c, any layer */
int health__notify_sent(health_t *h, const char *msg); /* same, 0 if it went out */

/* ---- observability (metrics.c, listeners.c, serve.c) ---- */
/* Internal routes beside HEALTH_READINESS / HEALTH_LIVENESS. */
#define HEALTH__ROUTE_METRICS 3u
enum { HEALTH__PHASE_RUNNING = 0, HEALTH__PHASE_DRAINING, HEALTH__PHASE_FLUSHING,
       HEALTH__PHASE_DONE };

int health__obs_new(health_t *h);                 /* in health_new */
void health__obs_free(health_t *h);               /* when the handle is freed */
int health__obs_start(health_t *h, health_error_t *err); /* in health_start */
/* listeners.c: the notifier thread (registers the listeners' observers) */
int health__listeners_start(health_t *h, health_error_t *err);
void health__listeners_stop(health_t *h);
/* The shutdown sequence reached a phase (HEALTH__PHASE_*). */
void health__obs_phase(health_t *h, int phase);
/* Route of a path on the health port: HEALTH_READINESS, HEALTH_LIVENESS,
 * HEALTH__ROUTE_METRICS, or 0. */
unsigned health__route(const health_t *h, const char *path);
/* Render one check's "key":[{...}] entry (render.c), h->lock held. */
void health__render_check_locked(health_t *h, const health__check_t *c, uint64_t now,
                                 health__buf_t *b);
/* Prometheus / OpenMetrics body (metrics.c), h->lock held. */
void health__metrics_render_locked(health_t *h, int openmetrics, int status_only,
                                   uint64_t now, health__buf_t *b);
/* The shared per-version answers for the health port (serve.c): metrics
 * and per-check views.  `conn` is a struct MHD_Connection *. */
struct MHD_Connection;
int health__serve_extra(health_t *h, struct MHD_Connection *conn, unsigned route,
                        int status_only);
/* ==== liveness and readiness controls: heartbeats (heartbeat.c), manual
 * readiness (readiness.c), startup gates (gates.c), HAProxy agent (agent.c) ==== */

/* A heartbeat.  The beating thread touches only `beats`, alone on its cache
 * line; the sampler thread (heartbeat.c) reads it every few tens of ms and
 * keeps the rest, guarded by h->lock. */
struct health_heartbeat {
  atomic_uint beats;
  char pad_[64 - sizeof(atomic_uint)];
  health_t *h;
  struct health_heartbeat *next;
  char *name, *key;
  unsigned max_age_ms;
  unsigned seen;       /* `beats` at the last sample */
  uint64_t last_ms;    /* monotonic ms at which the sampler last saw a beat */
  int stale;           /* as the sampler last judged it (log transitions) */
};

typedef struct health__gate {
  char *name, *key;
  int open;
  int64_t opened_wall_ms;
  struct health__gate *next;
} health__gate_t;

typedef struct health__controls {
  int inited;                  /* cond below initialised */
  /* heartbeats, guarded by h->lock */
  struct health_heartbeat *heartbeats;
  size_t nheartbeats;
  pthread_cond_t cond;         /* wakes the sampler: new heartbeat, stop */
  pthread_t sampler;
  int sampler_started, sampler_stop;
  /* manual readiness, guarded by h->lock */
  int not_ready;
  char *reason;
  /* startup gates, guarded by h->lock; the list freezes at start */
  health__gate_t *gates, *gates_tail;
  size_t ngates, nclosed;
  unsigned startup_deadline_ms; /* 0: none */
  uint64_t started_ms;          /* monotonic, set by health_start() */
  /* HAProxy agent-check responder (agent.c) */
  int agent_enabled;
  char *agent_address;          /* NULL: the health port's address */
  unsigned agent_port;
  atomic_uint agent_weight;     /* percent sent with "up"; 0: none */
  int agent_fd, agent_wake[2];
  unsigned agent_bound_port;
  pthread_t agent_thread;
  int agent_started;
} health__controls_t;

int health__controls_init(health_t *h);            /* health_new(); -1: no memory */
int health__controls_start(health_t *h, health_error_t *err); /* health_start() */
void health__controls_stop(health_t *h);           /* health_stop() */
void health__controls_free(health_t *h);           /* when the handle is freed */
/* Fold heartbeats, gates and manual readiness into the status `st` of
 * `endpoint` (h->lock held); lowers *vu to when that may change by itself. */
health_status_t health__controls_aggregate_locked(health_t *h, unsigned endpoint,
                                                  uint64_t now, health_status_t st,
                                                  uint64_t *vu);
/* Top-level "output" of a full-detail body (not while draining). */
void health__controls_render_output_locked(health_t *h, unsigned endpoint,
                                           health__buf_t *b);
/* Entries after the checks in "checks":{...}; *first as in render.c. */
void health__controls_render_entries_locked(health_t *h, unsigned endpoint,
                                            uint64_t now, health__buf_t *b, int *first);
/* The reason readiness or liveness fails, one line, h->lock held. */
void health__controls_reason_locked(health_t *h, uint64_t now, char *out, size_t len);
/* heartbeat.c */
int health__heartbeat_start(health_t *h);          /* h->lock held */
void health__heartbeat_stop(health_t *h);
void health__heartbeat_free_all(health_t *h);
/* agent.c */
int health__agent_start(health_t *h, health_error_t *err);
void health__agent_stop(health_t *h);
/* names of heartbeats and gates follow health__valid_name() (checks.c) */
/* ==== end of liveness and readiness controls ==== */

/* ---- ready-made checkers configured from the environment (env_checks.c) ---- */
/* Number of registered checks, and dropping those after the first `keep`
 * (before start; checks.c). */
size_t health__checks_count(health_t *h);
void health__checks_truncate(health_t *h, size_t keep);
/* Option values (env_values.c), 0 or -1: a boolean (1/0, true/false,
 * yes/no, on/off); a whole number in [lo, hi]; a percentage "85" or "85%";
 * a free amount "10%" (*is_pct) or bytes "1048576", "500M", "2GiB". */
int health__env_bool(const char *s, int *out);
int health__env_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out);
int health__env_percent(const char *s, double *out);
int health__env_amount(const char *s, double *pct, uint64_t *bytes, int *is_pct);

/* ---- connection guard (guard.c) ---- */
/* The table of connections of the health port, the head deadlines and
 * their reaper, eviction at the cap, descriptor headroom.  Every call but
 * new/free/env runs on libmicrohttpd's thread. */
typedef struct health__guard health__guard_t;
#define HEALTH__NOFILE_HARD ((unsigned long)-1)
int health__guard_env(health_t *h, health_error_t *err); /* HEALTH_NOFILE_MAX (guard_nofile.c) */
/* Room for `want` connections: raises the soft RLIMIT_NOFILE as far as
 * needed and allowed; returns how many descriptors connections may use
 * (guard_nofile.c). */
unsigned health__guard_fd_room(health_t *h, unsigned want);
health__guard_t *health__guard_new(health_t *h); /* may raise RLIMIT_NOFILE */
void health__guard_free(health__guard_t *g);     /* after MHD_stop_daemon() */
unsigned health__guard_slots(const health__guard_t *g); /* MHD's connection limit */
void health__guard_opened(health__guard_t *g, int fd, void **socket_context);
void health__guard_closed(health__guard_t *g, void **socket_context);
/* The request head arrived: 0 if the connection was cut meanwhile. */
int health__guard_claim(health__guard_t *g, void *socket_context);
void health__guard_answered(health__guard_t *g, void *socket_context, int closing);
/* accept() hit a descriptor limit: free the reserve, evict one. */
void health__guard_emfile(health__guard_t *g);
void health__guard_stats(health__guard_t *g, unsigned long *evicted, unsigned long *reaped,
                         unsigned long *emfile);

#endif /* HEALTH_INT_H */
