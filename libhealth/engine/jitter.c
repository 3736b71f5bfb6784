/*
 * Fleet scale: how one replica keeps out of step with the others.
 *
 * Replicas of a service start within seconds of each other and check the
 * same PostgreSQL and Redis; with exact intervals they would check in
 * lockstep forever.  So the schedule has a random phase (the second run of
 * a check comes at a random point of its first interval) and a small
 * per-run jitter (each interval is shortened by up to run_percent), and
 * failed connection attempts are retried with full-jitter backoff
 * (engine/backoff.c).  The first run stays at start so readiness is not delayed.
 *
 * Every delay is at most the interval: a check still runs at least once
 * per interval, so staleness, thresholds and the recovery bound keep their
 * meaning.
 */
#include "health_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#define RUN_PERCENT_DEFAULT 10
#define RUN_PERCENT_MAX 50

/* splitmix64: a 64-bit counter stepped atomically, then mixed.  Good
 * enough for spreading schedules, lock-free, and reproducible from a seed. */
static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

#define GOLDEN 0x9E3779B97F4A7C15ull

uint64_t health__rand_below(health_t *h, uint64_t n) {
  if (n == 0) return 0;
  uint64_t z = mix(atomic_fetch_add(&h->fleet.rng, GOLDEN) + GOLDEN);
  /* Lemire's multiply-shift; the bias is below 2^-32 for our ranges. */
  return (uint64_t)(((unsigned __int128)z * n) >> 64);
}

static uint64_t random_seed(const health_t *h) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s && s) return s;
  /* No entropy yet (early boot): replicas still differ by pid and time. */
  return mix(health__now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h);
}

void health__fleet_init(health_t *h) {
  h->fleet.initial_offset = 1;
  h->fleet.backoff = 1;
  h->fleet.keep_connections = 1;
  h->fleet.run_percent = RUN_PERCENT_DEFAULT;
  atomic_init(&h->fleet.rng, random_seed(h));
}

uint64_t health__first_due_locked(health_t *h, const health__check_t *c, uint64_t now) {
  (void)h, (void)c;
  return now;
}

uint64_t health__next_due_locked(health_t *h, const health__check_t *c, const health_result_t *r,
                                 uint64_t now) {
  uint64_t delay = c->interval_ms;
  if (r && r->retry_set && h->fleet.backoff) {
    delay = r->retry_ms < c->interval_ms ? r->retry_ms : c->interval_ms;
  } else if (c->runs <= 1 && h->fleet.initial_offset) {
    /* After the first run: a random phase in (0, interval]. */
    delay = 1 + health__rand_below(h, c->interval_ms);
  } else if (h->fleet.run_percent) {
    delay -= health__rand_below(h, (uint64_t)c->interval_ms * h->fleet.run_percent / 100 + 1);
  }
  uint64_t due = c->started_ms + delay;
  return due < now ? now : due;
}

int health__keep_connections(const health_result_t *r) {
  return !r || !r->h || r->h->fleet.keep_connections;
}

/* ---- public ---- */

HEALTH_EXPORT void health_fleet_options_init(health_fleet_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->initial_offset = 1;
  o->run_jitter_percent = RUN_PERCENT_DEFAULT;
  o->backoff = 1;
  o->keep_connections = 1;
}

HEALTH_EXPORT int health_fleet_options_from_env(health_fleet_options_t *opts, health_error_t *err) {
  return health__fleet_options_from_lookup(opts, health__env_lookup, NULL, err);
}

int health__fleet_options_from_lookup(health_fleet_options_t *opts, health__lookup_fn lookup,
                                      void *arg, health_error_t *err) {
  if (!opts) return health__err(err, HEALTH_EINVAL, "options are required");
  int rc = HEALTH__RESERVED_CHECK(opts, "health_fleet_options", err);
  if (rc) return rc;
  health_fleet_options_t o = *opts; /* all or nothing */
  const char *v = lookup("HEALTH_JITTER", arg);
  if (v && *v) {
    unsigned pct;
    if (strcasecmp(v, "on") == 0) {
      o.initial_offset = o.backoff = 1;
      o.run_jitter_percent = RUN_PERCENT_DEFAULT;
    } else if (strcasecmp(v, "off") == 0) {
      o.initial_offset = o.backoff = 0;
      o.run_jitter_percent = 0;
    } else if (strlen(v) <= 2 && health__env_uint(v, 0, RUN_PERCENT_MAX, &pct) == 0) {
      o.initial_offset = o.backoff = 1;
      o.run_jitter_percent = pct;
    } else {
      return health__err(err, HEALTH_EINVAL,
                         "HEALTH_JITTER='%.40s' must be on, off or a whole number from 0 to %d", v,
                         RUN_PERCENT_MAX);
    }
  }
  v = lookup("HEALTH_KEEP_CONNECTIONS", arg);
  if (v && *v && health__env_bool(v, &o.keep_connections) < 0)
    return health__err(err, HEALTH_EINVAL,
                       "HEALTH_KEEP_CONNECTIONS='%.40s' must be 1/0, true/false, yes/no or on/off",
                       v);
  *opts = o;
  return 0;
}

HEALTH_EXPORT int health_fleet_set(health_t *h, const health_fleet_options_t *opts,
                                   health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_fleet_set: handle is required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  health_fleet_options_t o;
  if (opts) o = *opts;
  else health_fleet_options_init(&o);
  int rc = HEALTH__RESERVED_CHECK(&o, "health_fleet_options", err);
  if (rc) return rc;
  if (o.run_jitter_percent > RUN_PERCENT_MAX)
    return health__err(err, HEALTH_EINVAL, "run_jitter_percent must be 0 to %d (got %u)",
                       RUN_PERCENT_MAX, o.run_jitter_percent);
  pthread_mutex_lock(&h->lock);
  if (h->state != HEALTH__ST_NEW) {
    rc = health__err(err, HEALTH_ESTATE, "health_fleet_set must be called before health_start()");
  } else {
    h->fleet.initial_offset = o.initial_offset ? 1 : 0;
    h->fleet.run_percent = o.run_jitter_percent;
    h->fleet.backoff = o.backoff ? 1 : 0;
    h->fleet.keep_connections = o.keep_connections ? 1 : 0;
    if (o.seed) atomic_store(&h->fleet.rng, (uint64_t)o.seed);
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}
