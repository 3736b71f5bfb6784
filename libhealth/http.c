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
#include <unistd.h>

#define CONTENT_TYPE "application/health+json"
#define MEMORY_LIMIT (16 * 1024) /* per connection: request line + headers */

/* Marks "first call seen" in *con_cls without allocating. */
static int first_call_marker;

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
  int ei = endpoint == HEALTH_READINESS ? 0 : 1;
  health__view_t *v = &h->views[ei][status_only];
  uint64_t now = health__now_ms();
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

static int has_body(struct MHD_Connection *conn) {
  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strcmp(cl, "0") != 0) return 1;
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  health_t *h = cls;
  (void)version;
  (void)upload_data;
  unsigned endpoint = 0;
  if (strcmp(url, "/ready") == 0 || strcmp(url, "/readyz") == 0) endpoint = HEALTH_READINESS;
  else if (strcmp(url, "/health") == 0 || strcmp(url, "/livez") == 0) endpoint = HEALTH_LIVENESS;
  int get_or_head = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

  if (*con_cls == NULL) {
    *con_cls = &first_call_marker;
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
  return answer(h, conn, endpoint);
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
