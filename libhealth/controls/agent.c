/*
 * HAProxy agent-check responder (off unless configured).
 *
 * HAProxy connects to `agent-port` every `agent-inter`, reads one line and
 * closes.  We answer at once, from the same state as the endpoints:
 *   "drain #draining"          while the shutdown drains: weight 0, no new
 *                              sessions, the existing ones go on;
 *   "down #<reason>"           readiness or liveness fails (the reason is
 *                              one sanitised line: a manual reason, a stale
 *                              heartbeat, a closed gate, a failing check);
 *   "up ready[ N%]"            otherwise.  "ready" clears a DRAIN or MAINT
 *                              state, so a new process in the slot of one
 *                              that drained is put back in service (an
 *                              operator who wants a server kept out uses
 *                              `disable agent` with it).
 * The thread never waits on a client: the reply is one non-blocking send
 * into an empty socket buffer, then the connection is closed.
 */
#include "health_int.h"
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 64

HEALTH_EXPORT void health_agent_options_init(health_agent_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
}

HEALTH_EXPORT int health_agent_set(health_t *h, const health_agent_options_t *o,
                                   health_error_t *err) {
  if (!h || !o)
    return health__err(err, HEALTH_EINVAL, "health_agent_set: handle and options are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  int rc = HEALTH__RESERVED_CHECK(o, "health_agent_options", err);
  if (rc) return rc;
  if (o->port > 65535)
    return health__err(err, HEALTH_EINVAL, "agent port must be 0 to 65535 (got %u)", o->port);
  if (o->weight > 256)
    return health__err(err, HEALTH_EINVAL,
                       "agent weight must be 0 (none) or 1 to 256 percent (got %u)", o->weight);
  struct in_addr a4;
  struct in6_addr a6;
  if (o->address && inet_pton(AF_INET, o->address, &a4) != 1 &&
      inet_pton(AF_INET6, o->address, &a6) != 1)
    return health__err(err, HEALTH_EINVAL, "agent address '%.60s' is not an IPv4 or IPv6 literal",
                       o->address);
  char *addr = NULL;
  if (o->address && !(addr = strdup(o->address)))
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  pthread_mutex_lock(&h->lock);
  if (h->state != HEALTH__ST_NEW) {
    pthread_mutex_unlock(&h->lock);
    free(addr);
    return health__err(err, HEALTH_ESTATE, "the agent must be set before health_start()");
  }
  health__controls_t *c = h->ctl;
  free(c->agent_address);
  c->agent_address = addr;
  c->agent_port = o->port;
  atomic_store(&c->agent_weight, o->weight);
  c->agent_enabled = 1;
  pthread_mutex_unlock(&h->lock);
  return 0;
}

int health__agent_settings(const health_t *h, health_agent_options_t *o) {
  health_agent_options_init(o);
  pthread_mutex_t *lock = (pthread_mutex_t *)&h->lock; /* only read under it */
  pthread_mutex_lock(lock);
  const health__controls_t *c = h->ctl;
  o->address = c->agent_address;
  o->port = c->agent_port;
  o->weight = atomic_load(&c->agent_weight);
  int on = c->agent_enabled;
  pthread_mutex_unlock(lock);
  return on;
}

HEALTH_EXPORT int health_agent_set_weight(health_t *h, unsigned percent, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "handle is NULL");
  if (percent > 256)
    return health__err(err, HEALTH_EINVAL, "weight %u%% out of range (0-256)", percent);
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  atomic_store(&h->ctl->agent_weight, percent);
  return 0;
}

HEALTH_EXPORT unsigned health_agent_port(const health_t *h) {
  return h && h->ctl ? h->ctl->agent_bound_port : 0;
}

/* The reply line for the current state. */
static size_t reply(health_t *h, char *out, size_t len) {
  uint64_t now = health__now_ms();
  char why[160];
  int n;
  pthread_mutex_lock(&h->lock);
  int draining = health__draining(h);
  int ready = health__aggregate_locked(h, HEALTH_READINESS, now, NULL) != HEALTH_FAIL;
  int alive = health__aggregate_locked(h, HEALTH_LIVENESS, now, NULL) != HEALTH_FAIL;
  if (!draining && !(ready && alive)) health__controls_reason_locked(h, now, why, sizeof why);
  pthread_mutex_unlock(&h->lock);
  if (draining) {
    n = snprintf(out, len, "drain #draining\n");
  } else if (!(ready && alive)) {
    /* One line of printable ASCII: HAProxy logs it as the reason. */
    for (char *p = why; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E) *p = '?';
    n = snprintf(out, len, "down #%s%s\n", alive ? "" : "not alive: ", why);
  } else {
    unsigned w = atomic_load(&h->ctl->agent_weight);
    if (w) n = snprintf(out, len, "up ready %u%%\n", w); /* integers: locale-proof */
    else n = snprintf(out, len, "up ready\n");
  }
  if (n < 0) return 0;
  if ((size_t)n >= len) {
    out[len - 2] = '\n';
    out[len - 1] = 0;
    n = (int)len - 1;
  }
  return (size_t)n;
}

static void answer(health_t *h, int fd) {
  char line[256];
  size_t n = reply(h, line, sizeof line);
  (void)!send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  /* Read what the peer may have sent (agent-send): closing with unread
   * data would reset the connection, possibly before our line is read. */
  char sink[512];
  for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {}
  close(fd);
}

static void *agent_main(void *arg) {
  health_t *h = arg;
  health__controls_t *c = h->ctl;
  int backoff = 0;
  for (;;) {
    struct pollfd p[2] = {{c->agent_fd, POLLIN, 0}, {c->agent_wake[0], POLLIN, 0}};
    int n = poll(p, 2, backoff ? 10 : -1);
    if (n < 0 && errno != EINTR) break;
    if (p[1].revents) break;
    backoff = 0;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
      int fd = health__fd_hoist(accept4(c->agent_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (fd >= 0) {
        answer(h, fd);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      /* Out of descriptors or memory: the pending connection stays in the
       * backlog; wait a little instead of spinning on it. */
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) backoff = 1;
      break;
    }
  }
  return NULL;
}

int health__agent_start(health_t *h, health_error_t *err) {
  health__controls_t *c = h->ctl;
  if (!c->agent_enabled) return 0;
  const char *address = c->agent_address ? c->agent_address : h->address;
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!health__sockaddr_literal(address, c->agent_port, &ss, &sl))
    return health__err(err, HEALTH_EINVAL, "agent address '%s' is not an IPv4 or IPv6 literal",
                       address);
  int fd = health__fd_hoist(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd < 0) return health__err(err, HEALTH_ESYS, "agent socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6 && strcmp(address, "::") == 0) {
    int zero = 0; /* dual stack, like the health port */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return health__err(err, HEALTH_EHTTP, "agent: cannot listen on %s port %u: %s", address,
                       c->agent_port, strerror(e));
  }
  sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  c->agent_bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
  if (health__pipe2(c->agent_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    c->agent_wake[0] = c->agent_wake[1] = -1;
    c->agent_bound_port = 0;
    return health__err(err, HEALTH_ESYS, "agent pipe: %s", strerror(errno));
  }
  c->agent_fd = fd;
  if (health__thread_create(&c->agent_thread, agent_main, h, 0) != 0) {
    int e = errno;
    health__agent_stop(h);
    return health__err(err, HEALTH_ESYS, "could not start the agent thread: %s", strerror(e));
  }
  c->agent_started = 1;
  char port[16];
  snprintf(port, sizeof port, "%u", c->agent_bound_port);
  health__log(h, HEALTH_LOG_INFO, "agent_listening", "address", address, "#port", port, NULL);
  return 0;
}

void health__agent_stop(health_t *h) {
  health__controls_t *c = h->ctl;
  if (c->agent_started) {
    (void)!write(c->agent_wake[1], "x", 1);
    pthread_join(c->agent_thread, NULL);
    c->agent_started = 0;
  }
  if (c->agent_fd >= 0) close(c->agent_fd);
  for (int i = 0; i < 2; i++)
    if (c->agent_wake[i] >= 0) close(c->agent_wake[i]);
  c->agent_fd = c->agent_wake[0] = c->agent_wake[1] = -1;
  c->agent_bound_port = 0;
}
