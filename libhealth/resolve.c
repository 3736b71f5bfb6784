/* Name resolution bounded by a deadline.  getaddrinfo() cannot be
 * interrupted, so it runs on a detached thread; on timeout the caller walks
 * away and the thread frees the job when the lookup finally returns. */
#include "health-int.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

typedef struct resolve_job {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs, done, rc;
  struct addrinfo *res;
  char *host;
  char *port;
} resolve_job_t;

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
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  return NULL;
}

int health__resolve(const char *host, const char *port, uint64_t deadline,
                    struct addrinfo **out, const char **why) {
  *out = NULL;
  *why = NULL;
  resolve_job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->host = strdup(host)) || (port && !(j->port = strdup(port)))) {
    if (j) free(j->host);
    free(j);
    *why = "out of memory";
    return -1;
  }
  j->refs = 2;
  if (pthread_mutex_init(&j->lock, NULL) != 0) goto nothread_nolock;
  if (health__cond_init_monotonic(&j->cond) != 0) goto nothread_nocond;
  pthread_t t;
  if (health__thread_create(&t, resolve_main, j, 1) != 0) {
    j->refs = 1;
    job_release(j);
    *why = "cannot start a thread";
    return -1;
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
  j->res = NULL;
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  if (!done) return 1;
  if (rc) {
    *why = gai_strerror(rc);
    return -1;
  }
  *out = res;
  return 0;

nothread_nocond:
  pthread_mutex_destroy(&j->lock);
nothread_nolock:
  free(j->host);
  free(j->port);
  free(j);
  *why = "out of memory";
  return -1;
}
