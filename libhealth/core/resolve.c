/* Name resolution bounded by a deadline.  getaddrinfo() cannot be
 * interrupted, so it runs on a detached thread; on timeout the caller walks
 * away and the thread frees the job when the lookup finally returns.
 *
 * A resolver that never answers must not turn into a thread per run: a
 * caller's slot keeps the lookup it walked away from, and its next call
 * waits for that one (same name) instead of starting another, so a check
 * has at most one lookup in flight.  Lookup threads of the whole process
 * are also capped (HEALTH__RESOLVE_MAX): past the cap a call fails at once. */
#include "health_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

struct health__dns_slot {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs, done, rc;
  struct addrinfo *res;
  char *host;
  char *port;
};
typedef struct health__dns_slot resolve_job_t;

#define RS_STR2(x) #x
#define RS_STR(x) RS_STR2(x)

/* Lookup threads alive in the process (every handle, every check). */
static unsigned running;
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;

static void job_release(resolve_job_t *j) {
  pthread_mutex_lock(&j->lock);
  int last = --j->refs == 0;
  pthread_mutex_unlock(&j->lock);
  if (!last) return;
  if (j->res) freeaddrinfo(j->res);
  pthread_mutex_destroy(&j->lock);
  pthread_cond_destroy(&j->cond);
  free(j->host);
  free(j->port);
  free(j);
}

static void *resolve_main(void *arg) {
  resolve_job_t *j = arg;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(j->host, j->port, &hints, &res);
  pthread_mutex_lock(&j->lock);
  j->rc = rc;
  j->res = res;
  j->done = 1;
  pthread_cond_broadcast(&j->cond);
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  pthread_mutex_lock(&running_lock);
  running--;
  pthread_mutex_unlock(&running_lock);
  return NULL;
}

void health__resolve_slot_free(health__dns_slot_t **slot) {
  if (!slot || !*slot) return;
  job_release(*slot);
  *slot = NULL;
}

static int same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A new job with two references (the caller's and the thread's), its
 * thread started; NULL with *why set when it cannot be. */
static resolve_job_t *job_start(const char *host, const char *port, const char **why) {
  resolve_job_t *j = calloc(1, sizeof *j);
  *why = "out of memory";
  if (!j) return NULL;
  if (!(j->host = strdup(host)) || (port && !(j->port = strdup(port)))) goto nolock;
  if (pthread_mutex_init(&j->lock, NULL) != 0) goto nolock;
  if (health__cond_init_monotonic(&j->cond) != 0) goto nocond;
  j->refs = 2;
  pthread_mutex_lock(&running_lock);
  if (running >= HEALTH__RESOLVE_MAX) {
    pthread_mutex_unlock(&running_lock);
    *why = "too many lookups in flight in the process (" RS_STR(HEALTH__RESOLVE_MAX) ")";
    j->refs = 1;
    job_release(j);
    return NULL;
  }
  running++;
  pthread_mutex_unlock(&running_lock);
  pthread_t t;
  if (health__thread_create(&t, resolve_main, j, 1) != 0) {
    pthread_mutex_lock(&running_lock);
    running--;
    pthread_mutex_unlock(&running_lock);
    j->refs = 1;
    job_release(j);
    *why = "cannot start a thread";
    return NULL;
  }
  return j;

nocond:
  pthread_mutex_destroy(&j->lock);
nolock:
  free(j->host);
  free(j->port);
  free(j);
  return NULL;
}

int health__resolve(health__dns_slot_t **slot, const char *host, const char *port,
                    uint64_t deadline, struct addrinfo **out, const char **why) {
  *out = NULL;
  *why = NULL;
  resolve_job_t *j = slot ? *slot : NULL;
  int joined = 0;
  if (j) {
    pthread_mutex_lock(&j->lock);
    int done = j->done;
    pthread_mutex_unlock(&j->lock);
    if (!done && !(same(j->host, host) && same(j->port, port))) {
      *why = "previous lookup still running";
      return -1;
    }
    if (done) { /* finished after its caller left: start afresh */
      health__resolve_slot_free(slot);
      j = NULL;
    } else {
      joined = 1;
    }
  }
  if (!j) {
    if (!(j = job_start(host, port, why))) return -1;
    *why = NULL;
    if (slot) *slot = j;
  }
  pthread_mutex_lock(&j->lock);
  while (!j->done) {
    struct timespec ts = health__timespec_ms(deadline);
    if (health__now_ms() >= deadline ||
        pthread_cond_timedwait(&j->cond, &j->lock, &ts) == ETIMEDOUT)
      if (!j->done) break;
  }
  int done = j->done, rc = j->rc;
  struct addrinfo *res = j->res;
  if (done) j->res = NULL;
  pthread_mutex_unlock(&j->lock);
  if (!done) {
    /* Walk away; the slot keeps the job for the next call. */
    if (!slot) job_release(j);
    if (joined) *why = "previous lookup still running";
    return 1;
  }
  if (slot) *slot = NULL;
  job_release(j);
  if (rc) {
    *why = gai_strerror(rc);
    return -1;
  }
  *out = res;
  return 0;
}
