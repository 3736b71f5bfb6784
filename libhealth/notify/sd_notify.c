/*
 * The sd_notify protocol without libsystemd: one datagram per message to
 * $NOTIFY_SOCKET.  The bottom of the systemd support: any layer may send
 * (controls/readiness.c sends STATUS=, shutdown/shutdown.c STOPPING=1); what to send and
 * when is decided above (notify/notify_ready.c: READY=1, WATCHDOG=1).
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void health__notify_init(health_t *h) {
  h->notify.notify_fd = -1;
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof h->notify.notify_path)
    return;
  h->notify.notify_fd = health__fd_hoist(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (h->notify.notify_fd < 0) return;
  memcpy(h->notify.notify_path, path, strlen(path) + 1);
  h->notify.notify_len = strlen(path);
  const char *wd = getenv("WATCHDOG_USEC");
  const char *wpid = getenv("WATCHDOG_PID");
  if (wd && *wd && (!wpid || !*wpid || strtol(wpid, NULL, 10) == (long)getpid())) {
    char *end;
    unsigned long long us = strtoull(wd, &end, 10);
    if (*end == 0 && us >= 2000) h->notify.watchdog_usec = us;
  }
}

/* 0 if the datagram went out. */
static int send_msg(health_t *h, const char *msg) {
  if (h->notify.notify_fd < 0) return -1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, h->notify.notify_path, h->notify.notify_len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0; /* abstract namespace */
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + h->notify.notify_len);
  /* Never wait for systemd: READY=1 goes out with h->lock held (the
   * request path would freeze) and STOPPING=1 from the shutdown thread
   * (the deadline would not fire).  A full queue drops the message. */
  ssize_t n;
  do
    n = sendto(h->notify.notify_fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
               (struct sockaddr *)&sa, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

int health__notify_sent(health_t *h, const char *msg) { return send_msg(h, msg); }

void health__notify(health_t *h, const char *msg) { (void)send_msg(h, msg); }

void health__notify_free(health_t *h) {
  if (h->notify.notify_fd >= 0) close(h->notify.notify_fd);
  h->notify.notify_fd = -1;
}

int health__notify_watched(const health_t *h) { return h->notify.notify_fd >= 0; }
