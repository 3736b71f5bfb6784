/*
 * The connection guard's reaper thread (see http/guard.c for the whole design):
 * it cuts connections whose head deadline passed, peeks answered
 * keep-alive connections for a FIN, and evicts on EMFILE; and the guard's
 * creation and end, which start and join it.
 */
#include "http/guard_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Sleeps until the earliest head deadline (at least REAP_INTERVAL_MS
 * apart, to batch), and indefinitely while no connection waits for a head:
 * an idle service costs no wake-ups. */
static void *reaper_main(void *arg) {
  health__guard_t *g = arg;
  pthread_mutex_lock(&g->lock);
  uint64_t last_drain = 0;
  while (!g->stop) {
    health__guard_drain_locked(g);
    uint64_t now = health__now_ms(), next = UINT64_MAX;
    last_drain = now;
    for (int l = 0; l < 2; l++) {
      gslot_t *s;
      while ((s = g->list[l].first) && s->deadline_ms <= now)
        health__guard_cut_locked(
            g, s, &g->counts->reaped); /* (if claimed meanwhile: left to its answer) */
      if (s && s->deadline_ms < next) next = s->deadline_ms;
    }
    if (g->emfile_pending) health__guard_emfile_evict_locked(g, now, &next);
    /* Armed before the last look at the stack (both seq_cst): an answer
     * pushed after that look sees the flag and wakes us. */
    atomic_store_explicit(&g->wake_on_push, 1, memory_order_seq_cst);
    if (next == UINT64_MAX) {
      atomic_store_explicit(&g->sleeping, 1, memory_order_seq_cst);
      if (!atomic_load_explicit(&g->answered, memory_order_seq_cst))
        pthread_cond_wait(&g->cond, &g->lock);
      atomic_store_explicit(&g->sleeping, 0, memory_order_relaxed);
    } else if (!atomic_load_explicit(&g->answered, memory_order_seq_cst)) {
      if (next < now + REAP_INTERVAL_MS && !g->emfile_pending) next = now + REAP_INTERVAL_MS;
      struct timespec ts = health__timespec_ms(next);
      pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
    atomic_store_explicit(&g->wake_on_push, 0, memory_order_relaxed);
    /* Woken for answers: batch them (unarmed, nothing wakes us meanwhile). */
    uint64_t batch = last_drain + PEEK_BATCH_MS;
    if (!g->stop && !g->emfile_pending && health__now_ms() < batch) {
      struct timespec ts = health__timespec_ms(batch);
      pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
  }
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

health__guard_t *health__guard_new(health_t *h) {
  unsigned cap = h->opt.max_connections;
  unsigned slack = 16 + cap / 4;                         /* cut, not yet closed by MHD */
  unsigned room = health__guard_fd_room(h, cap + slack); /* http/guard_nofile.c */
  if (room < cap + slack) {
    unsigned was = cap;
    cap = room * 4 / 5;
    if (cap < 1) cap = 1;
    slack = room - cap;
    char a[16], b[16];
    snprintf(a, sizeof a, "%u", was);
    snprintf(b, sizeof b, "%u", cap);
    health__log(h, HEALTH_LOG_WARN, "connections_capped", "#max_connections", a, "#cap", b,
                "reason", "RLIMIT_NOFILE too low", NULL);
  }
  unsigned n = cap + slack;
  health__guard_t *g = calloc(1, sizeof *g + n * sizeof g->slots[0]);
  if (!g) return NULL;
  g->h = h;
  g->counts = &h->http.guard_counts;
  g->timeout_ms = (uint64_t)h->opt.connection_timeout_s * 1000u;
  g->cap = cap;
  g->nslots = n;
  for (unsigned i = n; i-- > 0;) {
    g->slots[i].fd = -1;
    g->slots[i].on = -1;
    g->slots[i].next = g->free_list;
    g->free_list = &g->slots[i];
  }
  g->reserve_fd = health__fd_hoist(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (health__cond_init_monotonic(&g->cond) != 0) goto fail;
  if (pthread_mutex_init(&g->lock, NULL) != 0) goto fail_cond;
  if (health__thread_create(&g->thread, reaper_main, g, 0) != 0) goto fail_mutex;
  return g;
fail_mutex:
  pthread_mutex_destroy(&g->lock);
fail_cond:
  pthread_cond_destroy(&g->cond);
fail:
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  free(g);
  return NULL;
}

/* Only after MHD_stop_daemon(): no connection callback may follow. */
void health__guard_free(health__guard_t *g) {
  if (!g) return;
  pthread_mutex_lock(&g->lock);
  g->stop = 1;
  pthread_cond_signal(&g->cond);
  pthread_mutex_unlock(&g->lock);
  pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cond);
  pthread_mutex_destroy(&g->lock);
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  free(g);
}
