/*
 * The HTTP subsystem's private header: the health port (http/server.c,
 * http/fixed_answers.c), its connection guard (http/guard.c, http/guard_nofile.c), and the
 * views it serves (http/render.c, http/answer_cache.c, http/metrics.c, notify/listeners.c,
 * http/paths.c; their own state: http/obs.h).
 */
#ifndef HEALTH_HTTP_INT_H
#define HEALTH_HTTP_INT_H

#include "engine/engine_int.h"

/* The health port's handle on one endpoint's answer at one detail level:
 * a response made from the answer cache's snapshot (http/answer_cache.c), so a cached
 * answer costs no lock; the body itself is the cache's. */
typedef struct health__view {
  uint64_t version;        /* state version it was rendered from */
  uint64_t valid_until_ms; /* re-render after this (a result goes stale) */
  unsigned code;           /* 200 or 503 */
  /* (atomic for the tests only, which look at it from their own thread) */
  _Atomic(struct MHD_Response *) response;
} health__view_t;

/* The guard's counters, published for /metrics: written only by the guard
 * (http/guard.c, http/guard_reaper.c), read by the views (http/metrics.c, http/answer_cache.c) with
 * atomic loads, so a view never calls up into the guard.  They live in the
 * handle, not in the guard: zero while the port is off, kept after stop. */
typedef struct health__guard_counts {
  atomic_ulong evicted; /* closed to make room at the connection cap */
  atomic_ulong reaped;  /* closed for a request head not complete in time */
  atomic_ulong emfile;  /* accept() ran out of descriptors */
} health__guard_counts_t;

typedef struct health__http {
  struct MHD_Daemon *daemon;
  unsigned bound_port;
  int quiesced_fd; /* listening socket after quiesce, or -1 */
  /* [0 ready,1 health][0 full,1 status]: MHD's thread only (then
   * health__http_stop(), after MHD_stop_daemon() joined it) */
  health__view_t views[2][2];
  struct MHD_Response *resp_404, *resp_405, *resp_413, *resp_400, *resp_501, *resp_options;
  /* connection guard (http/guard.c) */
  struct health__guard *guard;         /* slow clients, eviction at the cap, fd headroom */
  health__guard_counts_t guard_counts; /* the guard's, for the views */
  unsigned long nofile_max;            /* ceiling for the soft RLIMIT_NOFILE (if nofile_set) */
  int nofile_set;                      /* else: up to the hard limit */
} health__http_t;

/* ---- rendering (http/render.c) ---- */
/* Render the body for `endpoint` at `detail` (0 full, 1 status) with
 * h->lock held.  Returns the HTTP code (200/503); *valid_until_ms as above. */
unsigned health__render_locked(health_t *h, unsigned endpoint, int status_only, uint64_t now,
                               health__buf_t *out, uint64_t *valid_until_ms);

/* ---- HTTP (http/server.c) ---- */
/* "Bearer <token>" (NULL: none) against the detail token, in constant
 * time; one rule for the health port, /metrics and health_answer_render()
 * (http/answer_cache.c). */
int health__bearer_ok(const health_t *h, const char *auth);
int health__http_start(health_t *h, health_error_t *err);
void health__http_quiesce(health_t *h);
/* The health port's listening socket, or -1 (for fork.c). */
int health__http_listen_fd(const health_t *h);
void health__http_stop(health_t *h);
/* The fixed error and OPTIONS answers (http/fixed_answers.c): 0 or -1 (no memory). */
int health__http_fixed_new(health_t *h);
void health__http_fixed_free(health_t *h);

/* ---- connection guard (http/guard.c) ---- */
/* The table of connections of the health port, the head deadlines and
 * their reaper, eviction at the cap, descriptor headroom.  Every call but
 * new/free/env runs on libmicrohttpd's thread. */
typedef struct health__guard health__guard_t;
#define HEALTH__NOFILE_HARD ((unsigned long)-1)
/* Room for `want` connections: raises the soft RLIMIT_NOFILE as far as
 * needed and allowed; returns how many descriptors connections may use
 * (http/guard_nofile.c). */
unsigned health__guard_fd_room(health_t *h, unsigned want);
health__guard_t *health__guard_new(health_t *h);        /* may raise RLIMIT_NOFILE */
void health__guard_free(health__guard_t *g);            /* after MHD_stop_daemon() */
unsigned health__guard_slots(const health__guard_t *g); /* MHD's connection limit */
void health__guard_opened(health__guard_t *g, int fd, void **socket_context);
void health__guard_closed(health__guard_t *g, void **socket_context);
/* The request head arrived: 0 if the connection was cut meanwhile. */
int health__guard_claim(health__guard_t *g, void *socket_context);
void health__guard_answered(health__guard_t *g, void *socket_context, int closing);
/* accept() hit a descriptor limit: free the reserve, evict one. */
void health__guard_emfile(health__guard_t *g);

/* ---- observability (http/metrics.c, notify/listeners.c, http/answer_cache.c) ---- */
/* Internal routes beside HEALTH_READINESS / HEALTH_LIVENESS. */
#define HEALTH__ROUTE_METRICS 3u
enum {
  HEALTH__PHASE_RUNNING = 0,
  HEALTH__PHASE_DRAINING,
  HEALTH__PHASE_FLUSHING,
  HEALTH__PHASE_DONE
};

int health__obs_new(health_t *h);                        /* in health_new */
void health__obs_free(health_t *h);                      /* when the handle is freed */
int health__obs_start(health_t *h, health_error_t *err); /* in health_start */
/* notify/listeners.c: the notifier thread (registers the listeners' observers) */
int health__listeners_start(health_t *h, health_error_t *err);
void health__listeners_stop(health_t *h);
/* The shutdown sequence reached a phase (HEALTH__PHASE_*). */
void health__obs_phase(health_t *h, int phase);
/* Route of a path on the health port: HEALTH_READINESS, HEALTH_LIVENESS,
 * HEALTH__ROUTE_METRICS, or 0. */
unsigned health__route(const health_t *h, const char *path);
/* Render one check's "key":[{...}] entry (http/render.c), h->lock held. */
void health__render_check_locked(health_t *h, const health__check_t *c, uint64_t now,
                                 health__buf_t *b);
/* Prometheus / OpenMetrics body (http/metrics.c), h->lock held. */
void health__metrics_render_locked(health_t *h, int openmetrics, int status_only, uint64_t now,
                                   health__buf_t *b);
/* The shared per-version answers for the health port (http/answer_cache.c): metrics
 * and per-check views.  `conn` is a struct MHD_Connection *. */
struct MHD_Connection;
int health__serve_extra(health_t *h, struct MHD_Connection *conn, unsigned route, int status_only);
/* Bring the port's view of /ready or /health (`endpoint`) up to date from
 * the one answer cache (http/answer_cache.c, the endpoint's slot): a new response made
 * from the slot's current snapshot (holding a reference to it), with the
 * slot's version and valid-until.  MHD's thread only; -1 (the view is left
 * as it was) when nothing could be rendered. */
int health__serve_view(health_t *h, unsigned endpoint, int status_only, health__view_t *v);

#endif /* HEALTH_HTTP_INT_H */
