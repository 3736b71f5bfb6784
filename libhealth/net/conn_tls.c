/*
 * The stream of the connection layer (net/conn.h), over the sockets of net/conn.c:
 * TLS client contexts, the handshake with host-name verification, and the
 * reads and writes of a stream, TLS or plaintext, all bounded by a deadline.  Built whenever
 * OpenSSL is found, whatever checkers are enabled; without OpenSSL every call says TLS is missing.
 *
 * OpenSSL talks to the socket through our own BIO rather than BIO_s_socket
 * for two reasons: send() with MSG_NOSIGNAL, so a peer that resets the
 * connection can never raise SIGPIPE in the application (write() would, on
 * any thread that has it unblocked), and a record of the first raw bytes the
 * server sent, which is how a handshake failure against a plaintext Redis
 * (it answers "-ERR ...") is told apart from a real TLS error.
 */
#include "config.h"

#include "net/conn.h"

#include "health.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_OPENSSL
#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- the socket BIO ---- */

static BIO_METHOD *sock_method;
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int sock_write(BIO *b, const char *buf, int len) {
  health__conn_t *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return (int)n;
  if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
  else c->sys_errno = errno;
  return -1;
}

static int sock_read(BIO *b, char *buf, int len) {
  health__conn_t *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do n = recv(c->fd, buf, (size_t)len, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) health__conn_remember(c, buf, (size_t)n);
  if (n >= 0) return (int)n;
  if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
  else c->sys_errno = errno;
  return -1;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void sock_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "libhealth socket");
  if (m && BIO_meth_set_write(m, sock_write) && BIO_meth_set_read(m, sock_read) &&
      BIO_meth_set_ctrl(m, sock_ctrl) && BIO_meth_set_create(m, sock_create)) {
    sock_method = m;
  } else if (m) {
    BIO_meth_free(m);
  }
}

/* ---- context ---- */

/* An encrypted key must fail to load, not prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rw, void *u) {
  (void)buf, (void)size, (void)rw, (void)u;
  return 0;
}

/* Only called when no client certificate is configured: remember that
 * the server wanted one, to say so if it then rejects us. */
static int note_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey) {
  health__conn_t *c = SSL_get_app_data(ssl);
  (void)x509, (void)pkey;
  if (c) c->cert_requested = 1;
  return 0;
}

static const char *ossl_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "unknown error";
}

static int readable(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  fclose(f);
  return 1;
}

int health__tls_ctx_new(SSL_CTX **out, const char *ca_file, const char *ca_dir,
                        const char *cert_file, const char *key_file, int verify, char *err,
                        size_t errlen) {
  SSL_CTX *ctx;
  DIR *d;
  int rc = HEALTH_ETLS;

  *out = NULL;
  if (!cert_file != !key_file) {
    health__io_say(err, errlen, "cert_file and key_file must be given together");
    return HEALTH_ETLS;
  }
  /* Check readability first: OpenSSL's reasons for a missing file are
   * obscure ("no such file" hides under "system lib"). */
  if (ca_file && !readable(ca_file)) {
    health__io_say(err, errlen, "cannot read CA file '%s': %s", ca_file, strerror(errno));
    return HEALTH_ETLS;
  }
  if (ca_dir) {
    if (!(d = opendir(ca_dir))) {
      health__io_say(err, errlen, "cannot read CA directory '%s': %s", ca_dir, strerror(errno));
      return HEALTH_ETLS;
    }
    closedir(d);
  }
  if (cert_file && !readable(cert_file)) {
    health__io_say(err, errlen, "cannot read client certificate '%s': %s", cert_file,
                   strerror(errno));
    return HEALTH_ETLS;
  }
  if (key_file && !readable(key_file)) {
    health__io_say(err, errlen, "cannot read client key '%s': %s", key_file, strerror(errno));
    return HEALTH_ETLS;
  }

  ERR_clear_error();
  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    health__io_say(err, errlen, "cannot create a TLS context (out of memory?)");
    return HEALTH_ENOMEM;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);

  if (verify) {
    if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
      health__io_say(err, errlen, "cannot load CA file '%s': %s", ca_file, ossl_reason());
      goto fail;
    }
    if (ca_dir && SSL_CTX_load_verify_locations(ctx, NULL, ca_dir) != 1) {
      health__io_say(err, errlen, "cannot load CA directory '%s': %s", ca_dir, ossl_reason());
      goto fail;
    }
    if (!ca_file && !ca_dir && SSL_CTX_set_default_verify_paths(ctx) != 1) {
      health__io_say(err, errlen, "cannot load the system trust store: %s", ossl_reason());
      goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }

  if (!cert_file) SSL_CTX_set_client_cert_cb(ctx, note_cert_request);
  if (cert_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
      health__io_say(err, errlen, "cannot load client certificate '%s': %s", cert_file,
                     ossl_reason());
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) goto mismatch;
      health__io_say(err, errlen, "cannot load client key '%s': %s", key_file, ossl_reason());
      goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
    mismatch:
      health__io_say(err, errlen, "client key '%s' does not match certificate '%s'", key_file,
                     cert_file);
      goto fail;
    }
  }
  ERR_clear_error();
  *out = ctx;
  return 0;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return rc;
}

void health__tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

/* ---- connection ---- */

/* Alerts the server sends about our certificate, in words an operator can
 * act on. */
static const char *alert_hint(const health__conn_t *c, int reason) {
  switch (reason) {
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE: /* TLS 1.2 says only this */
      return c->cert_requested ? " (the server requires a client certificate)" : "";
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return " (the server requires a client certificate)";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      return " (the server rejected the client certificate)";
    default: return "";
  }
}

/* Turn a failed SSL_* call into HEALTH__IO_* and a curated message. */
static int ssl_fail(health__conn_t *c, int sslerr, const char *what, char *err, size_t errlen) {
  unsigned long e = ERR_peek_last_error();
  int reason = e ? ERR_GET_REASON(e) : 0;
  long vr = SSL_get_verify_result(c->ssl);
  int rc = HEALTH__IO_ERROR;

  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
    health__io_say(err, errlen, "TLS certificate verify failed: %s",
                   X509_verify_cert_error_string(vr));
  } else if (sslerr == SSL_ERROR_ZERO_RETURN || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
             (sslerr == SSL_ERROR_SYSCALL && !e && c->sys_errno == 0)) {
    health__io_say(err, errlen, "%s: connection closed by server", what);
    rc = HEALTH__IO_CLOSED;
  } else if (sslerr == SSL_ERROR_SYSCALL && !e) {
    rc = health__io_sys_fail(c, c->sys_errno, what, err, errlen);
  } else {
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    health__io_say(err, errlen, "%s: %s%s", what, r ? r : "unknown error", alert_hint(c, reason));
  }
  ERR_clear_error();
  return rc;
}

/* Wait for what OpenSSL asked for; 1 to retry, else HEALTH__IO_*. */
static int ssl_wait(health__conn_t *c, int sslerr, const char *what, uint64_t deadline_ms,
                    char *err, size_t errlen) {
  short ev;
  if (sslerr == SSL_ERROR_WANT_READ) ev = POLLIN;
  else if (sslerr == SSL_ERROR_WANT_WRITE) ev = POLLOUT;
  else return ssl_fail(c, sslerr, what, err, errlen);
  int w = health__wait_fd(c->fd, ev, deadline_ms);
  if (w == 0) return HEALTH__IO_TIMEOUT;
  if (w < 0) return health__io_sys_fail(c, errno, "poll failed", err, errlen);
  return 1;
}

int health__tls_handshake(health__conn_t *c, SSL_CTX *ctx, const char *name, int verify,
                          uint64_t deadline_ms, char *err, size_t errlen) {
  if (!c->ssl) {
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    BIO *b;
    pthread_once(&sock_once, sock_method_init);
    ERR_clear_error();
    if (!sock_method || !(c->ssl = SSL_new(ctx)) || !(b = BIO_new(sock_method))) {
      health__io_say(err, errlen, "TLS setup failed (out of memory?)");
      ERR_clear_error();
      return HEALTH__IO_ERROR;
    }
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_app_data(c->ssl, c);
    SSL_set_connect_state(c->ssl);
    /* SNI is for names only (RFC 6066 forbids IP literals). */
    if (!is_ip && SSL_set_tlsext_host_name(c->ssl, name) != 1) {
      health__io_say(err, errlen, "TLS setup failed: invalid server name");
      ERR_clear_error();
      return HEALTH__IO_ERROR;
    }
    if (verify) {
      int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
                     : SSL_set1_host(c->ssl, name);
      if (ok != 1) {
        health__io_say(err, errlen, "TLS setup failed: cannot set the name to verify");
        ERR_clear_error();
        return HEALTH__IO_ERROR;
      }
      SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
  }
  for (;;) {
    ERR_clear_error();
    c->sys_errno = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1) return 0;
    r = ssl_wait(c, SSL_get_error(c->ssl, r), "TLS handshake failed", deadline_ms, err, errlen);
    if (r != 1) return r;
  }
}

static int tls_write(health__conn_t *c, const void *buf, size_t len, uint64_t deadline_ms,
                     char *err, size_t errlen) {
  while (len) {
    ERR_clear_error();
    c->sys_errno = 0;
    int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0) {
      buf = (const char *)buf + n;
      len -= (size_t)n;
      continue;
    }
    int r = ssl_wait(c, SSL_get_error(c->ssl, n), "TLS error", deadline_ms, err, errlen);
    if (r != 1) return r;
  }
  return 0;
}

static ssize_t tls_read(health__conn_t *c, void *buf, size_t cap, uint64_t deadline_ms, char *err,
                        size_t errlen) {
  for (;;) {
    ERR_clear_error();
    c->sys_errno = 0;
    int n = SSL_read(c->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n > 0) return n;
    int r = ssl_wait(c, SSL_get_error(c->ssl, n), "TLS error", deadline_ms, err, errlen);
    if (r != 1) return r;
  }
}

static int tls_stale(health__conn_t *c) {
  if (SSL_pending(c->ssl) > 0) return 1;
  struct pollfd p = {c->fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return 0;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 1;
  /* TLS 1.3 servers may send session tickets after the handshake: let
   * OpenSSL consume them; only application data or a close is stale. */
  char b;
  ERR_clear_error();
  int n = SSL_read(c->ssl, &b, 1);
  int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
  ERR_clear_error();
  return e != SSL_ERROR_WANT_READ;
}

static void tls_free(health__conn_t *c) {
  /* No close_notify: the connection is being dropped because something is
   * wrong, and a shutdown write could block or raise errors of its own. */
  SSL_free(c->ssl);
  c->ssl = NULL;
}
#else /* !HAVE_OPENSSL: every TLS call says so; c->ssl is never set */

int health__tls_ctx_new(struct ssl_ctx_st **out, const char *ca_file, const char *ca_dir,
                        const char *cert_file, const char *key_file, int verify, char *err,
                        size_t errlen) {
  (void)ca_file, (void)ca_dir, (void)cert_file, (void)key_file, (void)verify;
  *out = NULL;
  health__io_say(err, errlen, "TLS support was not compiled in");
  return HEALTH_ENOTSUP;
}

void health__tls_ctx_free(struct ssl_ctx_st *ctx) { (void)ctx; }

int health__tls_handshake(health__conn_t *c, struct ssl_ctx_st *ctx, const char *name, int verify,
                          uint64_t deadline_ms, char *err, size_t errlen) {
  (void)c, (void)ctx, (void)name, (void)verify, (void)deadline_ms;
  health__io_say(err, errlen, "TLS support was not compiled in");
  return HEALTH__IO_ERROR;
}

static int tls_write(health__conn_t *c, const void *buf, size_t len, uint64_t deadline_ms,
                     char *err, size_t errlen) {
  (void)c, (void)buf, (void)len, (void)deadline_ms;
  health__io_say(err, errlen, "TLS support was not compiled in");
  return HEALTH__IO_ERROR;
}

static ssize_t tls_read(health__conn_t *c, void *buf, size_t cap, uint64_t deadline_ms, char *err,
                        size_t errlen) {
  (void)c, (void)buf, (void)cap, (void)deadline_ms;
  health__io_say(err, errlen, "TLS support was not compiled in");
  return HEALTH__IO_ERROR;
}

static int tls_stale(health__conn_t *c) {
  (void)c;
  return 1;
}

static void tls_free(health__conn_t *c) { c->ssl = NULL; }

#endif /* HAVE_OPENSSL */

/* ---- the stream: TLS when c->ssl is set, else plaintext (net/conn.c) ---- */

int health__conn_write(health__conn_t *c, const void *buf, size_t len, uint64_t deadline_ms,
                       char *err, size_t errlen) {
  if (c->ssl) return tls_write(c, buf, len, deadline_ms, err, errlen);
  return health__plain_write(c, buf, len, deadline_ms, err, errlen);
}

ssize_t health__conn_read(health__conn_t *c, void *buf, size_t cap, uint64_t deadline_ms, char *err,
                          size_t errlen) {
  if (c->ssl) return tls_read(c, buf, cap, deadline_ms, err, errlen);
  return health__plain_read(c, buf, cap, deadline_ms, err, errlen);
}

int health__conn_stale(health__conn_t *c) {
  if (c->fd < 0) return 1;
  if (c->ssl) return tls_stale(c);
  struct pollfd p = {c->fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return 0;
  return 1; /* a close, an error, or bytes nobody asked for */
}

void health__conn_close(health__conn_t *c) {
  if (c->ssl) tls_free(c);
  if (c->fd >= 0) close(c->fd);
  health__conn_init(c);
}
