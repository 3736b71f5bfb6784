/*
 * Shared heartbeats: liveness of pre-forked worker processes.
 *
 * One anonymous shared mapping (MAP_SHARED | MAP_ANONYMOUS), set up before
 * fork() so that every worker inherits it, holds one slot per worker: a
 * beat counter and the pid the master attached, each slot alone on its
 * cache line.  A worker's beat is one relaxed atomic increment of its
 * slot's counter, as health_heartbeat_beat() is (no lock, no system call,
 * async-signal-safe); attach and detach are one atomic store each, so the
 * master may call them from a SIGCHLD handler.
 *
 * The master's side is an ordinary check (liveness and readiness,
 * critical, threshold 1) run every max_age/4: it reads each attached
 * slot's counter and records when it last moved, as controls/heartbeat.c's sampler
 * does.  A slot fails when its counter has not moved for longer than its
 * maximum age, or at once when its pid no longer exists (kill(pid, 0):
 * ESRCH, i.e. the worker exited and was reaped).  A worker that exited but
 * was not reaped yet is a zombie: it is reported by its age.
 */
#include "health_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOTS_MAX 4096u
#define MAX_AGE_MIN_MS 100u
#define MAX_AGE_MAX_MS 86400000u

typedef struct {
  atomic_uint beats; /* written by the worker */
  atomic_int pid;    /* written by the master: 0 = not watched */
  char pad_[64 - sizeof(atomic_uint) - sizeof(atomic_int)];
} shared_slot_t;

typedef struct {
  int pid;          /* the pid these samples are about */
  unsigned seen;    /* `beats` at the last sample */
  uint64_t last_ms; /* when the counter last moved (or the pid changed) */
} sample_t;

struct health_heartbeat_shared {
  shared_slot_t *slots; /* the shared mapping */
  size_t map_len;
  unsigned nslots;
  unsigned max_age_ms;
  sample_t *samples; /* the master's private memory, only the check reads */
};

static void shared_free(void *arg) {
  health_heartbeat_shared_t *s = arg;
  if (!s) return;
  if (s->slots) munmap(s->slots, s->map_len);
  free(s->samples);
  free(s);
}

/* The check: runs never overlap, so `samples` needs no lock. */
static void shared_check(health_result_t *r, void *arg) {
  health_heartbeat_shared_t *s = arg;
  uint64_t now = health__now_ms();
  unsigned watched = 0, failed = 0;
  char first[160] = "";
  for (unsigned i = 0; i < s->nslots; i++) {
    int pid = atomic_load(&s->slots[i].pid);
    sample_t *m = &s->samples[i];
    unsigned b = atomic_load_explicit(&s->slots[i].beats, memory_order_relaxed);
    if (pid <= 0) {
      m->pid = 0;
      continue;
    }
    watched++;
    if (pid != m->pid || b != m->seen) {
      m->pid = pid;
      m->seen = b;
      m->last_ms = now;
    }
    uint64_t age = now - m->last_ms;
    int gone = kill((pid_t)pid, 0) < 0 && errno == ESRCH;
    if (!gone && age <= s->max_age_ms) continue;
    if (failed++ == 0) {
      if (gone) snprintf(first, sizeof first, "worker %u (pid %d) exited", i, pid);
      else
        snprintf(first, sizeof first, "worker %u (pid %d): no beat for %llu ms (max %u)", i, pid,
                 (unsigned long long)age, s->max_age_ms);
    }
  }
  health_result_observe(r, (double)(watched - failed), "workers");
  if (failed == 0) health_result_set(r, HEALTH_PASS, "%u of %u workers beating", watched, watched);
  else if (failed == 1) health_result_set(r, HEALTH_FAIL, "%s", first);
  else health_result_set(r, HEALTH_FAIL, "%s (and %u more)", first, failed - 1);
}

HEALTH_EXPORT int health_heartbeat_shared_add(health_t *h, const char *name, unsigned slots,
                                              unsigned max_age_ms, health_heartbeat_shared_t **out,
                                              health_error_t *err) {
  if (out) *out = NULL;
  if (!h || !name || !out)
    return health__err(err, HEALTH_EINVAL,
                       "health_heartbeat_shared_add: handle, name and out are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_heartbeat_shared_add: the handle belongs to the parent process");
  if (slots < 1 || slots > SLOTS_MAX)
    return health__err(err, HEALTH_EINVAL, "shared heartbeat '%s': slots must be 1 to %u (got %u)",
                       name, SLOTS_MAX, slots);
  if (max_age_ms < MAX_AGE_MIN_MS || max_age_ms > MAX_AGE_MAX_MS)
    return health__err(err, HEALTH_EINVAL,
                       "shared heartbeat '%s': max age must be %u ms to %u ms (got %u)", name,
                       MAX_AGE_MIN_MS, MAX_AGE_MAX_MS, max_age_ms);
  health_heartbeat_shared_t *s = calloc(1, sizeof *s);
  if (!s || !(s->samples = calloc(slots, sizeof *s->samples))) {
    free(s);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  s->nslots = slots;
  s->max_age_ms = max_age_ms;
  s->map_len = (size_t)slots * sizeof(shared_slot_t);
  void *map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) {
    int e = errno;
    free(s->samples);
    free(s);
    return health__err(err, HEALTH_ESYS, "shared heartbeat '%s': mmap: %s", name, strerror(e));
  }
  s->slots = map; /* zero-filled: no slot watched */
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = max_age_ms / 4 < 10 ? 10 : max_age_ms / 4;
  co.timeout_ms = co.interval_ms / 2 ? co.interval_ms / 2 : 1;
  co.failure_threshold = 1;
  co.success_threshold = 1;
  co.critical = 1;
  co.endpoints = HEALTH_LIVENESS | HEALTH_READINESS;
  co.component_type = "system";
  co.measurement = "workers";
  int rc = health_check_add(h, name, shared_check, s, shared_free, &co, err);
  if (rc) {
    shared_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

HEALTH_EXPORT void health_heartbeat_shared_beat(health_heartbeat_shared_t *s, unsigned slot) {
  if (!s || slot >= s->nslots) return;
  /* A load and a store, as health_heartbeat_beat(): one beating process
   * per slot. */
  atomic_uint *b = &s->slots[slot].beats;
  atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1, memory_order_relaxed);
}

HEALTH_EXPORT int health_heartbeat_shared_attach(health_heartbeat_shared_t *s, unsigned slot,
                                                 pid_t pid, health_error_t *err) {
  if (!s) return health__err(err, HEALTH_EINVAL, "shared heartbeat is NULL");
  if (slot >= s->nslots)
    return health__err(err, HEALTH_EINVAL, "slot %u out of range (%u slots)", slot, s->nslots);
  if (pid <= 0) return health__err(err, HEALTH_EINVAL, "pid must be positive");
  atomic_store(&s->slots[slot].pid, (int)pid);
  return 0;
}

HEALTH_EXPORT int health_heartbeat_shared_detach(health_heartbeat_shared_t *s, unsigned slot,
                                                 health_error_t *err) {
  if (!s) return health__err(err, HEALTH_EINVAL, "shared heartbeat is NULL");
  if (slot >= s->nslots)
    return health__err(err, HEALTH_EINVAL, "slot %u out of range (%u slots)", slot, s->nslots);
  atomic_store(&s->slots[slot].pid, 0);
  return 0;
}
