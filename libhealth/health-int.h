/*
 * The handle and the map of the library's private headers.  Every .c file
 * of the library includes this one; each subsystem's state and calls are
 * in its own header, and `struct health` composes them:
 *
 *   base-int.h      utilities, the lock and the shared core (core.c)
 *   checks-int.h    the check engine (checks.c, check_state.c,
 *                   check_sched.c, jitter.c, backoff.c) and status.c
 *   controls-int.h  heartbeats, manual readiness, gates, agent settings
 *   shutdown-int.h  the shutdown sequence, hooks, plan
 *   notify-int.h    systemd notification
 *   http-int.h      the health port, its guard, and the views it serves
 *   obs.h           the views' own state (metrics, listeners, answer cache)
 *
 * A field is written only by the files its header names; the layers and
 * who may call whom: docs/ARCHITECTURE.md.
 */
#ifndef HEALTH_INT_H
#define HEALTH_INT_H

#include "base-int.h"
#include "checks-int.h"
#include "controls-int.h"
#include "shutdown-int.h"
#include "notify-int.h"
#include "http-int.h"

struct health {
  health__core_t core;  /* version, observers (core.c) */
  pthread_mutex_t lock; /* the handle's lock (core.c): guards the engine's
                         * mutable fields, the controls, `state` */
  int state;            /* HEALTH__ST_* (health.c) */
  /* frozen options (strings owned; health.c) */
  health_options_t opt;
  char *address, *detail_token, *service_id, *service_version, *description;

  health__engine_t eng;    /* checks-int.h */
  health__http_t http;     /* http-int.h */
  health__shutdown_t sd;   /* shutdown-int.h */
  health__notify_t notify; /* notify-int.h */
  /* observability: metrics, listeners, render API, paths (obs.h) */
  struct health__obs *obs;
  /* fleet scale (jitter.c): frozen at start */
  health__fleet_t fleet;
  /* heartbeats, manual readiness, startup gates, agent (controls-int.h) */
  struct health__controls *ctl;
};

/* The state version (core.c): cached answers are rendered again when it
 * moves.  Any thread, no lock. */
static inline uint64_t health__version(const health_t *h) {
  return atomic_load(&((health_t *)h)->core.version);
}

/* What other layers may read of the shutdown's state (any thread). */
static inline int health__draining(const health_t *h) {
  return atomic_load(&((health_t *)h)->sd.draining);
}
static inline int health__inflight(const health_t *h) {
  return atomic_load(&((health_t *)h)->sd.inflight);
}

/* ==== checker interface (checker.c, checker.h) ==== */
/* health__log_repeat() with a va_list (logrepeat.c), for checker.c. */
void health__log_repeatv(const health_t *h, health__repeat_t *r, const char *subject,
                         health_log_level_t level, const char *event, va_list ap);
/* ==== end of checker interface ==== */

#endif /* HEALTH_INT_H */
