/*
 * The handle and the map of the library's private headers.  Every .c file
 * of the library includes this one; each subsystem's state and calls are
 * in its own header, and `struct health` composes them:
 *
 *   core/base_int.h      utilities, the lock and the shared core (core/core.c)
 *   engine/engine_int.h    the check engine (engine/registry.c, engine/state.c,
 *                   engine/scheduler.c, engine/jitter.c, engine/backoff.c) and http/status.c
 *   controls/controls_int.h  heartbeats, manual readiness, gates, agent settings
 *   shutdown/shutdown_int.h  the shutdown sequence, hooks, plan
 *   notify/notify_int.h    systemd notification
 *   http/http_int.h      the health port, its guard, and the views it serves
 *   http/obs.h           the views' own state (metrics, listeners, answer cache)
 *
 * A field is written only by the files its header names; the layers and
 * who may call whom: docs/ARCHITECTURE.md.
 */
#ifndef HEALTH_INT_H
#define HEALTH_INT_H

#include "core/base_int.h"
#include "engine/engine_int.h"
#include "controls/controls_int.h"
#include "shutdown/shutdown_int.h"
#include "notify/notify_int.h"
#include "http/http_int.h"

#include <sys/types.h>

/* fork() safety (fork.c): every handle is on a registry from health_new()
 * to its final free; the atfork child handler marks the child's copies
 * forked and closes the child's copies of the listening sockets and pipes. */
typedef struct health__fork {
  struct health *prev, *next; /* the registry, under fork.c's lock */
  pid_t pid;                  /* the process that created the handle */
  int listen_fd[2];           /* health port, agent port (-1: none) */
  int forked;                 /* in a child: the handle is inert */
} health__fork_t;

struct health {
  health__core_t core;  /* version, observers (core/core.c) */
  pthread_mutex_t lock; /* the handle's lock (core/core.c): guards the engine's
                         * mutable fields, the controls, `state` */
  int state;            /* HEALTH__ST_* (health.c) */
  /* frozen options (strings owned; health.c) */
  health_options_t opt;
  char *address, *detail_token, *service_id, *service_version, *description;

  health__engine_t eng;    /* engine/engine_int.h */
  health__http_t http;     /* http/http_int.h */
  health__shutdown_t sd;   /* shutdown/shutdown_int.h */
  health__notify_t notify; /* notify/notify_int.h */
  /* observability: metrics, listeners, render API, paths (http/obs.h) */
  struct health__obs *obs;
  /* fleet scale (engine/jitter.c): frozen at start */
  health__fleet_t fleet;
  /* heartbeats, manual readiness, startup gates, agent (controls/controls_int.h) */
  struct health__controls *ctl;
  health__fork_t fk; /* fork.c */
};

/* The state version (core/core.c): cached answers are rendered again when it
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
/* Bit 0 SIGTERM, bit 1 SIGINT: the library's handler was replaced after
 * start (shutdown/signals.c; /metrics shows it). */
static inline int health__signals_lost(const health_t *h) {
  return atomic_load(&((health_t *)h)->sd.signals_lost);
}

/* ---- fork() (fork.c) ---- */
/* 1 in a child process that inherited the handle through fork(): every
 * public call returns HEALTH_EFORKED or does nothing.  No lock, no system
 * call (the atfork child handler set it before fork() returned). */
static inline int health__forked(const health_t *h) { return h->fk.forked; }
void health__fork_register(health_t *h);   /* health_new */
void health__fork_unregister(health_t *h); /* the final free (not in a child) */
/* The listening sockets a child must not keep (health_start, health_stop). */
void health__fork_listening(health_t *h, int http_fd, int agent_fd);
/* The agent port's listening socket, or -1 (for fork.c). */
static inline int health__agent_listen_fd(const health_t *h) {
  return h->ctl ? h->ctl->agent_fd : -1;
}

/* ==== checker interface (checkers/adapter.c, checkers/checker.h) ==== */
/* health__log_repeat() with a va_list (core/logrepeat.c), for checkers/adapter.c. */
void health__log_repeatv(const health_t *h, health__repeat_t *r, const char *subject,
                         health_log_level_t level, const char *event, va_list ap);
/* ==== end of checker interface ==== */

#endif /* HEALTH_INT_H */
