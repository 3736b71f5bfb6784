/* The test HTTP(S) server (see httpd.h). */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#else /* plaintext only: th_httpd_start() refuses a certificate */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
#define SSL_read(s, b, l) ((void)(s), (void)(b), (void)(l), -1)
#define SSL_write(s, b, l) ((void)(s), (void)(b), (void)(l), -1)
#define SSL_new(c) ((void)(c), (SSL *)NULL)
#define SSL_set_fd(s, f) ((void)(s), (void)(f), 0)
#define SSL_accept(s) ((void)(s), -1)
#define SSL_free(s) ((void)(s))
#define SSL_shutdown(s) ((void)(s), 0)
#define SSL_CTX_free(c) ((void)(c))
#define ERR_print_errors_fp(f) ((void)(f))
#endif

#define MAX_HUNG 64

struct th_httpd {
  int lfd, stop[2];
  SSL_CTX *ctx;
  pthread_t thread;
  pthread_mutex_t lock;
  int mode, status;
  char headers[1024], body[8192], last[4096];
  unsigned requests;
  int hung[MAX_HUNG];
  SSL *hung_ssl[MAX_HUNG];
  int nhung;
};

static void set_timeouts(int fd) {
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int xread(int fd, SSL *ssl, char *buf, int len) {
  return ssl ? SSL_read(ssl, buf, len) : (int)recv(fd, buf, (size_t)len, 0);
}

static void xwrite(int fd, SSL *ssl, const char *buf, size_t len) {
  if (ssl) (void)SSL_write(ssl, buf, (int)len);
  else (void)send(fd, buf, len, MSG_NOSIGNAL);
}

static void serve(th_httpd_t *s, int fd) {
  SSL *ssl = NULL;
  char req[4096];
  int n = 0;
  set_timeouts(fd);
  if (s->ctx) {
    if (!(ssl = SSL_new(s->ctx))) goto out;
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) goto out;
  }
  while (n < (int)sizeof req - 1) {
    int r = xread(fd, ssl, req + n, (int)sizeof req - 1 - n);
    if (r <= 0) goto out;
    n += r;
    req[n] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  pthread_mutex_lock(&s->lock);
  s->requests++;
  snprintf(s->last, sizeof s->last, "%s", req);
  int mode = s->mode, status = s->status;
  char *resp = NULL;
  int rl = 0;
  if (mode == TH_HTTPD_ANSWER)
    rl = asprintf(&resp, "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
                  status, strlen(s->body), s->headers, strncmp(req, "HEAD ", 5) ? s->body : "");
  if (mode == TH_HTTPD_HANG && s->nhung < MAX_HUNG) {
    s->hung[s->nhung] = fd;
    s->hung_ssl[s->nhung++] = ssl;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  pthread_mutex_unlock(&s->lock);
  if (mode == TH_HTTPD_RESET) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    SSL_free(ssl);
    close(fd);
    return;
  }
  if (rl > 0) xwrite(fd, ssl, resp, (size_t)rl);
  free(resp);
  if (ssl) SSL_shutdown(ssl);
out:
  SSL_free(ssl);
  close(fd);
}

static void *main_loop(void *arg) {
  th_httpd_t *s = arg;
  for (;;) {
    struct pollfd f[2] = {{s->lfd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
    if (poll(f, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (f[1].revents) break;
    int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) serve(s, c);
  }
  return NULL;
}

th_httpd_t *th_httpd_start(const char *cert, const char *key, const char *client_ca,
                           unsigned *port) {
  th_httpd_t *s = calloc(1, sizeof *s);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t sl = sizeof sa;
  int one = 1;
  if (!s) return NULL;
  s->status = 200;
  snprintf(s->body, sizeof s->body, "ok\n");
  pthread_mutex_init(&s->lock, NULL);
#ifndef HAVE_OPENSSL
  if (cert) goto fail;
#else
  if (cert) {
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (!s->ctx || SSL_CTX_use_certificate_chain_file(s->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1)
      goto fail;
    if (client_ca) {
      if (SSL_CTX_load_verify_locations(s->ctx, client_ca, NULL) != 1) goto fail;
      SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
  }
#endif
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(s->lfd, 64) != 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0)
    goto fail;
  *port = ntohs(sa.sin_port);
  if (pipe2(s->stop, O_CLOEXEC) != 0) goto fail;
  if (pthread_create(&s->thread, NULL, main_loop, s) != 0) goto fail;
  return s;
fail:
  ERR_print_errors_fp(stderr);
  if (s->ctx) SSL_CTX_free(s->ctx);
  if (s->lfd > 0) close(s->lfd);
  (void)client_ca;
  (void)key;
  free(s);
  return NULL;
}

void th_httpd_set(th_httpd_t *s, int mode, int status, const char *headers, const char *body) {
  pthread_mutex_lock(&s->lock);
  s->mode = mode;
  s->status = status;
  snprintf(s->headers, sizeof s->headers, "%s", headers ? headers : "");
  snprintf(s->body, sizeof s->body, "%s", body ? body : "");
  /* Let go of the connections left hanging so far. */
  for (int i = 0; i < s->nhung; i++) {
    SSL_free(s->hung_ssl[i]);
    close(s->hung[i]);
  }
  s->nhung = 0;
  pthread_mutex_unlock(&s->lock);
}

unsigned th_httpd_requests(th_httpd_t *s) {
  pthread_mutex_lock(&s->lock);
  unsigned n = s->requests;
  pthread_mutex_unlock(&s->lock);
  return n;
}

void th_httpd_last(th_httpd_t *s, char *buf, size_t len) {
  pthread_mutex_lock(&s->lock);
  snprintf(buf, len, "%s", s->last);
  pthread_mutex_unlock(&s->lock);
}

void th_httpd_stop(th_httpd_t *s) {
  if (!s) return;
  (void)!write(s->stop[1], "x", 1);
  pthread_join(s->thread, NULL);
  th_httpd_set(s, TH_HTTPD_ANSWER, 200, NULL, NULL);
  close(s->stop[0]);
  close(s->stop[1]);
  close(s->lfd);
  if (s->ctx) SSL_CTX_free(s->ctx);
  pthread_mutex_destroy(&s->lock);
  free(s);
}
