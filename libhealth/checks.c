/*
 * The check engine: registry, one scheduler thread that owns every deadline,
 * and a pool of worker threads that run the callbacks.
 *
 * Why the deadline lives in the scheduler and not in the worker: a custom
 * callback can hang forever and nothing can interrupt it.  The scheduler
 * publishes "timeout" at the deadline regardless, and the check is simply
 * not dispatched again until its stuck worker returns.  The pool grows when
 * every worker is busy (bounded by the number of checks, since runs of one
 * check never overlap), so one hung check never delays the others.
 *
 * All mutable check state is guarded by h->lock.  The request path never
 * runs a check: it only reads published results (see render.c).
 */
#include "health-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Slack before a result counts as stale, for scheduling jitter. */
#define STALE_GRACE_MS 250

/* Upper bound on worker threads.  Beyond it, due runs wait in the queue;
 * their deadline runs from dispatch, so a queue that cannot drain shows as
 * timeouts, never as stale passes. */
#define MAX_WORKERS 64

HEALTH_EXPORT void health_check_options_init(health_check_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->critical = 1;
  o->endpoints = HEALTH_READINESS;
}

/* ---- results, as seen by callbacks ---- */

HEALTH_EXPORT void health_result_set(health_result_t *r, health_status_t status,
                                     const char *fmt, ...) {
  if (!r) return;
  if (status != HEALTH_PASS && status != HEALTH_WARN) status = HEALTH_FAIL;
  r->status = status;
  r->status_set = 1;
  r->output[0] = 0;
  if (fmt) {
    size_t cap = r->max_output + 1;
    if (cap > sizeof r->output) cap = sizeof r->output;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->output, cap, fmt, ap);
    va_end(ap);
  }
}

HEALTH_EXPORT void health_result_observe(health_result_t *r, double value,
                                         const char *unit) {
  if (!r) return;
  r->has_observed = 1;
  r->observed_value = value;
  snprintf(r->observed_unit, sizeof r->observed_unit, "%s", unit ? unit : "");
}

HEALTH_EXPORT unsigned health_result_remaining_ms(const health_result_t *r) {
  if (!r) return 0;
  uint64_t now = health__now_ms();
  return now >= r->deadline_ms ? 0 : (unsigned)(r->deadline_ms - now);
}

/* ---- registry ---- */

int health__valid_name(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > HEALTH__NAME_MAX) return 0;
  for (const char *p = n; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static void check_free(health__check_t *c) {
  if (!c) return;
  if (c->free_arg) c->free_arg(c->arg);
  free(c->name);
  free(c->key);
  free(c->component_type);
  free(c->component_id);
  free(c->output);
  free(c->reported_output);
  free(c);
}

static char *dup_or_null(const char *s, int *failed) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *failed = 1;
  return d;
}

int health__add_check(health_t *h, const char *name, health_check_fn fn,
                      void *arg, void (*free_arg)(void *),
                      const health_check_options_t *opts,
                      const char *default_component_type, health_error_t *err) {
  if (!h || !name || !fn)
    return health__err(err, HEALTH_EINVAL, "health_add_check: handle, name and callback are required");
  if (!health__valid_name(name))
    return health__err(err, HEALTH_EINVAL,
                       "check name must be 1-%d characters of A-Z a-z 0-9 . _ -",
                       HEALTH__NAME_MAX);
  health_check_options_t o;
  if (opts) o = *opts;
  else health_check_options_init(&o);
  if (o.endpoints == 0 || (o.endpoints & ~(HEALTH_READINESS | HEALTH_LIVENESS)))
    return health__err(err, HEALTH_EINVAL, "check '%s': endpoints must be HEALTH_READINESS and/or HEALTH_LIVENESS", name);
  unsigned interval = o.interval_ms ? o.interval_ms : h->opt.check_interval_ms;
  unsigned timeout = o.timeout_ms ? o.timeout_ms : h->opt.check_timeout_ms;
  if (interval < 10 || interval > 86400000u)
    return health__err(err, HEALTH_EINVAL, "check '%s': interval must be 10 ms to 24 h", name);
  if (timeout < 1 || timeout > 600000u)
    return health__err(err, HEALTH_EINVAL, "check '%s': timeout must be 1 ms to 10 min", name);
  if (o.failure_threshold > 100 || o.success_threshold > 100)
    return health__err(err, HEALTH_EINVAL, "check '%s': thresholds must be 1-100", name);
  const char *measurement = o.measurement ? o.measurement : "responseTime";
  /* The key is "<name>:<measurement>": a ':' (or anything outside the
   * name grammar) in either part makes a key the format forbids. */
  if (!health__valid_name(measurement))
    return health__err(err, HEALTH_EINVAL,
                       "check '%s': measurement must be 1-%d characters of A-Z a-z 0-9 . _ - (no ':')",
                       name, HEALTH__NAME_MAX);
  if (o.critical != 0 && o.critical != 1)
    return health__err(err, HEALTH_EINVAL, "check '%s': critical must be 0 or 1 (got %d)", name, o.critical);
  pthread_mutex_lock(&h->lock);
  int rc = 0;
  if (h->state != HEALTH__ST_NEW) {
    rc = health__err(err, HEALTH_ESTATE, "checks must be added before health_start()");
    goto out;
  }
  for (size_t i = 0; i < h->nchecks; i++)
    if (strcmp(h->checks[i]->name, name) == 0) {
      rc = health__err(err, HEALTH_EEXIST, "a check named '%s' already exists", name);
      goto out;
    }
  health__check_t *c = calloc(1, sizeof *c);
  health__check_t **grown = c ? realloc(h->checks, (h->nchecks + 1) * sizeof *grown) : NULL;
  if (!grown) {
    free(c);
    rc = health__err(err, HEALTH_ENOMEM, "out of memory adding check '%s'", name);
    goto out;
  }
  h->checks = grown;
  int failed = 0;
  c->name = dup_or_null(name, &failed);
  c->component_type = dup_or_null(o.component_type ? o.component_type
                                  : default_component_type ? default_component_type
                                  : "component", &failed);
  c->component_id = dup_or_null(o.component_id, &failed);
  if (asprintf(&c->key, "%s:%s", name, measurement) < 0) { c->key = NULL; failed = 1; }
  if (failed) {
    check_free(c); /* free_arg is still NULL here: the caller keeps arg */
    rc = health__err(err, HEALTH_ENOMEM, "out of memory adding check '%s'", name);
    goto out;
  }
  c->fn = fn;
  c->arg = arg;
  c->free_arg = free_arg;
  c->interval_ms = interval;
  c->timeout_ms = timeout;
  c->failure_threshold = o.failure_threshold ? o.failure_threshold : h->opt.failure_threshold;
  c->success_threshold = o.success_threshold ? o.success_threshold : h->opt.success_threshold;
  c->critical = o.critical ? 1 : 0;
  c->endpoints = o.endpoints;
  c->effective = HEALTH_PENDING;
  c->last = HEALTH_PENDING;
  h->checks[h->nchecks++] = c;
  if (timeout >= interval) {
    /* Kept as given (documented): runs never overlap, so the next run
     * waits for a slow one, and a hang shows only after the timeout. */
    char t[24], iv[24];
    snprintf(t, sizeof t, "%u", timeout);
    snprintf(iv, sizeof iv, "%u", interval);
    health__log(h, HEALTH_LOG_WARN, "check_timeout_not_below_interval", "check", name, "#timeout_ms", t,
                "#interval_ms", iv, "message",
                "the timeout is not shorter than the interval: runs never overlap, so a slow run delays the next one",
                NULL);
  }
out:
  pthread_mutex_unlock(&h->lock);
  return rc;
}

HEALTH_EXPORT int health_add_check(health_t *h, const char *name,
                                   health_check_fn fn, void *arg,
                                   void (*free_arg)(void *),
                                   const health_check_options_t *opts,
                                   health_error_t *err) {
  return health__add_check(h, name, fn, arg, free_arg, opts, "component", err);
}

/* ---- status ---- */

const char *health__status_word(health_status_t s) {
  switch (s) {
    case HEALTH_PASS: return "pass";
    case HEALTH_WARN: return "warn";
    case HEALTH_FAIL: return "fail";
    default: return "pending";
  }
}

static uint64_t stale_after(const health__check_t *c) {
  return c->result_mono_ms + c->interval_ms + c->timeout_ms + STALE_GRACE_MS;
}

health_status_t health__check_status_locked(const health_t *h,
                                            const health__check_t *c,
                                            uint64_t now, const char **why) {
  (void)h;
  if (why) *why = NULL;
  if (c->effective == HEALTH_PENDING) {
    if (why) *why = "pending: no result yet";
    return HEALTH_PENDING;
  }
  if (now > stale_after(c)) {
    /* A run stuck past its deadline: its timeout is the first cause and
     * says more than "stale". */
    if (why)
      *why = c->running && c->timed_out && c->output ? c->output
                                                     : "stale: no fresh result within interval + timeout";
    return HEALTH_FAIL;
  }
  return c->effective;
}

health_status_t health__aggregate_locked(health_t *h, unsigned endpoint,
                                         uint64_t now, uint64_t *valid_until_ms) {
  health_status_t st = HEALTH_PASS;
  uint64_t vu = UINT64_MAX;
  for (size_t i = 0; i < h->nchecks; i++) {
    const health__check_t *c = h->checks[i];
    if (!(c->endpoints & endpoint)) continue;
    health_status_t s = health__check_status_locked(h, c, now, NULL);
    if (c->effective != HEALTH_PENDING && stale_after(c) + 1 < vu) vu = stale_after(c) + 1;
    if (s == HEALTH_PENDING || s == HEALTH_FAIL) s = c->critical ? HEALTH_FAIL : HEALTH_WARN;
    if (s > st) st = s;
  }
  if (endpoint == HEALTH_READINESS && atomic_load(&h->draining)) st = HEALTH_FAIL;
  /* heartbeats, startup gates, manual readiness (readiness.c) */
  st = health__controls_aggregate_locked(h, endpoint, now, st, &vu);
  if (valid_until_ms) *valid_until_ms = vu;
  return st;
}

HEALTH_EXPORT health_status_t health_status(health_t *h, unsigned endpoint) {
  if (!h || (endpoint != HEALTH_READINESS && endpoint != HEALTH_LIVENESS)) return HEALTH_FAIL;
  pthread_mutex_lock(&h->lock);
  health_status_t s = health__aggregate_locked(h, endpoint, health__now_ms(), NULL);
  pthread_mutex_unlock(&h->lock);
  return s;
}

void health__check_info_locked(health_t *h, const health__check_t *c,
                               health_check_info_t *out) {
  memset(out, 0, sizeof *out);
  const char *why;
  out->status = health__check_status_locked(h, c, health__now_ms(), &why);
  out->last_status = c->last;
  out->runs = c->runs;
  out->consecutive_failures = c->consecutive_failures;
  out->consecutive_successes = c->consecutive_successes;
  out->running = c->running;
  out->has_observed = c->has_observed;
  out->observed_value = c->observed_value;
  memcpy(out->observed_unit, c->observed_unit, sizeof out->observed_unit);
  snprintf(out->output, sizeof out->output, "%s", why ? why : c->output ? c->output : "");
}

HEALTH_EXPORT int health_check_get(health_t *h, const char *name,
                                   health_check_info_t *out) {
  if (!h || !name || !out) return HEALTH_EINVAL;
  int rc = HEALTH_ENOENT;
  pthread_mutex_lock(&h->lock);
  for (size_t i = 0; i < h->nchecks; i++) {
    const health__check_t *c = h->checks[i];
    if (strcmp(c->name, name) != 0) continue;
    health__check_info_locked(h, c, out);
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* Two outputs tell the same news if they differ only in digits
 * ("backlog 10234" / "backlog 10301"). */
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int same_news(const char *a, const char *b) {
  if (!a || !b) return a == b;
  for (;;) {
    if (is_digit(*a) && is_digit(*b)) { /* a run of digits matches any run */
      while (is_digit(*a)) a++;
      while (is_digit(*b)) b++;
      continue;
    }
    if (*a != *b) return 0;
    if (!*a) return 1;
    a++, b++;
  }
}

/*
 * Transition detection: what the check reports (its status as /ready and
 * /health render it, and its output) changed since the last line logged:
 * one "check_status" line, through the check's repeat filter.  Called after
 * every publication (results and timeouts) and by the scheduler when a
 * result goes stale, with h->lock held.  Other observers of transitions
 * (metrics, listeners) belong beside this call.
 */
static void check_report_transition_locked(health_t *h, health__check_t *c, uint64_t now,
                                           const char *cause) {
  const char *why;
  health_status_t s = health__check_status_locked(h, c, now, &why);
  const char *out = why ? why : c->output ? c->output : "";
  if (c->reported_output && s == c->reported && same_news(out, c->reported_output)) return;
  char *copy = strdup(out);
  if (!copy) return; /* out of memory: the next change logs */
  health_status_t from = c->reported_output ? c->reported : HEALTH_PENDING;
  free(c->reported_output);
  c->reported_output = copy;
  c->reported = s;
  char fails[24], thr[24];
  snprintf(fails, sizeof fails, "%u", c->consecutive_failures);
  snprintf(thr, sizeof thr, "%u", c->failure_threshold);
  health_log_level_t level = (s == HEALTH_FAIL || c->last == HEALTH_FAIL) ? HEALTH_LOG_WARN : HEALTH_LOG_INFO;
  health__log_repeat(h, &c->repeat, c->name, level, "check_status", "check", c->name,
                     "from", health__status_word(from), "to", health__status_word(s), "output", copy,
                     "cause", cause, "last_run", health__status_word(c->last),
                     "#consecutive_failures", fails, "#failure_threshold", thr,
                     "#critical", c->critical ? "true" : "false", NULL);
}

/* Apply a completed (or timed-out) run, with h->lock held. */
static void publish_locked(health_t *h, health__check_t *c, health_status_t status,
                           const char *output, const health_result_t *r) {
  uint64_t now = health__now_ms();
  c->runs++;
  c->last = status;
  if (status == HEALTH_FAIL) {
    c->consecutive_failures++;
    c->consecutive_successes = 0;
  } else {
    c->consecutive_successes++;
    c->consecutive_failures = 0;
  }
  health_status_t prev = c->effective, eff;
  if (prev == HEALTH_PENDING)
    eff = status; /* the first result counts at once: never ready on a failure */
  else if (prev == HEALTH_FAIL)
    eff = (status != HEALTH_FAIL && c->consecutive_successes >= c->success_threshold) ? status : HEALTH_FAIL;
  else
    eff = status != HEALTH_FAIL ? status
          : c->consecutive_failures >= c->failure_threshold ? HEALTH_FAIL : prev;
  c->effective = eff;

  char *old = c->output;
  c->output = (output && *output) ? strdup(output) : NULL;
  if (c->output || !old || !output || !*output) free(old);
  else c->output = old; /* out of memory: keep the previous text */
  c->has_observed = r ? r->has_observed : 0;
  if (c->has_observed) {
    c->observed_value = r->observed_value;
    memcpy(c->observed_unit, r->observed_unit, sizeof c->observed_unit);
  }
  c->result_wall_ms = health__wall_ms();
  c->result_mono_ms = now;

  c->stale_reported = 0;
  check_report_transition_locked(h, c, now, c->timed_out ? "timeout" : "result");
  health__obs_publish_locked(h, c, prev, status); /* metrics counters, listeners */
  health__state_changed(h);
}

/* ---- scheduler and workers ---- */

static void abs_deadline(struct timespec *ts, uint64_t mono_ms) {
  ts->tv_sec = (time_t)(mono_ms / 1000);
  ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static void *worker_main(void *arg);

static void dispatch_locked(health_t *h, health__check_t *c, uint64_t now) {
  c->running = 1;
  c->timed_out = 0;
  c->started_ms = now;
  c->deadline_ms = now + c->timeout_ms;
  health__obs_dispatch_locked(c);
  c->next_job = NULL;
  if (h->queue_tail) h->queue_tail->next_job = c;
  else h->queue_head = c;
  h->queue_tail = c;
  h->queued++;
  /* Grow only when the queue outnumbers the workers that will take from it:
   * idle ones (a signalled worker counts as idle until it wakes) and ones
   * just created.  Testing idle_workers == 0 made one scheduler pass over N
   * due checks create N threads (1000 checks: 1004 threads, 15 MiB RSS). */
  size_t cap = h->nchecks < MAX_WORKERS ? h->nchecks : MAX_WORKERS;
  if (h->queued > h->idle_workers + h->starting_workers && h->nworkers < cap) {
    /* Joinable, so health_stop() can wait until a finished worker has
     * really returned (thread-local destructors, e.g. OpenSSL's, run after
     * our code; a detached thread could still be in them at exit()). */
    health__worker_t *w = &h->workers[h->nworker_slots];
    if (h->nworker_slots < h->nchecks) w->h = h, w->finished = 0;
    if (h->nworker_slots < h->nchecks &&
        health__thread_create(&w->thread, worker_main, w, 0) == 0) {
      h->nworker_slots++;
      h->nworkers++;
      h->starting_workers++;
    } else if (h->nworkers == 0) {
      /* No thread at all: fail the run now rather than leave it queued. */
      h->queue_head = h->queue_tail = NULL;
      h->queued = 0;
      c->running = 0;
      c->next_due_ms = now + c->interval_ms;
      publish_locked(h, c, HEALTH_FAIL, "could not start a worker thread", NULL);
      return;
    }
  }
  pthread_cond_signal(&h->work_cond);
}

static void *sched_main(void *arg) {
  health_t *h = arg;
  pthread_mutex_lock(&h->lock);
  while (!h->sched_stop) {
    uint64_t now = health__now_ms();
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < h->nchecks; i++) {
      health__check_t *c = h->checks[i];
      if (c->effective != HEALTH_PENDING && !c->stale_reported) {
        /* A result going stale is a transition too: wake for it. */
        if (now > stale_after(c)) {
          c->stale_reported = 1;
          check_report_transition_locked(h, c, now, "stale");
          health__state_changed(h); /* the bodies change now, with the log */
        } else if (stale_after(c) + 1 < next) {
          next = stale_after(c) + 1;
        }
      }
      if (c->running) {
        if (c->timed_out) continue; /* waits for its worker to return */
        if (now >= c->deadline_ms) {
          char msg[64];
          snprintf(msg, sizeof msg, "timeout after %u ms", c->timeout_ms);
          c->timed_out = 1;
          publish_locked(h, c, HEALTH_FAIL, msg, NULL);
        } else if (c->deadline_ms < next) {
          next = c->deadline_ms;
        }
      } else if (now >= c->next_due_ms) {
        dispatch_locked(h, c, now);
        if (c->running && c->deadline_ms < next) next = c->deadline_ms;
        else if (!c->running && c->next_due_ms < next) next = c->next_due_ms;
      } else if (c->next_due_ms < next) {
        next = c->next_due_ms;
      }
    }
    /* Workers wake us only for a check due before this (see worker_main). */
    h->sched_wake_ms = next;
    if (next == UINT64_MAX) {
      pthread_cond_wait(&h->sched_cond, &h->lock);
    } else {
      struct timespec ts;
      abs_deadline(&ts, next);
      pthread_cond_timedwait(&h->sched_cond, &h->lock, &ts);
    }
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

static void *worker_main(void *arg) {
  health__worker_t *self = arg;
  health_t *h = self->h;
  /* The result lives on this thread's heap, not its stack, so a callback
   * abandoned at its deadline writes only into memory it still owns. */
  health_result_t *r = malloc(sizeof *r);
  pthread_mutex_lock(&h->lock);
  h->starting_workers--;
  for (;;) {
    while (!h->queue_head && !h->sched_stop) {
      h->idle_workers++;
      pthread_cond_wait(&h->work_cond, &h->lock);
      h->idle_workers--;
    }
    if (h->sched_stop) break;
    health__check_t *c = h->queue_head;
    h->queue_head = c->next_job;
    if (!h->queue_head) h->queue_tail = NULL;
    h->queued--;
    if (!r) {
      c->running = 0;
      c->next_due_ms = health__now_ms() + c->interval_ms;
      publish_locked(h, c, HEALTH_FAIL, "out of memory", NULL);
      r = malloc(sizeof *r);
      continue;
    }
    memset(r, 0, sizeof *r);
    r->deadline_ms = c->deadline_ms;
    r->max_output = h->opt.max_output_bytes;
    r->h = h;
    r->interval_ms = c->interval_ms;
    pthread_mutex_unlock(&h->lock);

    c->fn(r, c->arg);

    pthread_mutex_lock(&h->lock);
    uint64_t now = health__now_ms();
    if (h->free_pending) {
      /* health_free() has returned: the application may have torn down
       * its log sink, and nobody can read a result any more. */
    } else if (!c->timed_out) {
      if (r->status_set)
        publish_locked(h, c, r->status, r->output, r);
      else
        publish_locked(h, c, HEALTH_FAIL, "check returned without a status", r);
    } else {
      char ms[32];
      snprintf(ms, sizeof ms, "%llu", (unsigned long long)(now - c->started_ms));
      health__log(h, HEALTH_LOG_WARN, "check_late", "check", c->name,
                  "#elapsed_ms", ms, NULL);
    }
    c->running = 0;
    c->timed_out = 0;
    c->next_due_ms = health__next_due_locked(h, c, r, now); /* jitter.c */
    /* A context switch per completed run adds up with many checks: the
     * scheduler already plans to wake by sched_wake_ms, so it only needs a
     * signal when this check is due earlier. */
    if (c->next_due_ms < h->sched_wake_ms) pthread_cond_signal(&h->sched_cond);
  }
  h->nworkers--;
  self->finished = 1;
  int last = h->nworkers == 0;
  int free_now = last && h->free_pending;
  if (last) pthread_cond_broadcast(&h->workers_done);
  pthread_mutex_unlock(&h->lock);
  free(r);
  if (free_now) health__free_final(h); /* health_free() left it to us */
  return NULL;
}

int health__checks_start(health_t *h, health_error_t *err) {
  uint64_t now = health__now_ms();
  h->workers = calloc(h->nchecks ? h->nchecks : 1, sizeof *h->workers);
  if (!h->workers) return health__err(err, HEALTH_ENOMEM, "out of memory starting the checks");
  pthread_mutex_lock(&h->lock);
  h->sched_stop = 0;
  for (size_t i = 0; i < h->nchecks; i++)
    h->checks[i]->next_due_ms = health__first_due_locked(h, h->checks[i], now);
  pthread_mutex_unlock(&h->lock);
  if (health__thread_create(&h->sched_thread, sched_main, h, 0) != 0)
    return health__err(err, HEALTH_ESYS, "could not start the scheduler thread: %s", strerror(errno));
  h->sched_started = 1;
  return 0;
}

void health__checks_stop(health_t *h) {
  pthread_mutex_lock(&h->lock);
  h->sched_stop = 1;
  pthread_cond_broadcast(&h->sched_cond);
  pthread_cond_broadcast(&h->work_cond);
  pthread_mutex_unlock(&h->lock);
  if (h->sched_started) {
    pthread_join(h->sched_thread, NULL);
    h->sched_started = 0;
  }
  /* Runs in progress get until their deadline; after that they are
   * abandoned (their workers free the handle if it is gone by then). */
  pthread_mutex_lock(&h->lock);
  uint64_t until = health__now_ms();
  for (size_t i = 0; i < h->nchecks; i++)
    if (h->checks[i]->running && !h->checks[i]->timed_out && h->checks[i]->deadline_ms > until)
      until = h->checks[i]->deadline_ms;
  until += 50;
  while (h->nworkers > 0) {
    struct timespec ts;
    abs_deadline(&ts, until);
    if (pthread_cond_timedwait(&h->workers_done, &h->lock, &ts) == ETIMEDOUT) break;
  }
  if (h->nworkers > 0) {
    for (size_t i = 0; i < h->nchecks; i++)
      if (h->checks[i]->running)
        health__log(h, HEALTH_LOG_WARN, "check_abandoned", "check", h->checks[i]->name, NULL);
  }
  h->queue_head = h->queue_tail = NULL;
  h->queued = 0;
  for (size_t i = 0; i < h->nchecks; i++) health__repeat_flush(h, &h->checks[i]->repeat);
  /* Join the workers that returned; detach the ones stuck in a callback. */
  for (size_t i = 0; i < h->nworker_slots; i++) {
    health__worker_t *w = &h->workers[i];
    if (w->reaped) continue;
    if (!w->finished) {
      pthread_detach(w->thread);
      w->reaped = 1;
    }
  }
  pthread_mutex_unlock(&h->lock);
  for (size_t i = 0; i < h->nworker_slots; i++) {
    health__worker_t *w = &h->workers[i];
    if (!w->reaped) {
      pthread_join(w->thread, NULL);
      w->reaped = 1;
    }
  }
}

void health__checks_free(health_t *h) {
  for (size_t i = 0; i < h->nchecks; i++) check_free(h->checks[i]);
  free(h->workers);
  h->workers = NULL;
  h->nworker_slots = 0;
  free(h->checks);
  h->checks = NULL;
  h->nchecks = 0;
}

/* Forget the checks registered after the first `keep` (before start), for
 * an all-or-nothing registration that failed half-way (env_checks.c). */
void health__checks_truncate(health_t *h, size_t keep) {
  pthread_mutex_lock(&h->lock);
  if (h->state == HEALTH__ST_NEW)
    while (h->nchecks > keep) check_free(h->checks[--h->nchecks]);
  pthread_mutex_unlock(&h->lock);
}

size_t health__checks_count(health_t *h) {
  pthread_mutex_lock(&h->lock);
  size_t n = h->nchecks;
  pthread_mutex_unlock(&h->lock);
  return n;
}
