/*
 * The HTTP endpoint: a libmicrohttpd daemon on its own thread.
 *
 * The request path does no dependency I/O and renders nothing unless the
 * state changed: it hands out a cached MHD_Response (one per endpoint and
 * detail level), re-rendered only when the state version moves or a result
 * goes stale.  MHD reference-counts responses, so a connection still sending
 * an old body keeps it alive after we swap in a new one.
 */
#include "health_int.h"
#include "net/conn.h"
#include "net/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MEMORY_LIMIT (16 * 1024) /* per connection: request line + headers */

/* *con_cls after the first call: the route, decided once per request and
 * kept without allocating (see ROUTED below). */
static const char route_marker[64];
/* *con_cls: &route_marker[endpoint | 4 * body | flags] (endpoint 0-3),
 * body 0 none, 1 a chunked body may follow, 2 a chunked body had bytes;
 * R_EXTRA: answered by http/answer_cache.c (/metrics, ?check=); R_CLOSE: the request
 * said "Connection: close".  Never NULL once routed. */
#define R_EXTRA 16u
#define R_CLOSE 32u
#define ROUTED(endpoint, body, flags) ((void *)&route_marker[(endpoint) + 4 * (body) + (flags)])

/* The request's bearer token against the detail token (http/answer_cache.c). */
static int token_ok(const health_t *h, struct MHD_Connection *conn) {
  return health__bearer_ok(
      h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
}

static enum MHD_Result answer(health_t *h, struct MHD_Connection *conn, unsigned endpoint,
                              int extra) {
  int status_only = h->opt.detail == HEALTH_DETAIL_STATUS ||
                    (h->opt.detail == HEALTH_DETAIL_TOKEN && !token_ok(h, conn));
  /* /metrics and /ready?check=NAME: the shared answer cache (http/answer_cache.c). */
  if (extra) return health__serve_extra(h, conn, endpoint, status_only) ? MHD_YES : MHD_NO;
  /* The views need no lock: only MHD's one thread answers
   * (MHD_USE_INTERNAL_POLLING_THREAD, no thread pool, no thread per
   * connection), and health__http_stop() frees them after
   * MHD_stop_daemon() has joined it.  A miss takes the answer cache's
   * lock (http/answer_cache.c), where health_answer_render() finds the same body. */
  int ei = endpoint == HEALTH_READINESS ? 0 : 1;
  health__view_t *v = &h->http.views[ei][status_only];
  /* The coarse clock (no TSC read) is enough to notice a stale result: it
   * never runs ahead of CLOCK_MONOTONIC and lags it by at most one tick. */
  uint64_t now = health__now_ms_coarse();
  if (!v->response || v->version != health__version(h) || now >= v->valid_until_ms) {
    if (health__serve_view(h, endpoint, status_only, v) < 0 && !v->response)
      return MHD_NO; /* out of memory and nothing cached: drop the connection */
  }
  return MHD_queue_response(conn, v->code, v->response);
}

/* One pass over the headers and the query arguments for everything the
 * first call decides.
 *
 * The body a request announces: 0 none; 2 "Transfer-Encoding: chunked"
 * alone (its body may be empty: "0\r\n\r\n"); 1 anything else that may carry
 * a body, refused at once: any Content-Length other than "0" (every one of
 * them: with conflicting headers libmicrohttpd uses the first, a proxy in
 * front may use another, and the bytes it forwards as a body would reach us
 * as a second request), another or a second Transfer-Encoding, or one next
 * to a Content-Length.
 *
 * And the checks libmicrohttpd 0.9.75 does not make (RFC 9112 3.2): 400
 * for an HTTP/1.1 request without Host, for two Host lines, and for a
 * header name with white space before the colon ("Host : x", which MHD
 * keeps as the name "Host ").
 *
 * Also: whether the query asks for one check (the first argument named
 * "check", in any case, has a value: what libmicrohttpd's lookup that
 * http/answer_cache.c makes will find), and whether a Connection header carries the
 * token "close" (libmicrohttpd then closes after the answer). */
typedef struct {
  int cl, cl_nonzero, te, te_chunked, hosts, bad_name;
  int check_seen, check, close;
} head_scan_t;

/* key (klen bytes) is the lower-case ASCII name `lower` of the same
 * length but for case.  Names are tokens (no CR, NUL or other control
 * byte), so setting bit 0x20 folds exactly the letters.  Inline and only
 * for a name of the right length: glibc's strcasecmp() costs about 50
 * instructions of setup, for every header of every request. */
static inline int name_is(const char *key, size_t klen, const char *lower, size_t n) {
  if (klen != n) return 0;
  for (size_t i = 0; i < n; i++)
    if ((key[i] | 0x20) != lower[i]) return 0;
  return 1;
}
#define NAME_IS(key, klen, lit) name_is(key, klen, lit, sizeof lit - 1)

/* The token "close" in a Connection value (a comma-separated list). */
static int has_close_token(const char *v, size_t vlen) {
  if (NAME_IS(v, vlen, "close")) return 1; /* the usual value */
  for (const char *p = v; (p = strpbrk(p, "cC"));) {
    const char *q = p;
    while (q > v && (q[-1] == ' ' || q[-1] == '\t')) q--;
    int starts = q == v || q[-1] == ',';
    if (starts && strncasecmp(p, "close", 5) == 0) {
      const char *e = p + 5;
      while (*e == ' ' || *e == '\t') e++;
      if (*e == ',' || *e == 0) return 1;
    }
    p++;
  }
  return 0;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen,
                                   const char *value, size_t vlen) {
  head_scan_t *b = cls;
  char c = (char)(key[0] | 0x20); /* skip the caseless compares for other names */
  if (kind != MHD_HEADER_KIND) {  /* a query argument */
    if (c == 'c' && !b->check_seen && NAME_IS(key, klen, "check")) {
      b->check_seen = 1;
      b->check = value != NULL;
    }
    return MHD_YES;
  }
  if (c == 'h' && NAME_IS(key, klen, "host")) {
    b->hosts++;
  } else if (c == 'c' && value && NAME_IS(key, klen, "connection")) {
    b->close |= has_close_token(value, vlen);
  } else if (c == 't' && NAME_IS(key, klen, "transfer-encoding")) {
    b->te++;
    b->te_chunked += strcasecmp(value, "chunked") == 0;
  } else if (c == 'c' && NAME_IS(key, klen, "content-length")) {
    b->cl++;
    b->cl_nonzero += strcmp(value, "0") != 0;
  } else if (strpbrk(key, " \t")) {
    b->bad_name = 1;
  }
  return MHD_YES;
}

/* -1 bad head (400), else the body kind above; *check, *closing as above. */
static int scan_head(struct MHD_Connection *conn, const char *version, int *check, int *closing) {
  head_scan_t b = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  MHD_get_connection_values_n(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, scan_header, &b);
  *check = b.check;
  *closing = b.close;
  if (b.bad_name || b.hosts > 1 || (b.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
    return -1;
  if (b.te == 1 && b.te_chunked == 1 && b.cl == 0) return 2;
  return b.cl_nonzero || b.te ? 1 : 0;
}

/*
 * Percent-decoding of the target.  Only unreserved characters are decoded
 * (RFC 3986 6.2.2.2: "%68ealth" is "/health"); every other escape stays as
 * written, so "%00" can never cut "/health%00" down to "/health" in a C
 * string and "%2F" or "%3F" never turn into a path separator or a query.
 * Also used by libmicrohttpd for query arguments, which we ignore.
 */
static size_t unescape_unreserved(void *cls, struct MHD_Connection *conn, char *s) {
  (void)cls, (void)conn;
  char *w = strchr(s, '%'); /* (most targets have none: nothing to copy) */
  if (!w) return strlen(s);
  for (const char *r = w; *r; r++) {
    int hi, lo;
    if (r[0] == '%' && (hi = health__hexval(r[1])) >= 0 && (lo = health__hexval(r[2])) >= 0) {
      char c = (char)(hi * 16 + lo);
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.' || c == '_' || c == '~') {
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

/* The guard's callbacks (http/guard.c): every connection, its head deadline. */
static void *socket_ctx(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  health__guard_t *g = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) health__guard_opened(g, ci->connect_fd, socket_context);
  } else {
    health__guard_closed(g, socket_context);
  }
}

/* The answer is sent: the next request head is due from now. */
static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
  if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) return;
  int closing = *con_cls && ((unsigned)((const char *)*con_cls - route_marker) & R_CLOSE);
  health__guard_answered(cls, socket_ctx(conn), closing);
}

/* 0 GET/HEAD, 1 OPTIONS, 2 another method of RFC 9110/5789, 3 unknown. */
static int method_class(const char *m) {
  static const char *const other[] = {"POST", "PUT", "DELETE", "CONNECT", "TRACE", "PATCH"};
  if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return 0;
  if (strcmp(m, "OPTIONS") == 0) return 1;
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
    if (strcmp(m, other[i]) == 0) return 2;
  return 3;
}

/* The route of a target (health__route(), http/answer_cache.c: the configurable
 * paths).  An absolute-form target (RFC 9112 3.2.2,
 * "http://host:port/ready") routes by its path. */
static unsigned route(const health_t *h, const char *url) {
  if (url[0] != '/' &&
      (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)) {
    const char *p = strchr(strchr(url, ':') + 3, '/');
    url = p ? p : "/";
  }
  return health__route(h, url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  health_t *h = cls;
  (void)upload_data;
  if (*con_cls == NULL) {
    /* Routed once: the next calls find the endpoint in *con_cls. */
    unsigned endpoint = route(h, url);
    int mc = method_class(method);
    int check, closing;
    int chunked = scan_head(conn, version, &check, &closing);
    if (chunked < 0) endpoint = 0, mc = -1;
    else if (!endpoint || mc != 0) chunked = 0;
    unsigned flags =
        (closing ? R_CLOSE : 0) | (endpoint == HEALTH__ROUTE_METRICS || check ? R_EXTRA : 0);
    *con_cls = ROUTED(endpoint, chunked == 2, flags);
    /* The head arrived in time; the answer is ours to send (a chunked body
     * first has to arrive under the same head deadline). */
    if (chunked != 2 && !health__guard_claim(h->http.guard, socket_ctx(conn))) return MHD_NO;
    /* Errors are answered at once (MHD then closes the connection and never
     * reads a body we do not want).  A good request is answered on the next
     * call: queuing it now would make libmicrohttpd 0.9.75 answer
     * "Connection: close" to every request. */
    if (mc < 0) return MHD_queue_response(conn, 400, h->http.resp_400);
    if (mc == 3) return MHD_queue_response(conn, 501, h->http.resp_501);
    if (mc == 1 && (endpoint || strcmp(url, "*") == 0))
      return MHD_queue_response(conn, 204, h->http.resp_options);
    if (!endpoint) return MHD_queue_response(conn, 404, h->http.resp_404);
    if (mc != 0) return MHD_queue_response(conn, 405, h->http.resp_405);
    if (chunked == 1) return MHD_queue_response(conn, 413, h->http.resp_413);
    return MHD_YES;
  }
  unsigned idx = (unsigned)((const char *)*con_cls - route_marker);
  unsigned endpoint = idx % 4, body = (idx / 4) % 4, flags = idx & (R_EXTRA | R_CLOSE);
  if (*upload_data_size) { /* a chunked body: read and dropped, refused at its end */
    *upload_data_size = 0;
    *con_cls = ROUTED(endpoint, 2, flags);
    return MHD_YES;
  }
  if (body) { /* the chunked request is complete */
    if (!health__guard_claim(h->http.guard, socket_ctx(conn))) return MHD_NO;
    if (body == 2) return MHD_queue_response(conn, 413, h->http.resp_413);
  }
  return answer(h, conn, endpoint, (flags & R_EXTRA) != 0);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
  health_t *h = cls;
  char msg[256];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
  /* accept() failed for lack of descriptors (libmicrohttpd 0.9.75 words it
   * "Hit process or system resource limit"): it stops accepting until a
   * connection closes; the guard frees its reserve and evicts one. */
  if (h->http.guard && strstr(msg, "resource limit")) health__guard_emfile(h->http.guard);
  health__log(h, HEALTH_LOG_DEBUG, "http_error", "message", msg, NULL);
}

HEALTH_EXPORT unsigned health_port(const health_t *h) { return h ? h->http.bound_port : 0; }

int health__http_start(health_t *h, health_error_t *err) {
  h->http.quiesced_fd = -1;
  struct sockaddr_storage ss;
  socklen_t sl;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
  int family = health__sockaddr_literal(h->address, h->opt.port, &ss, &sl);
  if (!family)
    return health__err(err, HEALTH_EINVAL, "address '%s' is not an IPv4 or IPv6 literal",
                       h->address);
  if (family == 2) {
    flags |= MHD_USE_IPv6;
    if (strcmp(h->address, "::") == 0) flags |= MHD_USE_DUAL_STACK;
  }

  if (health__http_fixed_new(h) != 0) { /* http/fixed_answers.c */
    health__http_stop(h);
    return health__err(err, HEALTH_ENOMEM, "out of memory creating HTTP responses");
  }

  h->http.guard = health__guard_new(h);
  if (!h->http.guard) {
    health__http_stop(h);
    return health__err(err, HEALTH_ENOMEM, "out of memory starting the HTTP server");
  }

  /* MHD's thread inherits our signal mask: block everything around the
   * start so it never runs the application's signal handlers. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int plugged[3]; /* its socket, epoll and eventfd above stdio (core/fdsafe.c) */
  health__stdio_plug(plugged);
  h->http.daemon = MHD_start_daemon(
      flags, (uint16_t)h->opt.port, NULL, NULL, handler, h,
      /* first, or MHD complains through its default logger */
      MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      /* The guard's table: our cap plus room for connections cut and not
       * yet closed, so libmicrohttpd never refuses; the guard evicts. */
      MHD_OPTION_CONNECTION_LIMIT, health__guard_slots(h->http.guard),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)h->opt.max_connections_per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->opt.connection_timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
      /* A flood must not overflow the accept queue: a dropped SYN costs the
       * load balancer's probe a 1 s retransmission.  Capped by somaxconn. */
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096, MHD_OPTION_UNESCAPE_CALLBACK,
      unescape_unreserved, NULL, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h->http.guard,
      MHD_OPTION_NOTIFY_COMPLETED, request_completed, h->http.guard,
      /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: with 1 MHD sets SO_REUSEPORT,
       * and a second process would then share the port silently instead of
       * failing.  MHD's default is SO_REUSEADDR (restart over TIME_WAIT). */
      MHD_OPTION_END);
  int saved = errno;
  health__stdio_unplug(plugged);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!h->http.daemon) {
    health__http_stop(h);
    return health__err(err, HEALTH_EHTTP, "cannot listen on %s port %u: %s", h->address,
                       h->opt.port, saved ? strerror(saved) : "libmicrohttpd failed");
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->http.daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->http.bound_port = info ? info->port : h->opt.port;
  char port[16];
  snprintf(port, sizeof port, "%u", h->http.bound_port);
  health__log(h, HEALTH_LOG_INFO, "http_listening", "address", h->address, "#port", port, NULL);
  return 0;
}

int health__http_listen_fd(const health_t *h) {
  if (!h->http.daemon) return -1;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->http.daemon, MHD_DAEMON_INFO_LISTEN_FD);
  return info ? (int)info->listen_fd : -1;
}

void health__http_quiesce(health_t *h) {
  /* Stop accepting; connections already open are still answered.  The
   * listening socket is then ours to close. */
  if (h->http.daemon && h->http.quiesced_fd < 0)
    h->http.quiesced_fd = (int)MHD_quiesce_daemon(h->http.daemon);
}

void health__http_stop(health_t *h) {
  if (h->http.daemon) {
    health__http_quiesce(h);
    MHD_stop_daemon(h->http.daemon);
    if (h->http.quiesced_fd >= 0) close(h->http.quiesced_fd);
    h->http.quiesced_fd = -1;
    h->http.daemon = NULL;
  }
  health__guard_free(h->http.guard);
  h->http.guard = NULL;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      if (h->http.views[i][j].response) MHD_destroy_response(h->http.views[i][j].response);
      memset(&h->http.views[i][j], 0, sizeof h->http.views[i][j]);
    }
  health__http_fixed_free(h);
  h->http.bound_port = 0;
}
