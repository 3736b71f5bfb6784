/*
 * The HTTP endpoint: a libmicrohttpd daemon on its own thread.
 *
 * The request path does no dependency I/O and renders nothing unless the
 * state changed: it hands out a cached MHD_Response (one per endpoint and
 * detail level), re-rendered only when the state version moves or a result
 * goes stale.  MHD reference-counts responses, so a connection still sending
 * an old body keeps it alive after we swap in a new one.
 */
#include "health-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONTENT_TYPE "application/health+json"
#define MEMORY_LIMIT (16 * 1024) /* per connection: request line + headers */

/* *con_cls after the first call: the route, decided once per request and
 * kept without allocating (route_marker + endpoint; never NULL). */
static const char route_marker[4];

static struct MHD_Response *static_response(const char *body, unsigned code) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!r) return NULL;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (code == 405) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  return r;
}

/* Constant-time comparison of the bearer token. */
static int token_ok(const health_t *h, struct MHD_Connection *conn) {
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION);
  if (!auth || !h->detail_token || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
  const char *given = auth + 7;
  size_t gl = strlen(given), tl = strlen(h->detail_token);
  unsigned diff = (unsigned)(gl ^ tl);
  for (size_t i = 0; i < tl; i++) diff |= (unsigned char)(given[i % (gl ? gl : 1)] ^ h->detail_token[i]);
  return diff == 0 && gl == tl;
}

/* Refresh a view if the state moved on; h->view_lock held. */
static int refresh_view(health_t *h, health__view_t *v, unsigned endpoint,
                        int status_only, uint64_t now) {
  health__buf_t b;
  health__buf_init(&b);
  uint64_t valid_until;
  pthread_mutex_lock(&h->lock);
  uint64_t version = atomic_load(&h->version);
  unsigned code = health__render_locked(h, endpoint, status_only, now, &b, &valid_until);
  pthread_mutex_unlock(&h->lock);
  if (b.failed) {
    health__buf_free(&b);
    return -1;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    health__buf_free(&b);
    return -1;
  }
  if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) != MHD_YES ||
      MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
    MHD_destroy_response(r);
    return -1;
  }
  if (v->response) MHD_destroy_response(v->response);
  v->response = r;
  v->version = version;
  v->valid_until_ms = valid_until;
  v->code = code;
  return 0;
}

static enum MHD_Result answer(health_t *h, struct MHD_Connection *conn,
                              unsigned endpoint) {
  int status_only = h->opt.detail == HEALTH_DETAIL_STATUS ||
                    (h->opt.detail == HEALTH_DETAIL_TOKEN && !token_ok(h, conn));
  /* /metrics and /ready?check=NAME: the shared answer cache (serve.c). */
  if (health__serve_wants_extra(conn, endpoint))
    return health__serve_extra(h, conn, endpoint, status_only) ? MHD_YES : MHD_NO;
  int ei = endpoint == HEALTH_READINESS ? 0 : 1;
  health__view_t *v = &h->views[ei][status_only];
  /* The coarse clock (no TSC read) is enough to notice a stale result: it
   * never runs ahead of CLOCK_MONOTONIC and lags it by at most one tick. */
  uint64_t now = health__now_ms_coarse();
  pthread_mutex_lock(&h->view_lock);
  if (!v->response || v->version != atomic_load(&h->version) || now >= v->valid_until_ms) {
    if (refresh_view(h, v, endpoint, status_only, now) < 0 && !v->response) {
      pthread_mutex_unlock(&h->view_lock);
      return MHD_NO; /* out of memory and nothing cached: drop the connection */
    }
  }
  enum MHD_Result ret = MHD_queue_response(conn, v->code, v->response);
  pthread_mutex_unlock(&h->view_lock);
  return ret;
}

/* Any Content-Length other than "0" (every one of them: with conflicting
 * headers libmicrohttpd uses the first, a proxy in front may use another,
 * and the bytes it forwards as a body would reach us as a second request),
 * or any Transfer-Encoding. */
static enum MHD_Result count_body_header(void *cls, enum MHD_ValueKind kind,
                                         const char *key, const char *value) {
  (void)kind;
  char c = (char)(key[0] | 0x20); /* skip the caseless compares for other names */
  if ((c == 't' && strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) ||
      (c == 'c' && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 && strcmp(value, "0") != 0))
    ++*(int *)cls;
  return MHD_YES;
}

static int has_body(struct MHD_Connection *conn) {
  int n = 0;
  MHD_get_connection_values(conn, MHD_HEADER_KIND, count_body_header, &n);
  return n > 0;
}

/*
 * Percent-decoding of the target.  Only unreserved characters are decoded
 * (RFC 3986 6.2.2.2: "%68ealth" is "/health"); every other escape stays as
 * written, so "%00" can never cut "/health%00" down to "/health" in a C
 * string and "%2F" or "%3F" never turn into a path separator or a query.
 * Also used by libmicrohttpd for query arguments, which we ignore.
 */
static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static size_t unescape_unreserved(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls, (void)conn;
  char *w = s;
  for (const char *r = s; *r; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
      char c = (char)(hi * 16 + lo);
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.' || c == '_' || c == '~') {
        *w++ = c;
        r += 2;
        continue;
      }
    }
    *w++ = *r;
  }
  *w = 0;
  return (size_t)(w - s);
}

/*
 * Slow clients.  libmicrohttpd's CONNECTION_TIMEOUT is an inactivity
 * timeout: every byte received restarts it, so a client that sends its
 * headers a byte at a time holds its connection for ever (slowloris), and a
 * few addresses fill max_connections and the probes of the load balancer
 * fail.  So each request head also has an absolute deadline:
 * connection_timeout_s after the connection opened or after the previous
 * answer.  A small reaper thread shuts down the sockets of overdue
 * connections, both ways: the client gets a FIN at once, and libmicrohttpd
 * sees the socket hang up (or reset, if the client sends more) and closes
 * it itself.  Shutting down only the read side is not enough: with epoll,
 * libmicrohttpd 0.9.75 stops reading after any short read, so a client
 * that keeps dribbling bytes hides the EOF behind them indefinitely.  The
 * slots are allocated once, at start (max_connections of them).
 */
#define REAP_INTERVAL_MS 200
#define NO_DEADLINE UINT64_MAX

typedef struct conn_slot {
  int fd;                       /* -1: free */
  _Atomic uint64_t deadline_ms; /* request head due by then; NO_DEADLINE while answering */
  struct conn_slot *next_free;
} conn_slot_t;

struct health__reaper {
  uint64_t timeout_ms;
  pthread_mutex_t lock;         /* slots' fd and the free list; stop */
  pthread_cond_t cond;
  int stop;
  atomic_int sleeping;          /* waiting without a timeout */
  pthread_t thread;
  conn_slot_t *free_list;
  unsigned nslots;
  conn_slot_t slots[];
};

static conn_slot_t *conn_slot(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  struct health__reaper *rp = cls;
  pthread_mutex_lock(&rp->lock);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_slot_t *s = rp->free_list;
    if (s && ci) {
      rp->free_list = s->next_free;
      s->fd = ci->connect_fd;
      atomic_store(&s->deadline_ms, health__now_ms() + rp->timeout_ms);
      *socket_context = s;
      if (atomic_load(&rp->sleeping)) pthread_cond_signal(&rp->cond); /* lock held */
    }
  } else if (*socket_context) {
    /* Called before libmicrohttpd closes the socket: after this the
     * reaper never touches an fd number that may be reused. */
    conn_slot_t *s = *socket_context;
    s->fd = -1;
    s->next_free = rp->free_list;
    rp->free_list = s;
    *socket_context = NULL;
  }
  pthread_mutex_unlock(&rp->lock);
}

/* A new head deadline: wake the reaper if it sleeps without a timeout. */
static void reaper_arm(struct health__reaper *rp) {
  if (!atomic_load(&rp->sleeping)) return;
  pthread_mutex_lock(&rp->lock);
  pthread_cond_signal(&rp->cond);
  pthread_mutex_unlock(&rp->lock);
}

/* The answer is sent: the next request head on this connection is due
 * connection_timeout_s from now. */
static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
  struct health__reaper *rp = cls;
  (void)con_cls, (void)toe;
  conn_slot_t *s = conn_slot(conn);
  if (!s) return;
  atomic_store(&s->deadline_ms, health__now_ms_coarse() + rp->timeout_ms);
  reaper_arm(rp);
}

/* Sleeps until the earliest head deadline (at least REAP_INTERVAL_MS
 * apart, to batch), and indefinitely while no connection waits for a head:
 * an idle service costs no wake-ups. */
static void *reaper_main(void *arg) {
  struct health__reaper *rp = arg;
  pthread_mutex_lock(&rp->lock);
  uint64_t last = 0;
  while (!rp->stop) {
    /* Announce before scanning (both sequentially consistent): a deadline
     * stored after our scan sees sleeping == 1 and signals us. */
    atomic_store(&rp->sleeping, 1);
    uint64_t now = health__now_ms(), next = NO_DEADLINE;
    for (unsigned i = 0; i < rp->nslots; i++) {
      conn_slot_t *s = &rp->slots[i];
      if (s->fd < 0) continue;
      uint64_t d = atomic_load(&s->deadline_ms);
      if (d == NO_DEADLINE) continue;
      if (now >= d) {
        /* Only if the head is still missing: the handler may have just
         * claimed the connection by storing NO_DEADLINE. */
        if (atomic_compare_exchange_strong(&s->deadline_ms, &d, NO_DEADLINE))
          shutdown(s->fd, SHUT_RDWR);
      } else if (d < next) {
        next = d;
      }
    }
    last = now;
    if (next == NO_DEADLINE) {
      pthread_cond_wait(&rp->cond, &rp->lock);
    } else {
      atomic_store(&rp->sleeping, 0);
      if (next < last + REAP_INTERVAL_MS) next = last + REAP_INTERVAL_MS;
      struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
      pthread_cond_timedwait(&rp->cond, &rp->lock, &ts);
    }
  }
  pthread_mutex_unlock(&rp->lock);
  return NULL;
}

static struct health__reaper *reaper_new(health_t *h) {
  unsigned n = h->opt.max_connections;
  struct health__reaper *rp = calloc(1, sizeof *rp + n * sizeof rp->slots[0]);
  if (!rp) return NULL;
  rp->timeout_ms = (uint64_t)h->opt.connection_timeout_s * 1000u;
  rp->nslots = n;
  for (unsigned i = n; i-- > 0;) {
    rp->slots[i].fd = -1;
    rp->slots[i].next_free = rp->free_list;
    rp->free_list = &rp->slots[i];
  }
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) goto fail;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&rp->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0) goto fail;
  if (pthread_mutex_init(&rp->lock, NULL) != 0) goto fail_cond;
  if (health__thread_create(&rp->thread, reaper_main, rp, 0) != 0) goto fail_mutex;
  return rp;
fail_mutex:
  pthread_mutex_destroy(&rp->lock);
fail_cond:
  pthread_cond_destroy(&rp->cond);
fail:
  free(rp);
  return NULL;
}

/* Only after MHD_stop_daemon(): no connection callback may follow. */
static void reaper_free(struct health__reaper *rp) {
  if (!rp) return;
  pthread_mutex_lock(&rp->lock);
  rp->stop = 1;
  pthread_cond_signal(&rp->cond);
  pthread_mutex_unlock(&rp->lock);
  pthread_join(rp->thread, NULL);
  pthread_cond_destroy(&rp->cond);
  pthread_mutex_destroy(&rp->lock);
  free(rp);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  health_t *h = cls;
  (void)version;
  (void)upload_data;
  if (*con_cls == NULL) {
    /* Routed once: the second call finds the endpoint in *con_cls. */
    unsigned endpoint = health__route(h, url); /* configurable paths (serve.c) */
    int get_or_head = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                      strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    *con_cls = (void *)&route_marker[endpoint];
    /* The head arrived in time; the answer is ours to send. */
    conn_slot_t *slot = conn_slot(conn);
    if (slot) atomic_store(&slot->deadline_ms, NO_DEADLINE);
    /* Errors are answered at once (MHD then closes the connection and never
     * reads a body we do not want).  A good request is answered on the next
     * call: queuing it now would make libmicrohttpd 0.9.75 answer
     * "Connection: close" to every request. */
    if (!endpoint) return MHD_queue_response(conn, 404, h->resp_404);
    if (!get_or_head) return MHD_queue_response(conn, 405, h->resp_405);
    if (has_body(conn)) return MHD_queue_response(conn, 413, h->resp_413);
    return MHD_YES;
  }
  if (*upload_data_size) { /* not reached: bodies are refused above */
    *upload_data_size = 0;
    return MHD_YES;
  }
  return answer(h, conn, (unsigned)((const char *)*con_cls - route_marker));
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
  health_t *h = cls;
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
  health__log(h, HEALTH_LOG_DEBUG, "http_error", "message", msg, NULL);
}

int health__http_start(health_t *h, health_error_t *err) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, h->address, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)h->opt.port);
  } else if (inet_pton(AF_INET6, h->address, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)h->opt.port);
    flags |= MHD_USE_IPv6;
    if (strcmp(h->address, "::") == 0) flags |= MHD_USE_DUAL_STACK;
  } else {
    return health__err(err, HEALTH_EINVAL, "address '%s' is not an IPv4 or IPv6 literal", h->address);
  }

  h->resp_404 = static_response("{\"status\":\"fail\",\"output\":\"not found\"}\n", 404);
  h->resp_405 = static_response("{\"status\":\"fail\",\"output\":\"method not allowed: use GET or HEAD\"}\n", 405);
  h->resp_413 = static_response("{\"status\":\"fail\",\"output\":\"request body not allowed\"}\n", 413);
  if (!h->resp_404 || !h->resp_405 || !h->resp_413) {
    health__http_stop(h);
    return health__err(err, HEALTH_ENOMEM, "out of memory creating HTTP responses");
  }

  h->reaper = reaper_new(h);
  if (!h->reaper) {
    health__http_stop(h);
    return health__err(err, HEALTH_ENOMEM, "out of memory starting the HTTP server");
  }

  /* MHD's thread inherits our signal mask: block everything around the
   * start so it never runs the application's signal handlers. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  h->daemon = MHD_start_daemon(
      flags, (uint16_t)h->opt.port, NULL, NULL, handler, h,
      /* first, or MHD complains through its default logger */
      MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->opt.max_connections,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)h->opt.max_connections_per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->opt.connection_timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256,
      MHD_OPTION_UNESCAPE_CALLBACK, unescape_unreserved, NULL,
      MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h->reaper,
      MHD_OPTION_NOTIFY_COMPLETED, request_completed, h->reaper,
      /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: with 1 MHD sets SO_REUSEPORT,
       * and a second process would then share the port silently instead of
       * failing.  MHD's default is SO_REUSEADDR (restart over TIME_WAIT). */
      MHD_OPTION_END);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!h->daemon) {
    health__http_stop(h);
    return health__err(err, HEALTH_EHTTP, "cannot listen on %s port %u: %s", h->address,
                       h->opt.port, saved ? strerror(saved) : "libmicrohttpd failed");
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->bound_port = info ? info->port : h->opt.port;
  char port[16];
  snprintf(port, sizeof port, "%u", h->bound_port);
  health__log(h, HEALTH_LOG_INFO, "http_listening", "address", h->address, "#port", port, NULL);
  return 0;
}

void health__http_quiesce(health_t *h) {
  /* Stop accepting; connections already open are still answered.  The
   * listening socket is then ours to close. */
  if (h->daemon && h->quiesced_fd < 0) h->quiesced_fd = (int)MHD_quiesce_daemon(h->daemon);
}

void health__http_stop(health_t *h) {
  if (h->daemon) {
    health__http_quiesce(h);
    MHD_stop_daemon(h->daemon);
    if (h->quiesced_fd >= 0) close(h->quiesced_fd);
    h->quiesced_fd = -1;
    h->daemon = NULL;
  }
  reaper_free(h->reaper);
  h->reaper = NULL;
  pthread_mutex_lock(&h->view_lock);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      if (h->views[i][j].response) MHD_destroy_response(h->views[i][j].response);
      memset(&h->views[i][j], 0, sizeof h->views[i][j]);
    }
  pthread_mutex_unlock(&h->view_lock);
  if (h->resp_404) MHD_destroy_response(h->resp_404);
  if (h->resp_405) MHD_destroy_response(h->resp_405);
  if (h->resp_413) MHD_destroy_response(h->resp_413);
  h->resp_404 = h->resp_405 = h->resp_413 = NULL;
  h->bound_port = 0;
}
