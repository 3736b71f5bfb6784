/*
 * The floor: a bare libmicrohttpd server answering one fixed body from one
 * persistent response -- the best the HTTP library underneath libhealth can
 * do on this machine.  It uses the same daemon flags and options as
 * libhealth/http/server.c (internal polling thread + epoll + ITC, same connection
 * limits, timeout, memory limit, backlog) and, like libhealth, queues the
 * response on the second call of the access handler (queuing it on the
 * first makes libmicrohttpd 0.9.75 answer "Connection: close").
 *
 * usage: floor [--port P] [--body-file F] [--code N]
 *   Prints "PID <pid> PORT <port>" on stdout, then serves until killed.
 *   The body defaults to {"status":"pass"}\n; run.sh passes the exact bytes
 *   libhealth answered so both servers send the same response.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct MHD_Response *resp;
static unsigned code = 200;
static int first_call_marker;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  if (*con_cls == NULL) {
    *con_cls = &first_call_marker;
    return MHD_YES;
  }
  if (*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  return MHD_queue_response(conn, code, resp);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0, r;
  char *buf = malloc(cap);
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *g = realloc(buf, cap *= 2);
      if (!g) {
        free(buf);
        buf = NULL;
      }
      buf = g;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  unsigned port = 0;
  const char *body_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--body-file") && i + 1 < argc) body_file = argv[++i];
    else if (!strcmp(argv[i], "--code") && i + 1 < argc) code = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: floor [--port P] [--body-file F] [--code N]\n");
      return 2;
    }
  }
  static const char default_body[] = "{\"status\":\"pass\"}\n";
  char *body = (char *)default_body;
  size_t len = sizeof default_body - 1;
  if (body_file && !(body = read_file(body_file, &len))) {
    perror(body_file);
    return 1;
  }
  resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
  if (!resp) return 1;
  /* The same headers libhealth sends. */
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/health+json");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
  /* libhealth's defaults: 128 connections, 32 per IP, 10 s timeout, 16 KiB. */
  /* Loopback only, like bench/server.c. */
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 128u, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)(16 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE, 256u, MHD_OPTION_END);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!d) {
    fprintf(stderr, "floor: cannot start the daemon on port %u\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("PID %ld PORT %u\n", (long)getpid(), info ? info->port : port);
  fflush(stdout);
  for (;;) pause(); /* SIGTERM's default action ends the process */
}
