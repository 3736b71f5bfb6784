/*
 * systemd notification (sd_notify protocol) without libsystemd: one
 * datagram per message to $NOTIFY_SOCKET.  READY=1 once readiness first
 * passes, STOPPING=1 on drain, WATCHDOG=1 every WATCHDOG_USEC/2 while
 * liveness passes, and liveness includes the application's heartbeats
 * (heartbeat.c): a service whose own loop is stuck stops the pings even
 * though this thread runs, so WatchdogSec= catches it.  STATUS= also goes
 * out when the application toggles its readiness (readiness.c).  Nothing
 * runs, and nothing wakes up, when systemd is not watching.
 */
#include "health-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void health__notify_init(health_t *h) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof h->notify_path)
    return;
  h->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (h->notify_fd < 0) return;
  memcpy(h->notify_path, path, strlen(path) + 1);
  h->notify_len = strlen(path);
  const char *wd = getenv("WATCHDOG_USEC");
  const char *wpid = getenv("WATCHDOG_PID");
  if (wd && *wd && (!wpid || !*wpid || strtol(wpid, NULL, 10) == (long)getpid())) {
    char *end;
    unsigned long long us = strtoull(wd, &end, 10);
    if (*end == 0 && us >= 2000) h->watchdog_usec = us;
  }
}

/* 0 if the datagram went out. */
static int send_msg(health_t *h, const char *msg) {
  if (h->notify_fd < 0) return -1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, h->notify_path, h->notify_len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0; /* abstract namespace */
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + h->notify_len);
  /* Never wait for systemd: READY=1 goes out with h->lock held (the
   * request path would freeze) and STOPPING=1 from the shutdown thread
   * (the deadline would not fire).  A full queue drops the message. */
  ssize_t n;
  do n = sendto(h->notify_fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                (struct sockaddr *)&sa, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

void health__notify(health_t *h, const char *msg) { (void)send_msg(h, msg); }

void health__notify_ready_if(health_t *h) {
  if (h->notify_fd < 0 || h->ready_notified || atomic_load(&h->draining)) return;
  if (h->state != HEALTH__ST_STARTED) return;
  if (health__aggregate_locked(h, HEALTH_READINESS, health__now_ms(), NULL) == HEALTH_FAIL) return;
  /* Dropped (systemd's queue full): the next change of state retries. */
  if (send_msg(h, "READY=1\nSTATUS=ready") == 0) h->ready_notified = 1;
}

static void *watchdog_main(void *arg) {
  health_t *h = arg;
  uint64_t period_ms = h->watchdog_usec / 2000;
  pthread_mutex_lock(&h->wd_lock);
  uint64_t next = health__now_ms();
  while (!h->wd_stop) {
    uint64_t now = health__now_ms();
    if (now >= next) {
      pthread_mutex_unlock(&h->wd_lock);
      if (health_status(h, HEALTH_LIVENESS) != HEALTH_FAIL) health__notify(h, "WATCHDOG=1");
      pthread_mutex_lock(&h->wd_lock);
      next = now + period_ms;
      continue;
    }
    struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
    pthread_cond_timedwait(&h->wd_cond, &h->wd_lock, &ts);
  }
  pthread_mutex_unlock(&h->wd_lock);
  return NULL;
}

int health__notify_start(health_t *h) {
  if (h->notify_fd >= 0) {
    pthread_mutex_lock(&h->lock);
    health__notify_ready_if(h); /* no checks at all: ready at once */
    pthread_mutex_unlock(&h->lock);
  }
  if (h->notify_fd < 0 || !h->watchdog_usec) return 0;
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_mutex_init(&h->wd_lock, NULL);
  pthread_cond_init(&h->wd_cond, &a);
  pthread_condattr_destroy(&a);
  if (health__thread_create(&h->watchdog_thread, watchdog_main, h, 0) != 0) {
    pthread_mutex_destroy(&h->wd_lock);
    pthread_cond_destroy(&h->wd_cond);
    return -1;
  }
  h->watchdog_started = 1;
  return 0;
}

void health__notify_stop(health_t *h) {
  if (!h->watchdog_started) return;
  pthread_mutex_lock(&h->wd_lock);
  h->wd_stop = 1;
  pthread_cond_signal(&h->wd_cond);
  pthread_mutex_unlock(&h->wd_lock);
  pthread_join(h->watchdog_thread, NULL);
  pthread_mutex_destroy(&h->wd_lock);
  pthread_cond_destroy(&h->wd_cond);
  h->watchdog_started = 0;
}
