/* Private state of the observability files: http/metrics.c (Prometheus),
 * notify/listeners.c (status listeners, check enumeration), http/paths.c (the
 * configurable paths) and http/answer_cache.c (the per-version answer cache shared by
 * the health port and health_answer_render(), and this struct's lifecycle). */
#ifndef HEALTH_OBS_H
#define HEALTH_OBS_H

#include "health_int.h"

#define HEALTH__MAX_LISTENERS 16
#define HEALTH__EVENT_QUEUE 256
#define HEALTH__REASON_MAX 256

/* A rendered body shared by reference: the answer cache holds one
 * reference, every MHD response and health_answer_t made from it one more.
 * The body follows the header in the same allocation. */
typedef struct health__snap {
  atomic_uint refs;
  unsigned code;
  const char *content_type;
  size_t len;
  size_t cap; /* of the whole allocation, for reuse by the next render */
  char body[];
} health__snap_t;

void health__snap_release(health__snap_t *s);

/* One cached answer: rebuilt when the state version moves, when a result
 * goes stale, and (metrics) when the in-flight count or the health port's
 * guard counters moved. */
typedef struct health__slot {
  health__snap_t *snap;
  struct MHD_Response *resp; /* made from snap on first use by the port */
  uint64_t version, valid_until_ms;
  int inflight;
  unsigned long guard_events; /* evicted + reaped + emfile when rendered */
} health__slot_t;

typedef struct health__event {
  unsigned subject;
  const health__check_t *check;
  health_status_t from, to;
  uint64_t seq;
  int64_t wall_ms;
  char reason[HEALTH__REASON_MAX];
} health__event_t;

struct health__obs {
  /* paths (NULL: default; metrics_off: no metrics route) */
  char *ready_path, *live_path, *metrics_path;
  int metrics_off;

  atomic_int phase; /* HEALTH__PHASE_* */

  /* listeners: registered before start, read-only after */
  health_listener_fn fns[HEALTH__MAX_LISTENERS];
  void *args[HEALTH__MAX_LISTENERS];
  size_t nlisteners;
  pthread_mutex_t qlock; /* the queue, seq, stop */
  pthread_cond_t qcond;
  health__event_t *queue; /* ring of HEALTH__EVENT_QUEUE, at start */
  size_t qhead, qcount;
  uint64_t seq;                 /* last sequence number given out */
  atomic_uint_fast64_t dropped; /* events dropped on a full queue */
  int dropping;                 /* in an overflow episode (logged once) */
  int qstop;
  pthread_t thread;
  int thread_started;
  health_status_t ep_last[2]; /* readiness, liveness as last told */

  /* answer cache (http/answer_cache.c) */
  pthread_mutex_t cache_lock;
  health__slot_t metrics[2][2]; /* [openmetrics][status_only] */
  health__slot_t ep[2]
                   [2]; /* [0 ready, 1 live][status_only]: health_answer_render, the port's views */
  health__slot_t *per_check; /* [check * 2 + (live)], full detail, after start */
  size_t last_metrics_len;   /* to size the next render's buffer */
  struct MHD_Response *resp_403, *resp_404;
  int inited; /* bits: 1 qlock/qcond, 2 cache_lock */
};

/* notify/listeners.c (started and stopped by health.c) */

#endif
