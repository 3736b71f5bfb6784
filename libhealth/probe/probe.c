/*
 * A small, correct HTTP GET for container HEALTHCHECKs: used by the
 * health-probe command (which compiles the probe files alone, so it needs
 * nothing beyond libc) and exported as health_probe() / health_probe_with()
 * so a service binary can be its own probe.
 *
 * One deadline bounds everything: the name lookup (on a thread the probe
 * walks away from: getaddrinfo() cannot be interrupted), each address in
 * turn with its share of what remains, sending, and the whole answer.
 * A timeout names the phase that ran out: "timeout after 300 ms (dns)".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "probe/probe_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct {
  char *reason;
  size_t len;
  unsigned timeout_ms;
} ctx_t;

static int say(ctx_t *c, const char *fmt, ...) {
  if (c->reason && c->len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, c->len, fmt, ap);
    va_end(ap);
  }
  return 1;
}

static int timed_out(ctx_t *c, const char *phase) {
  return say(c, "timeout after %u ms (%s)", c->timeout_ms, phase);
}

/* strerror() with a lower-case first letter, as the library's messages. */
static const char *err_text(int e, char *buf, size_t len) {
  snprintf(buf, len, "%s", strerror(e));
  if (isupper((unsigned char)buf[0]) && !isupper((unsigned char)buf[1]))
    buf[0] = (char)tolower((unsigned char)buf[0]);
  return buf;
}

/* ---- name lookup under the deadline ---- */

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs, done, rc;
  struct addrinfo *res;
  char host[256], port[6];
} dns_job_t;

static void dns_release(dns_job_t *j) {
  pthread_mutex_lock(&j->lock);
  int last = --j->refs == 0;
  pthread_mutex_unlock(&j->lock);
  if (!last) return;
  if (j->res) freeaddrinfo(j->res);
  pthread_cond_destroy(&j->cond);
  pthread_mutex_destroy(&j->lock);
  free(j);
}

static int lookup(const char *host, const char *port, struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  return getaddrinfo(host, port, &hints, res);
}

static void *dns_main(void *arg) {
  dns_job_t *j = arg;
  struct addrinfo *res = NULL;
  int rc = lookup(j->host, j->port, &res);
  pthread_mutex_lock(&j->lock);
  j->rc = rc;
  j->res = res;
  j->done = 1;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->lock);
  dns_release(j);
  return NULL;
}

/* 0 with *res, 1 on timeout, -1 with *gai set. */
static int resolve(const health__probe_url_t *u, uint64_t deadline, struct addrinfo **res,
                   int *gai) {
  *res = NULL;
  dns_job_t *j = calloc(1, sizeof *j);
  pthread_condattr_t ca;
  int ok = j && pthread_condattr_init(&ca) == 0;
  if (ok) {
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ok = pthread_cond_init(&j->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pthread_mutex_init(&j->lock, NULL) != 0) {
      pthread_cond_destroy(&j->cond);
      ok = 0;
    }
  }
  pthread_t t;
  pthread_attr_t ta;
  sigset_t all, old;
  if (ok) {
    snprintf(j->host, sizeof j->host, "%s", u->host);
    snprintf(j->port, sizeof j->port, "%s", u->port);
    j->refs = 2;
    ok = pthread_attr_init(&ta) == 0;
    if (ok) {
      pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
      /* the lookup thread takes no signal meant for the caller's process */
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      ok = pthread_create(&t, &ta, dns_main, j) == 0;
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      pthread_attr_destroy(&ta);
    }
    if (!ok) {
      pthread_cond_destroy(&j->cond);
      pthread_mutex_destroy(&j->lock);
    }
  }
  if (!ok) { /* no thread to be had: look up here, then judge the deadline */
    free(j);
    *gai = lookup(u->host, u->port, res);
    if (*gai == 0 && now_ms() >= deadline) {
      freeaddrinfo(*res);
      *res = NULL;
      return 1;
    }
    return *gai ? -1 : 0;
  }
  pthread_mutex_lock(&j->lock);
  struct timespec ts = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
  while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT) {}
  int done = j->done;
  *gai = j->rc;
  *res = j->res;
  j->res = NULL;
  pthread_mutex_unlock(&j->lock);
  dns_release(j); /* on a timeout the thread frees the job when it returns */
  if (!done) return 1;
  return *gai ? -1 : 0;
}

/* ---- socket I/O under the deadline ---- */

/* 1 ready, 0 deadline reached, -1 error */
static int wait_fd(int fd, short ev, uint64_t until) {
  for (;;) {
    uint64_t now = now_ms();
    if (now >= until) return 0;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, (int)(until - now > 600000 ? 600000 : until - now));
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

/* Connect to one address before `until`: the fd, or -1 with *e set
 * (ETIMEDOUT when the time ran out). */
static int connect_one(const struct sockaddr *sa, socklen_t sl, uint64_t until, int *e) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *e = errno;
    return -1;
  }
  if (connect(fd, sa, sl) == 0) return fd;
  *e = errno;
  if (*e == EINPROGRESS) {
    int w = wait_fd(fd, POLLOUT, until);
    socklen_t el = sizeof *e;
    *e = ETIMEDOUT;
    if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, e, &el) == 0 && *e == 0) return fd;
    if (w < 0) *e = errno;
  }
  close(fd);
  return -1;
}

static int connect_all(ctx_t *c, const health__probe_url_t *u, uint64_t deadline, int *fd) {
  struct addrinfo *res = NULL;
  struct sockaddr_in s4;
  struct sockaddr_in6 s6;
  struct addrinfo lit;
  memset(&lit, 0, sizeof lit);
  if (u->numeric == 4) { /* a literal needs no lookup and no thread */
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons((uint16_t)u->port_num);
    memcpy(&s4.sin_addr, u->addr, 4);
    lit.ai_addr = (struct sockaddr *)&s4;
    lit.ai_addrlen = sizeof s4;
  } else if (u->numeric == 6) {
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons((uint16_t)u->port_num);
    memcpy(&s6.sin6_addr, u->addr, 16);
    lit.ai_addr = (struct sockaddr *)&s6;
    lit.ai_addrlen = sizeof s6;
  } else {
    int gai = 0, r = resolve(u, deadline, &res, &gai);
    if (r > 0) return timed_out(c, "dns");
    if (r < 0)
      return say(c, "cannot resolve the host name: %s",
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
  }
  struct addrinfo *list = res ? res : &lit;
  int n = 0, e = ECONNREFUSED;
  for (struct addrinfo *ai = list; ai; ai = ai->ai_next) n++;
  *fd = -1;
  /* Each address gets an equal share of what is left, the last one all
   * of it: a black-holed first address does not eat the whole budget. */
  for (struct addrinfo *ai = list; ai && *fd < 0; ai = ai->ai_next, n--) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    *fd = connect_one(ai->ai_addr, ai->ai_addrlen, now + (deadline - now) / (uint64_t)n, &e);
  }
  if (res) freeaddrinfo(res);
  if (*fd >= 0) return 0;
  if (now_ms() >= deadline) return timed_out(c, "connect");
  char eb[128];
  return say(c, "connect failed: %s", err_text(e, eb, sizeof eb));
}

static int exchange(ctx_t *c, int fd, const char *req, size_t rl, uint64_t deadline,
                    const health__probe_expect_t *ex, const char *expect_text) {
  char eb[128];
  for (size_t off = 0; off < rl;) {
    ssize_t n = send(fd, req + off, rl - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      int w = wait_fd(fd, POLLOUT, deadline);
      if (w > 0) continue;
      if (w == 0) return timed_out(c, "send");
    }
    return say(c, "send failed: %s", err_text(errno, eb, sizeof eb));
  }
  health__probe_answer_t a;
  health__probe_answer_init(&a);
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    int rc = HEALTH__ANS_MORE;
    if (n > 0) {
      size_t off = 0, used;
      do {
        rc = health__probe_answer_feed(&a, buf + off, (size_t)n - off, &used);
        off += used;
        if (rc == HEALTH__ANS_HEAD && !health__probe_expect_has(ex, a.status))
          return say(c, "HTTP %d%s%s (expected %s)", a.status, a.phrase[0] ? " " : "", a.phrase,
                     expect_text);
      } while (rc == HEALTH__ANS_HEAD);
    } else if (n == 0) {
      rc = health__probe_answer_eof(&a);
    } else if (errno == EAGAIN) {
      int w = wait_fd(fd, POLLIN, deadline);
      if (w == 0) return timed_out(c, a.head_reported ? "body" : "answer");
      if (w < 0) return say(c, "receive failed: %s", err_text(errno, eb, sizeof eb));
      continue;
    } else if (errno == EINTR) {
      continue;
    } else {
      int e = errno;
      if (a.head_reported || a.head_bytes) /* e.g. reset after a partial answer */
        return say(c, "receive failed: %s (after %zu bytes of the answer)",
                   err_text(e, eb, sizeof eb), a.head_bytes + (size_t)a.body_wire);
      return say(c, "receive failed: %s", err_text(e, eb, sizeof eb));
    }
    if (rc == HEALTH__ANS_ERROR) return say(c, "%s", a.error);
    if (rc == HEALTH__ANS_DONE) break;
  }
  say(c, "HTTP %d%s%s", a.status, a.phrase[0] ? " " : "", a.phrase);
  return 0;
}

/* ---- public API ---- */

HEALTH_EXPORT void health_probe_options_init(health_probe_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->timeout_ms = HEALTH__PROBE_DEFAULT_TIMEOUT;
}

HEALTH_EXPORT int health_probe_with(const char *url, const health_probe_options_t *o, char *reason,
                                    size_t reason_len) {
  uint64_t start = now_ms();
  health_probe_options_t defaults;
  if (!o) {
    health_probe_options_init(&defaults);
    o = &defaults;
  }
  ctx_t c = {reason, reason_len, o->timeout_ms ? o->timeout_ms : HEALTH__PROBE_DEFAULT_TIMEOUT};
  if (reason && reason_len) reason[0] = 0;
  char why[192];
  health__probe_url_t *u = malloc(sizeof *u);
  char *req = malloc(HEALTH__PROBE_REQUEST_MAX);
  int rc = 1, fd = -1, rl;
  health__probe_expect_t ex;
  const char *expect_text = o->expect ? o->expect : "200-299";
  if (!u || !req) {
    say(&c, "out of memory");
    goto out;
  }
  if (o->init_stamp != HEALTH__INIT_STAMP) {
    say(&c, "health_probe_options_t was not initialised: call health_probe_options_init() "
            "first");
    goto out;
  }
  for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
    if (o->reserved[i]) {
      say(&c, "health_probe_options_t: reserved fields must stay zero (fill the struct with "
              "health_probe_options_init)");
      goto out;
    }
  if (health__probe_parse_url(url, u, why, sizeof why) != 0) {
    say(&c, "%s", why);
    goto out;
  }
  if (health__probe_parse_expect(expect_text, &ex, why, sizeof why) != 0) {
    say(&c, "%s", why);
    goto out;
  }
  for (const char *const *h = o->headers; h && *h; h++)
    if (health__probe_check_header(*h, why, sizeof why) != 0) {
      say(&c, "%s", why);
      goto out;
    }
  rl = health__probe_request(u, o->headers, req, HEALTH__PROBE_REQUEST_MAX);
  if (rl < 0) {
    say(&c, "request too long (more than %d bytes)", HEALTH__PROBE_REQUEST_MAX);
    goto out;
  }
  uint64_t deadline = start + c.timeout_ms;
  if (connect_all(&c, u, deadline, &fd) == 0)
    rc = exchange(&c, fd, req, (size_t)rl, deadline, &ex, expect_text);
out:
  if (fd >= 0) close(fd);
  free(u);
  free(req);
  return rc;
}

HEALTH_EXPORT int health_probe(const char *url, unsigned timeout_ms, char *reason,
                               size_t reason_len) {
  health_probe_options_t o;
  health_probe_options_init(&o);
  o.timeout_ms = timeout_ms;
  return health_probe_with(url, &o, reason, reason_len);
}
