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
 * runs a check: it only reads published results (see http/render.c).
 *
 * This file: the registry (checks are added before start, freed at the
 * end) and the result a callback fills.  Results and status: engine/state.c;
 * the scheduler and the workers: engine/scheduler.c; endpoint status: http/status.c.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

HEALTH_EXPORT void health_check_options_init(health_check_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->critical = 1;
  o->endpoints = HEALTH_READINESS;
}

/* ---- results, as seen by callbacks ---- */

HEALTH_EXPORT void health_result_set(health_result_t *r, health_status_t status, const char *fmt,
                                     ...) {
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

HEALTH_EXPORT void health_result_observe(health_result_t *r, double value, const char *unit) {
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

void health__result_phase(health_result_t *r, const char *phase) {
  if (r) atomic_store_explicit(&r->phase, phase, memory_order_release);
}

/* ---- registry ---- */

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

int health__add_check(health_t *h, const char *name, health_check_fn fn, void *arg,
                      void (*free_arg)(void *), const health_check_options_t *opts,
                      const char *default_component_type, health_error_t *err) {
  if (!h || !name || !fn)
    return health__err(err, HEALTH_EINVAL,
                       "health_check_add: handle, name and callback are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process", name);
  if (!health__valid_name(name))
    return health__err(err, HEALTH_EINVAL,
                       "check name must be 1-%d characters of A-Z a-z 0-9 . _ -", HEALTH__NAME_MAX);
  health_check_options_t o;
  if (opts) o = *opts;
  else health_check_options_init(&o);
  int rrc = HEALTH__RESERVED_CHECK(&o, "health_check_options", err);
  if (rrc) return rrc;
  if (o.endpoints == 0 || (o.endpoints & ~(HEALTH_READINESS | HEALTH_LIVENESS)))
    return health__err(err, HEALTH_EINVAL,
                       "check '%s': endpoints must be HEALTH_READINESS and/or HEALTH_LIVENESS",
                       name);
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
    return health__err(
        err, HEALTH_EINVAL,
        "check '%s': measurement must be 1-%d characters of A-Z a-z 0-9 . _ - (no ':')", name,
        HEALTH__NAME_MAX);
  if (o.critical != 0 && o.critical != 1)
    return health__err(err, HEALTH_EINVAL, "check '%s': critical must be 0 or 1 (got %d)", name,
                       o.critical);
  pthread_mutex_lock(&h->lock);
  int rc = 0;
  if (h->state != HEALTH__ST_NEW) {
    rc = health__err(err, HEALTH_ESTATE, "checks must be added before health_start()");
    goto out;
  }
  for (size_t i = 0; i < h->eng.nchecks; i++)
    if (strcmp(h->eng.checks[i]->name, name) == 0) {
      rc = health__err(err, HEALTH_EEXIST, "a check named '%s' already exists", name);
      goto out;
    }
  health__check_t *c = calloc(1, sizeof *c);
  health__check_t **grown = c ? realloc(h->eng.checks, (h->eng.nchecks + 1) * sizeof *grown) : NULL;
  if (!grown) {
    free(c);
    rc = health__err(err, HEALTH_ENOMEM, "out of memory adding check '%s'", name);
    goto out;
  }
  h->eng.checks = grown;
  int failed = 0;
  c->name = dup_or_null(name, &failed);
  c->component_type = dup_or_null(o.component_type         ? o.component_type
                                  : default_component_type ? default_component_type
                                                           : "component",
                                  &failed);
  c->component_id = dup_or_null(o.component_id, &failed);
  if (asprintf(&c->key, "%s:%s", name, measurement) < 0) {
    c->key = NULL;
    failed = 1;
  }
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
  h->eng.checks[h->eng.nchecks++] = c;
  if (timeout >= interval) {
    /* Kept as given (documented): runs never overlap, so the next run
     * waits for a slow one, and a hang shows only after the timeout. */
    char t[24], iv[24];
    snprintf(t, sizeof t, "%u", timeout);
    snprintf(iv, sizeof iv, "%u", interval);
    health__log(
        h, HEALTH_LOG_WARN, "check_timeout_not_below_interval", "check", name, "#timeout_ms", t,
        "#interval_ms", iv, "message",
        "the timeout is not shorter than the interval: runs never overlap, so a slow run delays the next one",
        NULL);
  }
out:
  pthread_mutex_unlock(&h->lock);
  return rc;
}

HEALTH_EXPORT int health_check_add(health_t *h, const char *name, health_check_fn fn, void *arg,
                                   void (*free_arg)(void *), const health_check_options_t *opts,
                                   health_error_t *err) {
  return health__add_check(h, name, fn, arg, free_arg, opts, "component", err);
}

/* ---- status ---- */

void health__checks_free(health_t *h) {
  for (size_t i = 0; i < h->eng.nchecks; i++) check_free(h->eng.checks[i]);
  free(h->eng.workers);
  h->eng.workers = NULL;
  h->eng.nworker_slots = 0;
  free(h->eng.checks);
  h->eng.checks = NULL;
  h->eng.nchecks = 0;
  if (h->eng.inited) { /* health__engine_init() (engine/scheduler.c) */
    pthread_cond_destroy(&h->eng.sched_cond);
    pthread_cond_destroy(&h->eng.work_cond);
    pthread_cond_destroy(&h->eng.workers_done);
    h->eng.inited = 0;
  }
}

/* Forget the checks registered after the first `keep` (before start), for
 * an all-or-nothing registration that failed half-way (checkers/env_checks.c). */
void health__checks_truncate(health_t *h, size_t keep) {
  pthread_mutex_lock(&h->lock);
  if (h->state == HEALTH__ST_NEW)
    while (h->eng.nchecks > keep) check_free(h->eng.checks[--h->eng.nchecks]);
  pthread_mutex_unlock(&h->lock);
}

size_t health__checks_count(health_t *h) {
  pthread_mutex_lock(&h->lock);
  size_t n = h->eng.nchecks;
  pthread_mutex_unlock(&h->lock);
  return n;
}

const health__check_t *health__check_at_locked(const health_t *h, size_t i) {
  return i < h->eng.nchecks ? h->eng.checks[i] : NULL;
}

size_t health__checks_count_locked(const health_t *h) { return h->eng.nchecks; }

const health__check_t *health__check_find_locked(const health_t *h, const char *s, int key,
                                                 size_t *idx) {
  for (size_t i = 0; i < h->eng.nchecks; i++)
    if (strcmp(key ? h->eng.checks[i]->key : h->eng.checks[i]->name, s) == 0) {
      if (idx) *idx = i;
      return h->eng.checks[i];
    }
  return NULL;
}
