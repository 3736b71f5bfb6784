/*
 * The check engine: registry, one scheduler thread that owns every deadline,
 * and a pool of worker threads that run the callbacks.
 *
 * Why the deadline lives in the scheduler and not in the worker: a custom
 * callback can hang forever and nothing can interrupt it.  The scheduler
 * publishes "timeout" at the deadline regardless, and the check is simply
 * not dispatched again until its stuck worker returns.  The pool grows when
 * every worker is busy (bounded by the number of checks, since runs of one
 * check never overlap), so one hung check never delays the others.
 *
 * All mutable check state is guarded by h->lock.  The request path never
 * runs a check: it only reads published results (see http/render.c).
 *
 * This file: the scheduler and the worker pool.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound on worker threads.  Beyond it, due runs wait in the queue;
 * their deadline runs from dispatch, so a queue that cannot drain shows as
 * timeouts, never as stale passes. */
#define MAX_WORKERS 64

static void *worker_main(void *arg);

static void dispatch_locked(health_t *h, health__check_t *c, uint64_t now) {
  c->running = 1;
  c->timed_out = 0;
  c->started_ms = now;
  c->deadline_ms = now + c->timeout_ms;
  c->obs.started_us = health__now_us(); /* the run's duration, for /metrics */
  c->next_job = NULL;
  if (h->eng.queue_tail) h->eng.queue_tail->next_job = c;
  else h->eng.queue_head = c;
  h->eng.queue_tail = c;
  h->eng.queued++;
  /* Grow only when the queue outnumbers the workers that will take from it:
   * idle ones (a signalled worker counts as idle until it wakes) and ones
   * just created.  Testing idle_workers == 0 made one scheduler pass over N
   * due checks create N threads (1000 checks: 1004 threads, 15 MiB RSS). */
  size_t cap = h->eng.nchecks < MAX_WORKERS ? h->eng.nchecks : MAX_WORKERS;
  if (h->eng.queued > h->eng.idle_workers + h->eng.starting_workers && h->eng.nworkers < cap) {
    /* Joinable, so health_stop() can wait until a finished worker has
     * really returned (thread-local destructors, e.g. OpenSSL's, run after
     * our code; a detached thread could still be in them at exit()). */
    health__worker_t *w = &h->eng.workers[h->eng.nworker_slots];
    if (h->eng.nworker_slots < h->eng.nchecks) w->h = h, w->finished = 0;
    if (h->eng.nworker_slots < h->eng.nchecks &&
        health__thread_create(&w->thread, worker_main, w, 0) == 0) {
      h->eng.nworker_slots++;
      h->eng.nworkers++;
      h->eng.starting_workers++;
    } else if (h->eng.nworkers == 0) {
      /* No thread at all: fail the run now rather than leave it queued. */
      h->eng.queue_head = h->eng.queue_tail = NULL;
      h->eng.queued = 0;
      c->running = 0;
      c->next_due_ms = now + c->interval_ms;
      health__publish_locked(h, c, HEALTH_FAIL, "could not start a worker thread", NULL);
      return;
    }
  }
  pthread_cond_signal(&h->eng.work_cond);
}

static void *sched_main(void *arg) {
  health_t *h = arg;
  pthread_mutex_lock(&h->lock);
  while (!h->eng.sched_stop) {
    uint64_t now = health__now_ms();
    uint64_t next = UINT64_MAX, planned = h->eng.sched_wake_ms;
    if (planned && planned != UINT64_MAX && now > planned + HEALTH__STALE_GRACE_MS) {
      /* Woken this late, the scheduler was not running: the process was
       * paused (or starved).  The checks were too: the pause does not age
       * their results (deadlines of runs in progress stay: a run that
       * outlived its deadline is reported as such). */
      uint64_t paused = now - planned;
      for (size_t i = 0; i < h->eng.nchecks; i++) {
        health__check_t *c = h->eng.checks[i];
        if (!c->result_mono_ms) continue;
        c->result_mono_ms += paused;
        if (c->result_mono_ms > now) c->result_mono_ms = now;
      }
      char p[24];
      snprintf(p, sizeof p, "%llu", (unsigned long long)paused);
      health__log(h, HEALTH_LOG_INFO, "scheduler_paused", "#paused_ms", p, "action",
                  "the pause does not age check results", NULL);
    }
    for (size_t i = 0; i < h->eng.nchecks; i++) {
      health__check_t *c = h->eng.checks[i];
      if (c->effective != HEALTH_PENDING && !c->stale_reported) {
        /* A result going stale is a transition too: wake for it. */
        if (now > health__stale_after(c)) {
          c->stale_reported = 1;
          health__check_report_locked(h, c, now, "stale");
          health__state_changed_locked(h); /* the bodies change now, with the log */
        } else if (health__stale_after(c) + 1 < next) {
          next = health__stale_after(c) + 1;
        }
      }
      if (c->running) {
        if (c->timed_out) continue; /* waits for its worker to return */
        if (now >= c->deadline_ms) {
          /* The run's memory stays the worker's until it returns, which
           * it does under this lock: the phase is read safely. */
          const char *phase =
              c->run_result ? atomic_load_explicit(&c->run_result->phase, memory_order_acquire)
                            : NULL;
          char msg[96];
          if (phase) snprintf(msg, sizeof msg, "timeout after %u ms (%s)", c->timeout_ms, phase);
          else snprintf(msg, sizeof msg, "timeout after %u ms", c->timeout_ms);
          c->timed_out = 1;
          health__publish_locked(h, c, HEALTH_FAIL, msg, NULL);
        } else if (c->deadline_ms < next) {
          next = c->deadline_ms;
        }
      } else if (now >= c->next_due_ms) {
        dispatch_locked(h, c, now);
        if (c->running && c->deadline_ms < next) next = c->deadline_ms;
        else if (!c->running && c->next_due_ms < next) next = c->next_due_ms;
      } else if (c->next_due_ms < next) {
        next = c->next_due_ms;
      }
    }
    /* Workers wake us only for a check due before this (see worker_main). */
    h->eng.sched_wake_ms = next;
    if (next == UINT64_MAX) {
      pthread_cond_wait(&h->eng.sched_cond, &h->lock);
    } else {
      struct timespec ts = health__timespec_ms(next);
      pthread_cond_timedwait(&h->eng.sched_cond, &h->lock, &ts);
    }
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

static void *worker_main(void *arg) {
  health__worker_t *self = arg;
  health_t *h = self->h;
  /* The result lives on this thread's heap, not its stack, so a callback
   * abandoned at its deadline writes only into memory it still owns. */
  health_result_t *r = malloc(sizeof *r);
  pthread_mutex_lock(&h->lock);
  h->eng.starting_workers--;
  for (;;) {
    while (!h->eng.queue_head && !h->eng.sched_stop) {
      h->eng.idle_workers++;
      pthread_cond_wait(&h->eng.work_cond, &h->lock);
      h->eng.idle_workers--;
    }
    if (h->eng.sched_stop) break;
    health__check_t *c = h->eng.queue_head;
    h->eng.queue_head = c->next_job;
    if (!h->eng.queue_head) h->eng.queue_tail = NULL;
    h->eng.queued--;
    if (!r) {
      c->running = 0;
      c->next_due_ms = health__now_ms() + c->interval_ms;
      health__publish_locked(h, c, HEALTH_FAIL, "out of memory", NULL);
      r = malloc(sizeof *r);
      continue;
    }
    memset(r, 0, sizeof *r);
    r->deadline_ms = c->deadline_ms;
    r->max_output = h->opt.max_output_bytes;
    r->h = h;
    r->interval_ms = c->interval_ms;
    c->run_result = r;
    pthread_mutex_unlock(&h->lock);

    c->fn(r, c->arg);

    pthread_mutex_lock(&h->lock);
    c->run_result = NULL;
    uint64_t now = health__now_ms();
    if (h->eng.free_pending) {
      /* health_free() has returned: the application may have torn down
       * its log sink, and nobody can read a result any more. */
    } else if (!c->timed_out) {
      if (r->status_set) health__publish_locked(h, c, r->status, r->output, r);
      else health__publish_locked(h, c, HEALTH_FAIL, "check returned without a status", r);
    } else {
      char ms[32];
      snprintf(ms, sizeof ms, "%llu", (unsigned long long)(now - c->started_ms));
      health__log(h, HEALTH_LOG_WARN, "check_late", "check", c->name, "#elapsed_ms", ms, NULL);
    }
    c->running = 0;
    c->timed_out = 0;
    c->next_due_ms = health__next_due_locked(h, c, r, now); /* engine/jitter.c */
    /* A context switch per completed run adds up with many checks: the
     * scheduler already plans to wake by sched_wake_ms, so it only needs a
     * signal when this check is due earlier. */
    if (c->next_due_ms < h->eng.sched_wake_ms) pthread_cond_signal(&h->eng.sched_cond);
  }
  h->eng.nworkers--;
  self->finished = 1;
  int last = h->eng.nworkers == 0;
  int free_now = last && h->eng.free_pending;
  if (last) pthread_cond_broadcast(&h->eng.workers_done);
  pthread_mutex_unlock(&h->lock);
  free(r);
  if (free_now) h->core.free_final(h); /* health_free() left it to us */
  return NULL;
}

int health__engine_defer_free(health_t *h) {
  pthread_mutex_lock(&h->lock);
  int deferred = h->eng.nworkers > 0;
  if (deferred) h->eng.free_pending = 1; /* the last worker frees (worker_main) */
  pthread_mutex_unlock(&h->lock);
  return deferred;
}

int health__engine_init(health_t *h) {
  if (health__cond_init_monotonic(&h->eng.sched_cond)) return -1;
  if (health__cond_init_monotonic(&h->eng.work_cond)) {
    pthread_cond_destroy(&h->eng.sched_cond);
    return -1;
  }
  if (health__cond_init_monotonic(&h->eng.workers_done)) {
    pthread_cond_destroy(&h->eng.sched_cond);
    pthread_cond_destroy(&h->eng.work_cond);
    return -1;
  }
  h->eng.inited = 1;
  return 0;
}

int health__checks_start(health_t *h, health_error_t *err) {
  uint64_t now = health__now_ms();
  h->eng.workers = calloc(h->eng.nchecks ? h->eng.nchecks : 1, sizeof *h->eng.workers);
  if (!h->eng.workers) return health__err(err, HEALTH_ENOMEM, "out of memory starting the checks");
  pthread_mutex_lock(&h->lock);
  h->eng.sched_stop = 0;
  for (size_t i = 0; i < h->eng.nchecks; i++)
    h->eng.checks[i]->next_due_ms = health__first_due_locked(h, h->eng.checks[i], now);
  pthread_mutex_unlock(&h->lock);
  if (health__thread_create(&h->eng.sched_thread, sched_main, h, 0) != 0)
    return health__err(err, HEALTH_ESYS, "could not start the scheduler thread: %s",
                       strerror(errno));
  h->eng.sched_started = 1;
  return 0;
}

void health__checks_stop(health_t *h) {
  pthread_mutex_lock(&h->lock);
  h->eng.sched_stop = 1;
  pthread_cond_broadcast(&h->eng.sched_cond);
  pthread_cond_broadcast(&h->eng.work_cond);
  pthread_mutex_unlock(&h->lock);
  if (h->eng.sched_started) {
    pthread_join(h->eng.sched_thread, NULL);
    h->eng.sched_started = 0;
  }
  /* Runs in progress get until their deadline; after that they are
   * abandoned (their workers free the handle if it is gone by then). */
  pthread_mutex_lock(&h->lock);
  uint64_t until = health__now_ms();
  for (size_t i = 0; i < h->eng.nchecks; i++)
    if (h->eng.checks[i]->running && !h->eng.checks[i]->timed_out &&
        h->eng.checks[i]->deadline_ms > until)
      until = h->eng.checks[i]->deadline_ms;
  until += 50;
  while (h->eng.nworkers > 0) {
    struct timespec ts = health__timespec_ms(until);
    if (pthread_cond_timedwait(&h->eng.workers_done, &h->lock, &ts) == ETIMEDOUT) break;
  }
  if (h->eng.nworkers > 0) {
    for (size_t i = 0; i < h->eng.nchecks; i++)
      if (h->eng.checks[i]->running)
        health__log(h, HEALTH_LOG_WARN, "check_abandoned", "check", h->eng.checks[i]->name, NULL);
  }
  h->eng.queue_head = h->eng.queue_tail = NULL;
  h->eng.queued = 0;
  for (size_t i = 0; i < h->eng.nchecks; i++) health__repeat_flush(h, &h->eng.checks[i]->repeat);
  /* Join the workers that returned; detach the ones stuck in a callback. */
  for (size_t i = 0; i < h->eng.nworker_slots; i++) {
    health__worker_t *w = &h->eng.workers[i];
    if (w->reaped) continue;
    if (!w->finished) {
      pthread_detach(w->thread);
      w->reaped = 1;
    }
  }
  pthread_mutex_unlock(&h->lock);
  for (size_t i = 0; i < h->eng.nworker_slots; i++) {
    health__worker_t *w = &h->eng.workers[i];
    if (!w->reaped) {
      pthread_join(w->thread, NULL);
      w->reaped = 1;
    }
  }
}
