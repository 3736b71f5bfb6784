/*
 * The application's own controls, folded into the endpoints next to the
 * checks: heartbeats (controls/heartbeat.c), manual readiness (controls/readiness.c),
 * startup gates (controls/gates.c), and the HAProxy agent's settings (controls/agent.c).
 * Above the check engine; below http/status.c.
 */
#ifndef HEALTH_CONTROLS_INT_H
#define HEALTH_CONTROLS_INT_H

#include "core/base_int.h"

/* ==== liveness and readiness controls: heartbeats (controls/heartbeat.c), manual
 * readiness (controls/readiness.c), startup gates (controls/gates.c), HAProxy agent
 * (controls/agent.c) ==== */

/* A heartbeat.  The beating thread touches only `beats`, alone on its cache
 * line; the sampler thread (controls/heartbeat.c) reads it every few tens of ms and
 * keeps the rest, guarded by h->lock. */
struct health_heartbeat {
  atomic_uint beats;
  char pad_[64 - sizeof(atomic_uint)];
  health_t *h;
  struct health_heartbeat *next;
  char *name, *key;
  unsigned max_age_ms;
  unsigned seen;    /* `beats` at the last sample */
  uint64_t last_ms; /* monotonic ms at which the sampler last saw a beat */
  int stale;        /* as the sampler last judged it (log transitions) */
};

typedef struct health__gate {
  char *name, *key;
  int open;
  int64_t opened_wall_ms;
  struct health__gate *next;
} health__gate_t;

typedef struct health__controls {
  int inited; /* cond below initialised */
  /* heartbeats, guarded by h->lock */
  struct health_heartbeat *heartbeats;
  size_t nheartbeats;
  pthread_cond_t cond; /* wakes the sampler: new heartbeat, stop */
  pthread_t sampler;
  int sampler_started, sampler_stop;
  /* When the sampler last ran (0: it does not run) and the period it then
   * set: evidence of a heartbeat's silence ends there (controls/readiness.c), so a
   * paused process (SIGSTOP, a cgroup freeze) is not judged by the pause. */
  uint64_t sampled_ms;
  unsigned sample_period_ms;
  /* manual readiness, guarded by h->lock */
  int not_ready;
  char *reason;
  /* startup gates, guarded by h->lock; the list freezes at start */
  health__gate_t *gates, *gates_tail;
  size_t ngates, nclosed;
  unsigned startup_deadline_ms; /* 0: none */
  uint64_t started_ms;          /* monotonic, set by health_start() */
  /* HAProxy agent-check responder (controls/agent.c) */
  int agent_enabled;
  char *agent_address; /* NULL: the health port's address */
  unsigned agent_port;
  atomic_uint agent_weight; /* percent sent with "up"; 0: none */
  int agent_fd, agent_wake[2];
  unsigned agent_bound_port;
  pthread_t agent_thread;
  int agent_started;
} health__controls_t;

int health__controls_init(health_t *h);                       /* health_new(); -1: no memory */
int health__controls_start(health_t *h, health_error_t *err); /* health_start() */
void health__controls_stop(health_t *h);                      /* health_stop() */
void health__controls_free(health_t *h);                      /* when the handle is freed */
/* Fold heartbeats, gates and manual readiness into the status `st` of
 * `endpoint` (h->lock held); lowers *vu to when that may change by itself. */
health_status_t health__controls_aggregate_locked(health_t *h, unsigned endpoint, uint64_t now,
                                                  health_status_t st, uint64_t *vu);
/* Top-level "output" of a full-detail body (not while draining). */
void health__controls_render_output_locked(health_t *h, unsigned endpoint, health__buf_t *b);
/* Entries after the checks in "checks":{...}; *first as in http/render.c. */
void health__controls_render_entries_locked(health_t *h, unsigned endpoint, uint64_t now,
                                            health__buf_t *b, int *first);
/* The reason readiness or liveness fails, one line, h->lock held. */
void health__controls_reason_locked(health_t *h, uint64_t now, char *out, size_t len);
/* "heartbeat 'NAME': no beat for N ms (max M ms)" for the first stale
 * heartbeat into out, and 1; 0 when none is stale.  h->lock held. */
int health__controls_hb_reason_locked(health_t *h, uint64_t now, char *out, size_t len);
/* A sampler that ran this much later than its period was not running:
 * the process was paused (or starved) meanwhile (controls/heartbeat.c). */
#define HEALTH__SAMPLER_SLACK_MS 100
/* controls/heartbeat.c */
int health__heartbeat_start_locked(health_t *h); /* h->lock held */
void health__heartbeat_stop(health_t *h);
void health__heartbeat_free_all(health_t *h);
/* controls/agent.c */
int health__agent_start(health_t *h, health_error_t *err);
void health__agent_stop(health_t *h);
/* The agent's settings so far, for a caller that changes some of them
 * (controls/controls_env.c): *o filled as health_agent_set would take it back (the
 * address is the handle's copy, valid until the next health_agent_set);
 * returns 1 if the agent is on. */
int health__agent_settings(const health_t *h, health_agent_options_t *o);
/* names of heartbeats and gates follow health__valid_name() (engine/registry.c) */
/* ==== end of liveness and readiness controls ==== */

#endif /* HEALTH_CONTROLS_INT_H */
