/* Thread helpers: signal-free thread creation, monotonic condition
 * variables.  The bottom layer: calls nothing of the library's own. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/thread.h"

#include <errno.h>
#include <signal.h>

int health__thread_create(pthread_t *t, void *(*fn)(void *), void *arg, int detached) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return -1;
  if (detached) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* The new thread inherits our mask: block every signal so that the
   * application's handlers run on the application's threads only. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(t, &attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc) errno = rc;
  return rc ? -1 : 0;
}

int health__cond_init_monotonic(pthread_cond_t *c) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0) return -1;
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return rc ? -1 : 0;
}
