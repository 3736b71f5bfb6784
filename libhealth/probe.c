/*
 * A tiny HTTP GET for container HEALTHCHECKs: used by the health-probe
 * command (which links this file alone, so it needs nothing beyond libc)
 * and exported as health_probe() so a service can be its own probe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "health.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(char *reason, size_t len, const char *fmt, ...) {
  if (reason && len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
  }
  return 1;
}

/* Split http://host[:port][/path] (host may be [v6]). */
static int parse_url(const char *url, char *host, size_t hl, char *port, size_t pl,
                     const char **path) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *p = url + 7, *hend;
  if (*p == '[') {
    hend = strchr(p, ']');
    if (!hend) return -1;
    if ((size_t)(hend - p - 1) >= hl) return -1;
    memcpy(host, p + 1, (size_t)(hend - p - 1));
    host[hend - p - 1] = 0;
    p = hend + 1;
  } else {
    size_t n = strcspn(p, ":/?#");
    if (n == 0 || n >= hl) return -1;
    memcpy(host, p, n);
    host[n] = 0;
    p += n;
  }
  snprintf(port, pl, "80");
  if (*p == ':') {
    p++;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 5 || atoi(p) < 1 || atoi(p) > 65535) return -1;
    snprintf(port, pl, "%.*s", (int)n, p);
    p += n;
  }
  if (*p && *p != '/' && *p != '?') return -1;
  *path = *p ? p : "/";
  for (const char *q = *path; *q; q++)
    if ((unsigned char)*q <= 0x20 || *q == 0x7F) return -1;
  return 0;
}

static int wait_fd(int fd, short ev, long long deadline) {
  for (;;) {
    long long left = deadline - mono_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

HEALTH_EXPORT int health_probe(const char *url, unsigned timeout_ms, char *reason,
                               size_t reason_len) {
  char host[256], port[8];
  const char *path;
  if (!url || parse_url(url, host, sizeof host, port, sizeof port, &path) < 0)
    return fail(reason, reason_len, "malformed URL (expected http://host[:port]/path)");
  if (strlen(path) > 1024) return fail(reason, reason_len, "path too long");
  long long deadline = mono_ms() + (timeout_ms ? timeout_ms : 2000);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) return fail(reason, reason_len, "cannot resolve host: %s", gai_strerror(gai));
  int fd = -1;
  const char *why = "connect failed";
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      int soerr = errno;
      if (soerr == EINPROGRESS) {
        int w = wait_fd(fd, POLLOUT, deadline);
        socklen_t sl = sizeof soerr;
        soerr = 0;
        if (w <= 0) soerr = ETIMEDOUT;
        else getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
      }
      if (soerr) {
        why = soerr == ETIMEDOUT ? "timeout connecting" : strerror(soerr);
        close(fd);
        fd = -1;
      }
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return fail(reason, reason_len, "connect failed: %s", why);

  char req[1400];
  int rl = snprintf(req, sizeof req,
                    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: health-probe\r\n"
                    "Connection: close\r\n\r\n", path, host);
  size_t off = 0;
  while (off < (size_t)rl) {
    ssize_t n = send(fd, req + off, (size_t)rl - off, MSG_NOSIGNAL);
    if (n > 0) { off += (size_t)n; continue; }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLOUT, deadline) > 0) continue;
    close(fd);
    return fail(reason, reason_len, "send failed: %s", n < 0 ? strerror(errno) : "closed");
  }
  /* Only the status line matters. */
  char buf[64];
  size_t len = 0;
  while (len < 12) {
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n > 0) { len += (size_t)n; continue; }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      int e = errno;
      close(fd);
      return fail(reason, reason_len, "receive failed: %s", strerror(e));
    }
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0) {
      close(fd);
      return fail(reason, reason_len, "timeout after %u ms waiting for the answer",
                  timeout_ms ? timeout_ms : 2000);
    }
  }
  close(fd);
  buf[len] = 0;
  if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
    return fail(reason, reason_len, len ? "not an HTTP answer" : "connection closed without an answer");
  int code = atoi(buf + 9);
  if (code < 200 || code > 299) return fail(reason, reason_len, "HTTP %d", code);
  if (reason && reason_len) snprintf(reason, reason_len, "HTTP %d", code);
  return 0;
}
