/* Thread helpers of the library (core/thread.c): the bottom layer, calls
 * nothing of the library's own. */
#ifndef HEALTH_THREAD_H
#define HEALTH_THREAD_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Create a thread with every signal blocked (the library's threads never
 * receive the application's signals).  0, or -1 with errno set. */
int health__thread_create(pthread_t *t, void *(*fn)(void *), void *arg, int detached);

/* A condition variable whose timed waits count CLOCK_MONOTONIC (the
 * library's deadlines are health__now_ms() values).  0 or -1. */
int health__cond_init_monotonic(pthread_cond_t *c);

/* An absolute CLOCK_MONOTONIC time in milliseconds as a timespec for
 * pthread_cond_timedwait() on such a condition variable. */
static inline struct timespec health__timespec_ms(uint64_t mono_ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(mono_ms / 1000);
  ts.tv_nsec = (long)(mono_ms % 1000) * 1000000L;
  return ts;
}

#endif
