/*
 * What the application itself says about its readiness and liveness, next
 * to the checks: manual readiness (take the service out of the load
 * balancer at once, with a reason, and put it back), named startup gates
 * that keep readiness failing until each is opened, and a startup deadline
 * after which closed gates fail liveness too, so the platform restarts a
 * service that never finishes starting.  Heartbeats (controls/heartbeat.c) are
 * folded into the endpoints here as well.
 *
 * Everything is guarded by h->lock and every change goes through
 * health__state_changed_locked(), so the cached bodies (http/server.c) are re-rendered on
 * the next request: a toggle is visible on /ready as soon as the call
 * returns.  Changes that come from the passing of time (a heartbeat going
 * stale, the startup deadline) lower the views' valid_until instead.
 *
 * While draining, liveness ignores heartbeats and the startup deadline: an
 * application commonly stops its work loops when the drain starts, and a
 * liveness failure then would get the process killed in the middle of its
 * drain; the shutdown deadline bounds its life anyway.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 256
/* While a heartbeat is stale, its rendered age is refreshed this often. */
#define STALE_REFRESH_MS 1000

/* ---- lifecycle ---- */

int health__controls_init(health_t *h) {
  health__controls_t *c = calloc(1, sizeof *c);
  if (!c) return -1;
  if (health__cond_init_monotonic(&c->cond) != 0) {
    free(c);
    return -1;
  }
  c->inited = 1;
  c->agent_fd = -1;
  c->agent_wake[0] = c->agent_wake[1] = -1;
  h->ctl = c;
  return 0;
}

int health__controls_start(health_t *h, health_error_t *err) {
  health__controls_t *c = h->ctl;
  pthread_mutex_lock(&h->lock);
  c->started_ms = health__now_ms();
  int rc = health__heartbeat_start_locked(h);
  pthread_mutex_unlock(&h->lock);
  if (rc != 0)
    return health__err(err, HEALTH_ESYS, "could not start the heartbeat thread: %s",
                       strerror(errno));
  if (c->startup_deadline_ms && c->ngates) {
    char ms[16];
    snprintf(ms, sizeof ms, "%u", c->startup_deadline_ms);
    health__log(h, HEALTH_LOG_INFO, "startup_gates", "#deadline_ms", ms, NULL);
  }
  return 0;
}

void health__controls_stop(health_t *h) {
  if (!h->ctl) return;
  health__heartbeat_stop(h);
}

void health__controls_free(health_t *h) {
  health__controls_t *c = h->ctl;
  if (!c) return;
  health__heartbeat_free_all(h);
  for (health__gate_t *g = c->gates, *next; g; g = next) {
    next = g->next;
    free(g->name);
    free(g->key);
    free(g);
  }
  free(c->reason);
  free(c->agent_address);
  if (c->inited) pthread_cond_destroy(&c->cond);
  free(c);
  h->ctl = NULL;
}

/* ---- manual readiness ---- */

static int printable(const char *s, size_t max) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
    if (*p < 0x20 || *p == 0x7F || n >= max) return 0;
  return 1;
}

static void notify_status(health_t *h, const char *what, const char *reason) {
  if (!health__notify_watched(h) || h->state != HEALTH__ST_STARTED) return;
  char msg[32 + REASON_MAX];
  snprintf(msg, sizeof msg, "STATUS=%s%s%s", what, reason ? ": " : "", reason ? reason : "");
  health__notify(h, msg);
}

HEALTH_EXPORT int health_ready_hold(health_t *h, const char *reason, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_ready_hold: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_ready_hold: the handle belongs to the parent process");
  if (!reason || !*reason) reason = "not ready";
  if (!printable(reason, REASON_MAX))
    return health__err(err, HEALTH_EINVAL,
                       "health_ready_hold: the reason must be 1-%d printable characters",
                       REASON_MAX);
  char *copy = strdup(reason);
  if (!copy) return health__err(err, HEALTH_ENOMEM, "out of memory");
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  int was = c->not_ready;
  int same = was && strcmp(c->reason, copy) == 0;
  free(c->reason);
  c->reason = copy;
  c->not_ready = 1;
  if (!same) {
    health__log(h, HEALTH_LOG_INFO, "manual_not_ready", "reason", copy, NULL);
    notify_status(h, "not ready", copy);
    health__state_changed_locked(h);
  }
  pthread_mutex_unlock(&h->lock);
  return 0;
}

HEALTH_EXPORT int health_ready_release(health_t *h, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  if (c->not_ready) {
    c->not_ready = 0;
    free(c->reason);
    c->reason = NULL;
    health__log(h, HEALTH_LOG_INFO, "manual_ready", NULL);
    notify_status(h, "ready", NULL);
    health__state_changed_locked(h);
  }
  pthread_mutex_unlock(&h->lock);
  return 0;
}

static int deadline_passed(const health__controls_t *c, uint64_t now) {
  return c->startup_deadline_ms && c->nclosed && c->started_ms &&
         now >= c->started_ms + c->startup_deadline_ms;
}

/* A heartbeat's silence is known only up to the sampler's last run plus
 * its period (and slack): after a pause of the whole process (SIGSTOP, a
 * cgroup freeze; CLOCK_MONOTONIC keeps running) the first answer may come
 * before the sampler has run again, and must not blame the heartbeat for
 * the pause.  The sampler then takes the pause out of every age
 * (controls/heartbeat.c). */
static uint64_t hb_age_c(const health__controls_t *c, const struct health_heartbeat *hb,
                         uint64_t now) {
  if (c->sampled_ms) {
    uint64_t known = c->sampled_ms + c->sample_period_ms + HEALTH__SAMPLER_SLACK_MS;
    if (now > known) now = known;
  }
  return now > hb->last_ms ? now - hb->last_ms : 0;
}

/* Stale as of `now` (which may be the coarse clock, a tick behind the
 * sampler's: the age is then 0, never negative). */
static int hb_stale(const health_t *h, const struct health_heartbeat *hb, uint64_t now) {
  return h->state == HEALTH__ST_STARTED && hb_age_c(h->ctl, hb, now) > hb->max_age_ms;
}

/* ---- folding into the endpoints ---- */

health_status_t health__controls_aggregate_locked(health_t *h, unsigned endpoint, uint64_t now,
                                                  health_status_t st, uint64_t *vu) {
  health__controls_t *c = h->ctl;
  int draining = health__draining(h);
  int fail = 0;
  for (const struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next) {
    if (h->state != HEALTH__ST_STARTED) break;
    if (hb_stale(h, hb, now)) {
      if (endpoint == HEALTH_READINESS || !draining) fail = 1;
      if (now + STALE_REFRESH_MS < *vu) *vu = now + STALE_REFRESH_MS;
    } else if (hb->last_ms + hb->max_age_ms + 1 < *vu) {
      *vu = hb->last_ms + hb->max_age_ms + 1;
    }
  }
  if (endpoint == HEALTH_READINESS) {
    if (c->not_ready || c->nclosed) fail = 1;
  } else if (!draining && c->nclosed && c->startup_deadline_ms && c->started_ms) {
    uint64_t at = c->started_ms + c->startup_deadline_ms;
    if (now >= at) fail = 1;
    else if (at < *vu) *vu = at;
  }
  return fail ? HEALTH_FAIL : st;
}

void health__controls_render_output_locked(health_t *h, unsigned endpoint, health__buf_t *b) {
  health__controls_t *c = h->ctl;
  if (endpoint != HEALTH_READINESS || !c->not_ready) return;
  health__buf_adds(b, ",\"output\":\"not ready: ");
  health__buf_json_str(b, c->reason, strlen(c->reason));
  health__buf_adds(b, "\"");
}

static void entry_head(health__buf_t *b, int *first, const char *key, const char *type) {
  if (!*first) health__buf_adds(b, ",");
  *first = 0;
  health__buf_adds(b, "\"");
  health__buf_json_str(b, key, strlen(key));
  health__buf_printf(b, "\":[{\"componentType\":\"%s\"", type);
}

static void add_time(health__buf_t *b, int64_t wall_ms) {
  char ts[40];
  health__rfc3339(wall_ms, ts, sizeof ts);
  health__buf_printf(b, ",\"time\":\"%s\"", ts);
}

void health__controls_render_entries_locked(health_t *h, unsigned endpoint, uint64_t now,
                                            health__buf_t *b, int *first) {
  health__controls_t *c = h->ctl;
  int draining = health__draining(h);
  int64_t wall = health__wall_ms();
  uint64_t mono = health__now_ms();
  for (const struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next) {
    uint64_t age = h->state == HEALTH__ST_STARTED ? hb_age_c(c, hb, now) : 0;
    int stale = hb_stale(h, hb, now);
    const char *word = !stale                                      ? "pass"
                       : (endpoint == HEALTH_LIVENESS && draining) ? "warn"
                                                                   : "fail";
    entry_head(b, first, hb->key, "heartbeat");
    /* Integers only: no locale can change them. */
    health__buf_printf(b, ",\"observedValue\":%llu,\"observedUnit\":\"ms\",\"status\":\"%s\"",
                       (unsigned long long)age, word);
    if (h->state == HEALTH__ST_STARTED)
      add_time(b, wall - (int64_t)(mono > hb->last_ms ? mono - hb->last_ms : 0));
    if (stale) {
      health__buf_adds(b, ",\"output\":\"heartbeat '");
      health__buf_json_str(b, hb->name, strlen(hb->name));
      health__buf_printf(b, "': no beat for %llu ms (max %u ms)%s\"", (unsigned long long)age,
                         hb->max_age_ms, word[0] == 'w' ? ", not counted while draining" : "");
    }
    health__buf_adds(b, "}]");
  }
  int late = deadline_passed(c, now);
  for (const health__gate_t *g = c->gates; g; g = g->next) {
    if (endpoint == HEALTH_LIVENESS && (g->open || !late)) continue;
    entry_head(b, first, g->key, "startup-gate");
    const char *word = g->open                                     ? "pass"
                       : (endpoint == HEALTH_LIVENESS && draining) ? "warn"
                                                                   : "fail";
    health__buf_printf(b, ",\"status\":\"%s\"", word);
    if (g->open) add_time(b, g->opened_wall_ms);
    if (!g->open) {
      health__buf_adds(b, ",\"output\":\"startup gate '");
      health__buf_json_str(b, g->name, strlen(g->name));
      if (late)
        health__buf_printf(b, "' still closed after the %u ms startup deadline\"",
                           c->startup_deadline_ms);
      else health__buf_adds(b, "' not open yet\"");
    }
    health__buf_adds(b, "}]");
  }
}

int health__controls_hb_reason_locked(health_t *h, uint64_t now, char *out, size_t len) {
  health__controls_t *c = h->ctl;
  for (const struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next)
    if (hb_stale(h, hb, now)) {
      snprintf(out, len, "heartbeat '%s': no beat for %llu ms (max %u ms)", hb->name,
               (unsigned long long)hb_age_c(c, hb, now), hb->max_age_ms);
      return 1;
    }
  return 0;
}

void health__controls_reason_locked(health_t *h, uint64_t now, char *out, size_t len) {
  health__controls_t *c = h->ctl;
  out[0] = 0;
  if (c->not_ready) {
    snprintf(out, len, "not ready: %s", c->reason);
    return;
  }
  for (const struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next)
    if (hb_stale(h, hb, now)) {
      snprintf(out, len, "heartbeat %s: no beat for %llu ms", hb->name,
               (unsigned long long)hb_age_c(c, hb, now));
      return;
    }
  for (const health__gate_t *g = c->gates; g; g = g->next)
    if (!g->open) {
      snprintf(out, len, "%s %s",
               deadline_passed(c, now) ? "startup deadline passed, gate closed:"
                                       : "starting: waiting for gate",
               g->name);
      return;
    }
  const health__check_t *k;
  for (size_t i = 0; (k = health__check_at_locked(h, i)); i++) {
    health_status_t s = health__check_status_locked(h, k, now, NULL);
    if (k->critical && (s == HEALTH_FAIL || s == HEALTH_PENDING)) {
      snprintf(out, len, "check %s: %s", k->name, s == HEALTH_PENDING ? "pending" : "fail");
      return;
    }
  }
  snprintf(out, len, "not ready");
}
