/*
 * The connection guard's private header: its table (http/guard.c) and its
 * reaper (http/guard_reaper.c).  Nothing else includes it: the rest of the
 * library sees health__guard_t as opaque (http/http_int.h).
 */
#ifndef HEALTH_GUARD_INT_H
#define HEALTH_GUARD_INT_H

#include "health_int.h"

#define REAP_INTERVAL_MS 200
/* answered keep-alive connections: peeked for a FIN this often at most */
#define PEEK_BATCH_MS 20
#define EMFILE_MIN_AGE_MS 10 /* on EMFILE, spare connections younger than this */

enum { ST_FREE = 0, ST_HEAD, ST_IDLE, ST_BUSY, ST_CUT };
enum { L_HEAD = 0, L_IDLE = 1 };

typedef struct gslot {
  int fd;
  atomic_int state;          /* ST_*: claim and cut race on it (see above) */
  int on;                    /* L_HEAD, L_IDLE, or -1: on no list; lock held */
  uint64_t deadline_ms;      /* its place on list[on]; lock held */
  struct gslot *prev, *next; /* on list[on], or the free list (next) */
  atomic_int pending;        /* on the answered stack */
  atomic_int want_peek;      /* answered, staying open: look for a FIN behind the request */
  atomic_uint_fast64_t answered_deadline; /* set by the answer, read by drain() */
  struct gslot *pnext;                    /* next on the answered stack */
} gslot_t;

typedef struct {
  gslot_t *first, *last;
} glist_t;

struct health__guard {
  uint64_t timeout_ms;
  unsigned cap, nslots, live; /* live: not cut */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stop;
  atomic_int sleeping;         /* the reaper waits without a timeout */
  atomic_int wake_on_push;     /* the reaper waits: the next answer to peek at wakes it */
  _Atomic(gslot_t *) answered; /* stack of answered slots, see the top */
  int emfile_pending;          /* accept() is stopped: evict once a victim is old enough */
  pthread_t thread;
  int reserve_fd;
  glist_t list[2];
  gslot_t *free_list;
  health_t *h;
  health__guard_counts_t *counts; /* &h->http.guard_counts: written here only */
  gslot_t slots[];
};

/* Lock held: the answered slots to their places (http/guard.c). */
void health__guard_drain_locked(health__guard_t *g);
/* Lock held; s is on a list.  Cut it, counting in *counter; 0 if MHD's
 * thread claimed it first (http/guard.c). */
int health__guard_cut_locked(health__guard_t *g, gslot_t *s, atomic_ulong *counter);
/* Lock held: evict one connection old enough after EMFILE, or lower
 * *next (may be NULL) to when one will be (http/guard.c). */
void health__guard_emfile_evict_locked(health__guard_t *g, uint64_t now, uint64_t *next);

#endif /* HEALTH_GUARD_INT_H */
