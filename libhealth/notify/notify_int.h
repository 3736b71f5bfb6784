/*
 * systemd notification's private header: the socket (notify/sd_notify.c, which
 * any layer may send through) and the READY=1 / watchdog logic (notify/notify_ready.c).
 */
#ifndef HEALTH_NOTIFY_INT_H
#define HEALTH_NOTIFY_INT_H

#include "core/base_int.h"

typedef struct health__notify {
  int notify_fd; /* notify/sd_notify.c; -1: systemd is not watching */
  char notify_path[108];
  size_t notify_len;
  uint64_t watchdog_usec;
  int ready_notified; /* notify/notify_ready.c, h->lock held */
  pthread_t watchdog_thread;
  int watchdog_started;
  pthread_mutex_t wd_lock;
  pthread_cond_t wd_cond;
  int wd_stop;
} health__notify_t;

/* ---- systemd notify (notify/notify_ready.c) ---- */
void health__notify_init(health_t *h); /* notify/sd_notify.c: NOTIFY_SOCKET, WATCHDOG_USEC */
void health__notify_free(health_t *h); /* notify/sd_notify.c: closes the socket */
int health__notify_watched(const health_t *h); /* notify/sd_notify.c: 1 if systemd listens */
int health__notify_start(health_t *h);
void health__notify_stop(health_t *h);
void health__notify(health_t *h, const char *msg);     /* notify/sd_notify.c, any layer */
int health__notify_sent(health_t *h, const char *msg); /* same, 0 if it went out */

#endif /* HEALTH_NOTIFY_INT_H */
