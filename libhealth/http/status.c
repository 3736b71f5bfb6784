/*
 * The status of an endpoint (readiness, liveness): the checks, the drain,
 * and the application's controls (controls/readiness.c) folded into one word.
 * Above the check engine and the controls; below everything that shows a
 * status (http/render.c, http/metrics.c, notify/listeners.c, notify/notify_ready.c,
 * controls/agent.c).
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

health_status_t health__aggregate_locked(health_t *h, unsigned endpoint, uint64_t now,
                                         uint64_t *valid_until_ms) {
  health_status_t st = HEALTH_PASS;
  uint64_t vu = UINT64_MAX;
  const health__check_t *c;
  for (size_t i = 0; (c = health__check_at_locked(h, i)); i++) {
    if (!(c->endpoints & endpoint)) continue;
    health_status_t s = health__check_status_locked(h, c, now, NULL);
    if (c->effective != HEALTH_PENDING && health__stale_after(c) + 1 < vu)
      vu = health__stale_after(c) + 1;
    s = health__shown_status(s, c->critical);
    if (s > st) st = s;
  }
  if (endpoint == HEALTH_READINESS && health__draining(h)) st = HEALTH_FAIL;
  /* heartbeats, startup gates, manual readiness (controls/readiness.c) */
  st = health__controls_aggregate_locked(h, endpoint, now, st, &vu);
  if (valid_until_ms) *valid_until_ms = vu;
  return st;
}

HEALTH_EXPORT health_status_t health_status(health_t *h, unsigned endpoint) {
  if (!h || (endpoint != HEALTH_READINESS && endpoint != HEALTH_LIVENESS)) return HEALTH_FAIL;
  if (health__forked(h)) return HEALTH_FAIL; /* fork.c: the parent's state, not the child's */
  pthread_mutex_lock(&h->lock);
  health_status_t s = health__aggregate_locked(h, endpoint, health__now_ms(), NULL);
  pthread_mutex_unlock(&h->lock);
  return s;
}
