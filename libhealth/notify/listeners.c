/*
 * Status listeners and the enumeration of checks.
 *
 * Transitions are found where they happen, with h->lock held: a check's
 * effective status in publish (engine/registry.c), the readiness and liveness answers
 * on every change of state (health__state_changed_locked).  They go into a bounded
 * ring; a notifier thread of the library's own calls the listeners outside
 * every lock, in order.  The engine never waits for a listener: on a full
 * ring the event is dropped and counted, and its sequence number is used up,
 * so a listener sees the gap.
 */
#include "http/obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

HEALTH_EXPORT int health_listener_add(health_t *h, health_listener_fn fn, void *arg,
                                      health_error_t *err) {
  if (!h || !fn)
    return health__err(err, HEALTH_EINVAL, "health_listener_add: handle and function are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_listener_add: the handle belongs to the parent process");
  pthread_mutex_lock(&h->lock);
  int rc = 0;
  if (h->state != HEALTH__ST_NEW)
    rc = health__err(err, HEALTH_ESTATE, "listeners must be added before health_start()");
  else if (h->obs->nlisteners >= HEALTH__MAX_LISTENERS)
    rc = health__err(err, HEALTH_EINVAL, "at most %d listeners", HEALTH__MAX_LISTENERS);
  else {
    h->obs->fns[h->obs->nlisteners] = fn;
    h->obs->args[h->obs->nlisteners++] = arg;
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* Queue one event (h->lock held, so events are queued in the order the
 * state changed). */
static void enqueue(health_t *h, unsigned subject, const health__check_t *c, health_status_t from,
                    health_status_t to, const char *reason) {
  struct health__obs *o = h->obs;
  if (!o->queue) return; /* not started */
  pthread_mutex_lock(&o->qlock);
  uint64_t seq = ++o->seq;
  int log_drop = 0;
  if (o->qcount == HEALTH__EVENT_QUEUE) {
    atomic_fetch_add(&o->dropped, 1);
    log_drop = !o->dropping;
    o->dropping = 1;
  } else {
    health__event_t *e = &o->queue[(o->qhead + o->qcount) % HEALTH__EVENT_QUEUE];
    e->subject = subject;
    e->check = c;
    e->from = from;
    e->to = to;
    e->seq = seq;
    e->wall_ms = health__wall_ms();
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    if (o->qcount++ == 0) pthread_cond_signal(&o->qcond);
  }
  pthread_mutex_unlock(&o->qlock);
  if (log_drop)
    health__log(h, HEALTH_LOG_WARN, "listener_queue_full", "action",
                "transitions dropped until the listeners catch up", NULL);
}

/* A check's effective status moved (a check observer, core/core.c). */
static void check_changed_locked(health_t *h, const health__check_t *c, health_status_t prev) {
  enqueue(h, 0, c, prev, c->effective, c->output ? c->output : "");
}

/* Why an endpoint has the status it has, for the event's reason. */
static void endpoint_reason(health_t *h, unsigned ep, health_status_t st, uint64_t now, char *buf,
                            size_t len) {
  if (ep == HEALTH_READINESS && health__draining(h)) {
    snprintf(buf, len, "draining");
    return;
  }
  const health__check_t *c;
  for (size_t i = 0; (c = health__check_at_locked(h, i)); i++) {
    if (!(c->endpoints & ep)) continue;
    health_status_t s = health__check_status_locked(h, c, now, NULL);
    s = health__shown_status(s, c->critical);
    if (st != HEALTH_PASS && s == st) {
      snprintf(buf, len, "check '%s' is %s", c->name,
               health__status_word(health__check_status_locked(h, c, now, NULL)));
      return;
    }
  }
  /* No check explains a failing endpoint: a control does (a stale
   * heartbeat, a closed gate, manual readiness). */
  if (st == HEALTH_FAIL && health__controls_hb_reason_locked(h, now, buf, len)) return;
  if (st == HEALTH_FAIL && ep == HEALTH_READINESS) {
    health__controls_reason_locked(h, now, buf, len);
    return;
  }
  snprintf(buf, len, st == HEALTH_PASS ? "every check passes" : "no check fails");
}

/* Something rendered changed (a state observer, core/core.c): endpoint
 * transitions. */
static void state_changed_locked(health_t *h) {
  struct health__obs *o = h->obs;
  if (!o || !o->nlisteners || !o->queue) return;
  uint64_t now = health__now_ms();
  for (int i = 0; i < 2; i++) {
    unsigned ep = i == 0 ? HEALTH_READINESS : HEALTH_LIVENESS;
    health_status_t st = health__aggregate_locked(h, ep, now, NULL);
    if (st == o->ep_last[i]) continue;
    char why[HEALTH__REASON_MAX];
    endpoint_reason(h, ep, st, now, why, sizeof why);
    enqueue(h, ep, NULL, o->ep_last[i], st, why);
    o->ep_last[i] = st;
  }
}

static void *notifier_main(void *arg) {
  health_t *h = arg;
  struct health__obs *o = h->obs;
  health__event_t e;
  pthread_mutex_lock(&o->qlock);
  for (;;) {
    while (o->qcount == 0 && !o->qstop) pthread_cond_wait(&o->qcond, &o->qlock);
    if (o->qcount == 0) break; /* stopping, and everything queued was told */
    e = o->queue[o->qhead];
    o->qhead = (o->qhead + 1) % HEALTH__EVENT_QUEUE;
    o->qcount--;
    if (o->qcount == 0) o->dropping = 0;
    pthread_mutex_unlock(&o->qlock);
    health_transition_t t;
    memset(&t, 0, sizeof t);
    t.subject = e.subject;
    t.check = e.check ? e.check->name : NULL;
    t.from = e.from;
    t.to = e.to;
    t.reason = e.reason;
    t.seq = e.seq;
    t.wall_ms = e.wall_ms;
    for (size_t i = 0; i < o->nlisteners; i++) o->fns[i](&t, o->args[i]);
    pthread_mutex_lock(&o->qlock);
  }
  pthread_mutex_unlock(&o->qlock);
  return NULL;
}

int health__listeners_start(health_t *h, health_error_t *err) {
  struct health__obs *o = h->obs;
  if (!o->nlisteners) return 0;
  health__event_t *q = calloc(HEALTH__EVENT_QUEUE, sizeof *q);
  if (!q) return health__err(err, HEALTH_ENOMEM, "out of memory starting the listeners");
  pthread_mutex_lock(&h->lock);
  /* The baseline: no event for the state at start, only for changes. */
  uint64_t now = health__now_ms();
  o->ep_last[0] = health__aggregate_locked(h, HEALTH_READINESS, now, NULL);
  o->ep_last[1] = health__aggregate_locked(h, HEALTH_LIVENESS, now, NULL);
  pthread_mutex_unlock(&h->lock);
  o->qstop = 0;
  if (health__thread_create(&o->thread, notifier_main, h, 0) != 0) {
    free(q);
    return health__err(err, HEALTH_ESYS, "could not start the listener thread");
  }
  pthread_mutex_lock(&h->lock);
  o->queue = q; /* from now on transitions are queued */
  health__observe_locked(h, state_changed_locked, check_changed_locked); /* (never full) */
  pthread_mutex_unlock(&h->lock);
  o->thread_started = 1;
  return 0;
}

/* After the engine stopped: events already queued are still delivered. */
void health__listeners_stop(health_t *h) {
  struct health__obs *o = h->obs;
  if (!o || !o->thread_started) return;
  pthread_mutex_lock(&o->qlock);
  o->qstop = 1;
  pthread_cond_signal(&o->qcond);
  pthread_mutex_unlock(&o->qlock);
  pthread_join(o->thread, NULL);
  o->thread_started = 0;
}

/* ---- enumeration ---- */

HEALTH_EXPORT int health_check_foreach(health_t *h,
                                       int (*fn)(const char *name, const health_check_info_t *info,
                                                 void *arg),
                                       void *arg) {
  if (!h || !fn) return HEALTH_EINVAL;
  if (health__forked(h)) return HEALTH_EFORKED; /* fork.c */
  health_check_info_t info;
  int n = 0;
  for (size_t i = 0;; i++) {
    pthread_mutex_lock(&h->lock);
    if (i >= health__checks_count_locked(h)) {
      pthread_mutex_unlock(&h->lock);
      break;
    }
    /* Checks are never removed and their names never change, so the
     * name stays valid after the lock is dropped. */
    const health__check_t *c = health__check_at_locked(h, i);
    health__check_info_locked(h, c, &info);
    pthread_mutex_unlock(&h->lock);
    n++;
    if (fn(c->name, &info, arg)) break;
  }
  return n;
}
