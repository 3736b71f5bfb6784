/*
 * Heartbeats: an application thread proves it still makes progress.
 *
 * The beat is one relaxed atomic increment of a counter that sits alone on
 * its cache line (a load and a store: no lock, no system call, no
 * read-modify-write instruction), cheap enough for every iteration of a hot
 * loop and async-signal-safe.  A clock read per beat was measured and
 * rejected (bench/heartbeat.sh): on this kind of VM (kvm-clock)
 * CLOCK_MONOTONIC through the vDSO costs about 60 ns and even
 * CLOCK_MONOTONIC_COARSE about 10 ns, against about 1 ns for the counter.
 *
 * Time is supplied by one library thread, the sampler, which reads every
 * counter each period (a quarter of the smallest maximum age, at most
 * SAMPLE_MAX_MS) and records when it last saw one move.  So the age it
 * knows is at most one period younger than the truth, a stuck heartbeat is
 * reported within max age + one period, and a beat after a stall is seen
 * within one period.  The sampler exists only while heartbeats do (it is
 * created with the first one) and sleeps without a timeout when the last is
 * removed.  It bumps the state version when a heartbeat goes stale or
 * recovers; the rendered bodies also carry a valid_until at the instant the
 * freshest evidence would expire (controls/readiness.c), so no request does more
 * than compare two numbers.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLE_MAX_MS 50
#define MAX_HEARTBEATS 1024
#define MAX_AGE_MIN_MS 100u
#define MAX_AGE_MAX_MS 86400000u

static void hb_free(struct health_heartbeat *hb) {
  free(hb->name);
  free(hb->key);
  free(hb);
}

/* One pass of the sampler, h->lock held; returns the period until the next. */
static uint64_t sample_locked(health_t *h, uint64_t now) {
  health__controls_t *c = h->ctl;
  uint64_t period = SAMPLE_MAX_MS;
  int changed = 0;
  for (struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next) {
    unsigned beats = atomic_load_explicit(&hb->beats, memory_order_relaxed);
    uint64_t age = now > hb->last_ms ? now - hb->last_ms : 0;
    char a[24], m[16];
    if (beats != hb->seen) {
      hb->seen = beats;
      if (hb->stale) {
        hb->stale = 0;
        changed = 1;
        snprintf(a, sizeof a, "%llu", (unsigned long long)age);
        health__log(h, HEALTH_LOG_INFO, "heartbeat_recovered", "heartbeat", hb->name, "#silent_ms",
                    a, NULL);
      }
      hb->last_ms = now;
    } else if (!hb->stale && age > hb->max_age_ms) {
      hb->stale = 1;
      changed = 1;
      snprintf(a, sizeof a, "%llu", (unsigned long long)age);
      snprintf(m, sizeof m, "%u", hb->max_age_ms);
      health__log(h, HEALTH_LOG_WARN, "heartbeat_stale", "heartbeat", hb->name, "#age_ms", a,
                  "#max_age_ms", m, NULL);
    }
    if (hb->max_age_ms / 4 < period) period = hb->max_age_ms / 4;
  }
  if (changed) health__state_changed_locked(h);
  return period;
}

static void *sampler_main(void *arg) {
  health_t *h = arg;
  health__controls_t *c = h->ctl;
  pthread_mutex_lock(&h->lock);
  while (!c->sampler_stop) {
    uint64_t now = health__now_ms();
    if (c->sampled_ms && now > c->sampled_ms + c->sample_period_ms + HEALTH__SAMPLER_SLACK_MS) {
      /* The sampler did not run for longer than its period: the process
       * was paused (SIGSTOP, a cgroup freeze) or starved.  The beating
       * threads were too; the pause is taken out of every age, so a
       * heartbeat gets the time it had left, at least one period. */
      uint64_t paused = now - c->sampled_ms - c->sample_period_ms;
      for (struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next) {
        hb->last_ms += paused;
        if (hb->last_ms > now) hb->last_ms = now;
      }
      char p[24];
      snprintf(p, sizeof p, "%llu", (unsigned long long)paused);
      health__log(h, HEALTH_LOG_INFO, "heartbeat_sampler_paused", "#paused_ms", p, "action",
                  "the pause does not count against heartbeats", NULL);
    }
    uint64_t period = sample_locked(h, now);
    c->sampled_ms = now;
    c->sample_period_ms = (unsigned)period;
    if (!c->heartbeats) {
      c->sampled_ms = 0; /* an unbounded wait is no pause */
      pthread_cond_wait(&c->cond, &h->lock);
    } else {
      uint64_t next = now + period;
      struct timespec ts = health__timespec_ms(next);
      pthread_cond_timedwait(&c->cond, &h->lock, &ts);
    }
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

int health__heartbeat_start_locked(health_t *h) {
  health__controls_t *c = h->ctl;
  /* Time before start does not count. */
  for (struct health_heartbeat *hb = c->heartbeats; hb; hb = hb->next) {
    hb->last_ms = c->started_ms;
    hb->seen = atomic_load_explicit(&hb->beats, memory_order_relaxed);
  }
  if (!c->heartbeats || c->sampler_started) return 0;
  c->sampled_ms = c->started_ms;
  c->sample_period_ms = SAMPLE_MAX_MS;
  c->sampler_stop = 0;
  if (health__thread_create(&c->sampler, sampler_main, h, 0) != 0) return -1;
  c->sampler_started = 1;
  return 0;
}

void health__heartbeat_stop(health_t *h) {
  health__controls_t *c = h->ctl;
  pthread_mutex_lock(&h->lock);
  int started = c->sampler_started;
  c->sampler_stop = 1;
  c->sampler_started = 0;
  c->sampled_ms = 0;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&h->lock);
  if (started) pthread_join(c->sampler, NULL);
}

void health__heartbeat_free_all(health_t *h) {
  for (struct health_heartbeat *hb = h->ctl->heartbeats, *next; hb; hb = next) {
    next = hb->next;
    hb_free(hb);
  }
  h->ctl->heartbeats = NULL;
  h->ctl->nheartbeats = 0;
}

HEALTH_EXPORT int health_heartbeat_add(health_t *h, const char *name, unsigned max_age_ms,
                                       health_heartbeat_t **out, health_error_t *err) {
  if (out) *out = NULL;
  if (!h || !name || !out)
    return health__err(err, HEALTH_EINVAL,
                       "health_heartbeat_add: handle, name and out are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_heartbeat_add: the handle belongs to the parent process");
  if (!health__valid_name(name))
    return health__err(err, HEALTH_EINVAL,
                       "heartbeat name must be 1-%d characters of A-Z a-z 0-9 . _ -",
                       HEALTH__NAME_MAX);
  if (max_age_ms < MAX_AGE_MIN_MS || max_age_ms > MAX_AGE_MAX_MS)
    return health__err(err, HEALTH_EINVAL,
                       "heartbeat '%s': max age must be %u ms to %u ms (got %u)", name,
                       MAX_AGE_MIN_MS, MAX_AGE_MAX_MS, max_age_ms);
  /* Aligned so that `beats` owns its cache line: a thread beating one
   * heartbeat never slows one beating another. */
  size_t size = (sizeof(struct health_heartbeat) + 63) & ~(size_t)63;
  struct health_heartbeat *hb = aligned_alloc(64, size);
  if (hb) memset(hb, 0, size);
  if (!hb || !(hb->name = strdup(name)) || asprintf(&hb->key, "%s:heartbeat", name) < 0) {
    if (hb) free(hb->name);
    free(hb);
    return health__err(err, HEALTH_ENOMEM, "out of memory adding heartbeat '%s'", name);
  }
  hb->h = h;
  hb->max_age_ms = max_age_ms;
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  if (h->state == HEALTH__ST_STOPPED) {
    rc = health__err(err, HEALTH_ESTATE, "the handle is stopped");
    goto out;
  }
  if (c->nheartbeats >= MAX_HEARTBEATS) {
    rc = health__err(err, HEALTH_EINVAL, "too many heartbeats (at most %d)", MAX_HEARTBEATS);
    goto out;
  }
  for (struct health_heartbeat *o = c->heartbeats; o; o = o->next)
    if (strcmp(o->name, name) == 0) {
      rc = health__err(err, HEALTH_EEXIST, "a heartbeat named '%s' already exists", name);
      goto out;
    }
  if (health__check_find_locked(h, hb->key, 1, NULL)) {
    rc = health__err(err, HEALTH_EEXIST, "heartbeat '%s' would have the key of a check", name);
    goto out;
  }
  hb->last_ms = health__now_ms(); /* registering counts as the first beat */
  if (h->state == HEALTH__ST_STARTED && !c->sampler_started) {
    c->sampled_ms = health__now_ms();
    c->sample_period_ms = SAMPLE_MAX_MS;
    c->sampler_stop = 0;
    if (health__thread_create(&c->sampler, sampler_main, h, 0) != 0) {
      rc = health__err(err, HEALTH_ESYS, "could not start the heartbeat thread: %s",
                       strerror(errno));
      goto out;
    }
    c->sampler_started = 1;
  }
  hb->next = c->heartbeats;
  c->heartbeats = hb;
  c->nheartbeats++;
  pthread_cond_signal(&c->cond); /* a shorter max age may shorten the period */
  if (h->state == HEALTH__ST_STARTED) health__state_changed_locked(h);
  *out = hb;
  hb = NULL;
out:
  pthread_mutex_unlock(&h->lock);
  if (hb) hb_free(hb);
  return rc;
}

HEALTH_EXPORT void health_heartbeat_beat(health_heartbeat_t *hb) {
  if (!hb) return;
  /* Not atomic_fetch_add: a locked instruction costs ten times more, and
   * the only reader asks "did it move?", which a lost increment between
   * two threads beating the same heartbeat never hides. */
  unsigned n = atomic_load_explicit(&hb->beats, memory_order_relaxed);
  atomic_store_explicit(&hb->beats, n + 1, memory_order_relaxed);
}

HEALTH_EXPORT int health_heartbeat_remove(health_heartbeat_t *hb, health_error_t *err) {
  if (!hb) return health__err(err, HEALTH_EINVAL, "heartbeat is NULL");
  health_t *h = hb->h;
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  int found = 0;
  for (struct health_heartbeat **p = &c->heartbeats; *p; p = &(*p)->next)
    if (*p == hb) {
      *p = hb->next;
      c->nheartbeats--;
      found = 1;
      break;
    }
  if (found && h->state == HEALTH__ST_STARTED) health__state_changed_locked(h);
  pthread_mutex_unlock(&h->lock);
  if (!found) return health__err(err, HEALTH_ENOENT, "heartbeat already removed");
  hb_free(hb);
  return 0;
}
