/*
 * What the shutdown sequence needs, made at health_start() so that SIGTERM
 * finds it whatever the process has left (descriptors, threads, address
 * space), and the deadline that nothing can hold up:
 *  - the hook runner: one thread waiting on a condition variable that runs
 *    one hook at a time; a hook that returns writes 'h' to the wake pipe
 *    (made at health_new), so no pipe or thread is made per hook.  A hook
 *    abandoned at its timeout keeps the runner's thread, which frees the
 *    runner when the hook returns; the next hook gets a new runner
 *    (health__runner_get), and with none to be had the sequence runs it
 *    itself (shutdown/sequence.c);
 *  - the watchdog: a thread that waits, from the first shutdown request
 *    (health_shutdown() posts its semaphore, async-signal-safe), until the
 *    deadline + WATCHDOG_GRACE_MS.  If the sequence has not finished by
 *    then (blocked in a log sink, a lock, a listener, a hook run inline) it
 *    _exit()s with the code the sequence decided, or HEALTH_EXIT_DEADLINE;
 *    without exit_on_shutdown it makes health_wait() return that code.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the hook runner ---- */

struct health__hook_runner {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a job, or quit */
  pthread_t thread;
  int wake_fd; /* the wake pipe's write end: 'h' when a hook returns */
  health_hook_fn fn;
  void *arg;
  unsigned budget;
  int job, done, rc;
  int quit;      /* the owner stops an idle runner (joined) */
  int abandoned; /* the sequence gave up on the hook: the thread frees */
};

static void runner_free(health__hook_runner_t *r) {
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  free(r);
}

static void *runner_main(void *arg) {
  health__hook_runner_t *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (!r->job && !r->quit) pthread_cond_wait(&r->cond, &r->lock);
    if (!r->job) break;
    health_hook_fn fn = r->fn;
    void *a = r->arg;
    unsigned budget = r->budget;
    pthread_mutex_unlock(&r->lock);
    int rc = fn(a, budget);
    pthread_mutex_lock(&r->lock);
    r->job = 0;
    r->done = 1;
    r->rc = rc;
    if (r->abandoned) break;
    /* Under r->lock: until it is abandoned, the handle (and the pipe) lives.
     * The pipe is non-blocking: a full one already wakes the sequence. */
    ssize_t n;
    do n = write(r->wake_fd, "h", 1);
    while (n < 0 && errno == EINTR);
  }
  int mine = r->abandoned;
  pthread_mutex_unlock(&r->lock);
  if (mine) runner_free(r);
  return NULL;
}

/* A joinable runner thread, or NULL (no memory, no thread). */
static health__hook_runner_t *runner_new(health_t *h) {
  health__hook_runner_t *r = calloc(1, sizeof *r);
  if (!r) {
    errno = ENOMEM;
    return NULL;
  }
  if (pthread_mutex_init(&r->lock, NULL) != 0) {
    free(r);
    return NULL;
  }
  if (pthread_cond_init(&r->cond, NULL) != 0) {
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
  }
  r->wake_fd = h->sd.wake_pipe[1];
  if (health__thread_create(&r->thread, runner_main, r, 0) != 0) {
    int e = errno;
    runner_free(r);
    errno = e;
    return NULL;
  }
  return r;
}

/* Stop an idle runner the handle still owns, and free it. */
static void runner_stop(health__hook_runner_t *r) {
  pthread_mutex_lock(&r->lock);
  r->quit = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  pthread_join(r->thread, NULL);
  runner_free(r);
}

health__hook_runner_t *health__runner_get(health_t *h) {
  if (!h->sd.runner) h->sd.runner = runner_new(h);
  return h->sd.runner;
}

void health__runner_submit(health__hook_runner_t *r, health_hook_fn fn, void *arg,
                           unsigned budget) {
  pthread_mutex_lock(&r->lock);
  r->fn = fn;
  r->arg = arg;
  r->budget = budget;
  r->done = 0;
  r->job = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

int health__runner_done(health__hook_runner_t *r, int *rc) {
  pthread_mutex_lock(&r->lock);
  int done = r->done;
  if (done) {
    *rc = r->rc;
    r->done = 0;
  }
  pthread_mutex_unlock(&r->lock);
  return done;
}

int health__runner_abandon(health_t *h, health__hook_runner_t *r, int *rc) {
  pthread_mutex_lock(&r->lock);
  int done = r->done;
  if (done) {
    *rc = r->rc; /* it returned just now */
    r->done = 0;
  } else {
    /* It keeps its thread, which frees the runner when the hook returns. */
    r->abandoned = 1;
    pthread_detach(r->thread);
    h->sd.runner = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  return done;
}

/* ---- the watchdog ---- */

/* After the deadline the sequence gets this long to finish on its own (its
 * deadline lines, _exit) before the watchdog ends the process. */
#define WATCHDOG_GRACE_MS 100
/* Then the watchdog's own line gets at most this long to reach the sink. */
#define WATCHDOG_LOG_MS 50

static void *watchdog_main(void *arg) {
  health_t *h = arg;
  uint64_t req;
  for (;;) { /* until the first shutdown request, or stop */
    if (sem_wait(&h->sd.wd_sem) != 0 && errno != EINTR) return NULL;
    pthread_mutex_lock(&h->sd.done_lock);
    int quit = h->sd.wd_quit;
    pthread_mutex_unlock(&h->sd.done_lock);
    if (quit) return NULL;
    if ((req = atomic_load(&h->sd.requested_ms)) != 0) break;
  }
  uint64_t fire = req + h->opt.shutdown_deadline_ms + WATCHDOG_GRACE_MS;
  pthread_mutex_lock(&h->sd.done_lock);
  while (!h->sd.done && !h->sd.wd_quit && health__now_ms() < fire) {
    struct timespec ts = health__timespec_ms(fire);
    pthread_cond_timedwait(&h->sd.done_cond, &h->sd.done_lock, &ts);
  }
  if (h->sd.done || h->sd.wd_quit) {
    pthread_mutex_unlock(&h->sd.done_lock);
    return NULL;
  }
  /* The sequence is stuck (a log sink, a drain callback, a lock, a
   * listener, a hook run on its own thread): the code it decided, or the
   * deadline's.  Nothing here may block: one line is queued (that never
   * waits) and given WATCHDOG_LOG_MS to reach the sink, so an operator
   * learns why the exit came from the watchdog; a stuck sink loses it.  No
   * quiesce, no other flush. */
  int code = atomic_load(&h->sd.final_code);
  if (code < 0) code = HEALTH_EXIT_DEADLINE;
  pthread_mutex_unlock(&h->sd.done_lock);
  char dl[24], cd[16];
  snprintf(dl, sizeof dl, "%u", h->opt.shutdown_deadline_ms);
  snprintf(cd, sizeof cd, "%d", code);
  health__log(h, HEALTH_LOG_ERROR, "shutdown_watchdog", "#deadline_ms", dl, "#exit_code", cd,
              "reason",
              "the shutdown sequence was still blocked after its deadline (a log sink, a drain "
              "callback, a listener or a hook run on its thread)",
              NULL);
  health__log_flush(h, health__now_ms() + WATCHDOG_LOG_MS);
  pthread_mutex_lock(&h->sd.done_lock);
  if (h->sd.done || h->sd.wd_quit) { /* it finished meanwhile */
    pthread_mutex_unlock(&h->sd.done_lock);
    return NULL;
  }
  int later = atomic_load(&h->sd.final_code); /* decided meanwhile */
  if (later >= 0) code = later;
  if (h->opt.exit_on_shutdown) _exit(code);
  h->sd.exit_code = code;
  h->sd.done = 1;
  h->sd.abandoned_ms = health__now_ms(); /* health_stop() waits a while, then leaves it */
  pthread_cond_broadcast(&h->sd.done_cond);
  pthread_mutex_unlock(&h->sd.done_lock);
  return NULL;
}

int health__seq_reserve(health_t *h, health_error_t *err) {
  /* A request made before start counts from now: the sequence starts now. */
  uint64_t req = atomic_load(&h->sd.requested_ms);
  if (req) atomic_compare_exchange_strong(&h->sd.requested_ms, &req, health__now_ms());
  h->sd.runner = runner_new(h);
  if (!h->sd.runner) {
    int e = errno;
    return health__err(err, e == ENOMEM ? HEALTH_ENOMEM : HEALTH_ESYS,
                       "could not start the shutdown hook thread: %s", strerror(e));
  }
  if (health__thread_create(&h->sd.wd_thread, watchdog_main, h, 0) != 0) {
    int e = errno;
    runner_stop(h->sd.runner);
    h->sd.runner = NULL;
    return health__err(err, HEALTH_ESYS, "could not start the shutdown watchdog thread: %s",
                       strerror(e));
  }
  h->sd.wd_started = 1;
  return 0;
}

void health__seq_request(health_t *h) {
  /* The first request starts the watchdog's clock, whatever the sequence
   * thread is doing: both calls are async-signal-safe. */
  uint64_t none = 0, now = health__now_ms();
  if (atomic_compare_exchange_strong(&h->sd.requested_ms, &none, now ? now : 1) &&
      h->sd.wd_sem_inited)
    sem_post(&h->sd.wd_sem);
  /* The sequence counts the requests it reads from the pipe. */
  char c = 's';
  ssize_t n;
  do n = write(h->sd.wake_pipe[1], &c, 1);
  while (n < 0 && errno == EINTR);
}

void health__seq_join_watchdog(health_t *h) {
  /* Only once it gave up on the sequence (abandoned_ms): it has returned
   * or is about to, and touches nothing more. */
  if (h->sd.wd_started) {
    pthread_join(h->sd.wd_thread, NULL);
    h->sd.wd_started = 0;
  }
}

void health__seq_release(health_t *h) {
  if (h->sd.wd_started) {
    pthread_mutex_lock(&h->sd.done_lock);
    h->sd.wd_quit = 1;
    pthread_cond_broadcast(&h->sd.done_cond);
    pthread_mutex_unlock(&h->sd.done_lock);
    sem_post(&h->sd.wd_sem);
    pthread_join(h->sd.wd_thread, NULL);
    h->sd.wd_started = 0;
  }
  if (h->sd.runner) {
    runner_stop(h->sd.runner);
    h->sd.runner = NULL;
  }
}
