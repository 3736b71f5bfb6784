/*
 * systemd notification (sd_notify protocol) without libsystemd: one
 * datagram per message to $NOTIFY_SOCKET.  READY=1 once readiness first
 * passes, STOPPING=1 on drain, WATCHDOG=1 every WATCHDOG_USEC/2 while
 * liveness passes, and liveness includes the application's heartbeats
 * (controls/heartbeat.c): a service whose own loop is stuck stops the pings even
 * though this thread runs, so WatchdogSec= catches it.  STATUS= also goes
 * out when the application toggles its readiness (controls/readiness.c).  Nothing
 * runs, and nothing wakes up, when systemd is not watching.  The socket
 * and the sending: notify/sd_notify.c.  READY=1 is sent by an observer of the
 * state (core/core.c), registered at start.
 */
#include "health_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* READY=1 once readiness passes (a state observer, h->lock held). */
static void ready_if_locked(health_t *h) {
  if (h->notify.notify_fd < 0 || h->notify.ready_notified || health__draining(h)) return;
  if (h->state != HEALTH__ST_STARTED) return;
  if (health__aggregate_locked(h, HEALTH_READINESS, health__now_ms(), NULL) == HEALTH_FAIL) return;
  /* Dropped (systemd's queue full): the next change of state retries. */
  if (health__notify_sent(h, "READY=1\nSTATUS=ready") == 0) h->notify.ready_notified = 1;
}

static void *watchdog_main(void *arg) {
  health_t *h = arg;
  uint64_t period_ms = h->notify.watchdog_usec / 2000;
  pthread_mutex_lock(&h->notify.wd_lock);
  uint64_t next = health__now_ms();
  while (!h->notify.wd_stop) {
    uint64_t now = health__now_ms();
    if (now >= next) {
      pthread_mutex_unlock(&h->notify.wd_lock);
      if (health_status(h, HEALTH_LIVENESS) != HEALTH_FAIL) health__notify(h, "WATCHDOG=1");
      pthread_mutex_lock(&h->notify.wd_lock);
      next = now + period_ms;
      continue;
    }
    struct timespec ts = health__timespec_ms(next);
    pthread_cond_timedwait(&h->notify.wd_cond, &h->notify.wd_lock, &ts);
  }
  pthread_mutex_unlock(&h->notify.wd_lock);
  return NULL;
}

int health__notify_start(health_t *h) {
  if (h->notify.notify_fd >= 0) {
    pthread_mutex_lock(&h->lock);
    health__observe_locked(h, ready_if_locked, NULL); /* (never full) */
    ready_if_locked(h);                               /* no checks at all: ready at once */
    pthread_mutex_unlock(&h->lock);
  }
  if (h->notify.notify_fd < 0 || !h->notify.watchdog_usec) return 0;
  if (pthread_mutex_init(&h->notify.wd_lock, NULL) != 0) return -1;
  if (health__cond_init_monotonic(&h->notify.wd_cond) != 0) {
    pthread_mutex_destroy(&h->notify.wd_lock);
    return -1;
  }
  if (health__thread_create(&h->notify.watchdog_thread, watchdog_main, h, 0) != 0) {
    pthread_mutex_destroy(&h->notify.wd_lock);
    pthread_cond_destroy(&h->notify.wd_cond);
    return -1;
  }
  h->notify.watchdog_started = 1;
  return 0;
}

void health__notify_stop(health_t *h) {
  if (!h->notify.watchdog_started) return;
  pthread_mutex_lock(&h->notify.wd_lock);
  h->notify.wd_stop = 1;
  pthread_cond_signal(&h->notify.wd_cond);
  pthread_mutex_unlock(&h->notify.wd_lock);
  pthread_join(h->notify.watchdog_thread, NULL);
  pthread_mutex_destroy(&h->notify.wd_lock);
  pthread_cond_destroy(&h->notify.wd_cond);
  h->notify.watchdog_started = 0;
}
