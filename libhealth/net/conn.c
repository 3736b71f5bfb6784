/*
 * The socket side of the connection layer (net/conn.h) shared by the checkers
 * that talk to a server (Redis, HTTP(S), TCP): a TCP connection made under
 * a deadline, and plaintext reads and writes that end at a monotonic
 * deadline.  The stream over it, TLS or plaintext, is in net/conn_tls.c.
 */
#include "config.h"

#include "net/conn.h"

#include "health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

uint64_t health__now_ms(void); /* core/time.c */

int health__wait_fd(int fd, short events, uint64_t deadline_ms) {
  for (;;) {
    uint64_t now = health__now_ms();
    if (now >= deadline_ms) return 0;
    uint64_t left = deadline_ms - now;
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
    if (n > 0) return 1; /* POLLERR/POLLHUP too: the next call reports it */
    if (n < 0 && errno != EINTR) return -1;
  }
}

void health__conn_init(health__conn_t *c) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

void health__conn_remember(health__conn_t *c, const void *buf, size_t n) {
  size_t room = sizeof c->peek - c->npeek;
  if (n > room) n = room;
  memcpy(c->peek + c->npeek, buf, n);
  c->npeek += n;
}

void health__io_say(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || !errlen) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* A failed send/recv: a reset is "closed" (the peer went away), anything
 * else is an error worth its strerror. */
int health__io_sys_fail(health__conn_t *c, int e, const char *what, char *err, size_t errlen) {
  c->sys_errno = e;
  if (e == ECONNRESET || e == EPIPE) {
    health__io_say(err, errlen, "%s: connection reset by server", what);
    return HEALTH__IO_CLOSED;
  }
  health__io_say(err, errlen, "%s: %s", what, strerror(e));
  return HEALTH__IO_ERROR;
}

int health__plain_write(health__conn_t *c, const char *p, size_t len, uint64_t deadline_ms,
                        char *err, size_t errlen) {
  while (len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = health__wait_fd(c->fd, POLLOUT, deadline_ms);
      if (w == 0) return HEALTH__IO_TIMEOUT;
      if (w < 0) return health__io_sys_fail(c, errno, "poll failed", err, errlen);
      continue;
    }
    return health__io_sys_fail(c, errno, "send failed", err, errlen);
  }
  return 0;
}

ssize_t health__plain_read(health__conn_t *c, char *buf, size_t cap, uint64_t deadline_ms,
                           char *err, size_t errlen) {
  for (;;) {
    ssize_t n = recv(c->fd, buf, cap, 0);
    if (n > 0) {
      health__conn_remember(c, buf, (size_t)n);
      return n;
    }
    if (n == 0) {
      health__io_say(err, errlen, "connection closed by server");
      return HEALTH__IO_CLOSED;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return health__io_sys_fail(c, errno, "recv failed", err, errlen);
    int w = health__wait_fd(c->fd, POLLIN, deadline_ms);
    if (w == 0) return HEALTH__IO_TIMEOUT;
    if (w < 0) return health__io_sys_fail(c, errno, "poll failed", err, errlen);
  }
}

int health__tcp_connect(const struct sockaddr *sa, socklen_t len, uint64_t deadline, int *err) {
  int fd = health__fd_hoist(socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1, soerr = 0;
  socklen_t sl = sizeof soerr;
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  if (connect(fd, sa, len) < 0) {
    if (errno != EINPROGRESS) {
      *err = errno;
      close(fd);
      return -1;
    }
    int w = health__wait_fd(fd, POLLOUT, deadline);
    if (w <= 0) {
      *err = w == 0 ? ETIMEDOUT : errno;
      close(fd);
      return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    if (soerr) {
      *err = soerr;
      close(fd);
      return -1;
    }
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

const char *health__errno_text(int e, char *buf, size_t len) {
  snprintf(buf, len, "%s", strerror(e));
  if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

int health__sockaddr_literal(const char *address, unsigned port, struct sockaddr_storage *ss,
                             socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    return 1;
  }
  if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *len = sizeof *s6;
    return 2;
  }
  return 0;
}
