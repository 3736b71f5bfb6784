/*
 * The connection layer (net/conn.c, net/conn_tls.c, net/tls_files.c): a TCP connection made under a
 * deadline, and a client stream over a socket the caller owns, optionally
 * wrapped in TLS (OpenSSL), with every operation bounded by a monotonic
 * deadline.  OpenSSL types are only named here, so this header compiles
 * without it; the layer builds with or without OpenSSL (then TLS calls
 * fail with a message saying so).
 */
#ifndef HEALTH_CONN_H
#define HEALTH_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct ssl_st;
struct ssl_ctx_st;

/* Outcomes of the I/O calls below (a read returns a byte count > 0). */
enum {
  HEALTH__IO_TIMEOUT = -1, /* the deadline passed */
  HEALTH__IO_CLOSED = -2,  /* the peer closed or reset the connection */
  HEALTH__IO_ERROR = -3    /* anything else; the message says what */
};

typedef struct health__conn {
  int fd;                /* connected, non-blocking; -1 when closed */
  struct ssl_st *ssl;    /* NULL for plaintext */
  unsigned char peek[8]; /* first raw bytes the peer sent: tells a TLS */
  size_t npeek;          /* record from a RESP reply when things go wrong */
  int sys_errno;         /* errno of the last failed send/recv */
  int cert_requested;    /* the server asked for a client certificate
                            and none is configured */
} health__conn_t;

/**
 * Build a client context: TLS 1.2 minimum; with `verify`, peer verification
 * against ca_file/ca_dir or else the system trust store; a client
 * certificate when cert_file/key_file are given (both or neither).
 * @return 0 or HEALTH_ETLS (message names the file), HEALTH_ENOMEM,
 *         HEALTH_ENOTSUP (built without OpenSSL).
 */
int health__tls_ctx_new(struct ssl_ctx_st **out, const char *ca_file, const char *ca_dir,
                        const char *cert_file, const char *key_file, int verify, char *err,
                        size_t errlen);
void health__tls_ctx_free(struct ssl_ctx_st *ctx);

/*
 * TLS material that follows rotation (net/tls_files.c): a context and the
 * files it was built from.  _new takes the arguments and errors of
 * health__tls_ctx_new.  _ctx gives the context for a new connection,
 * rebuilt first when a file changed (stat: device, inode, size, mtime,
 * ctime; the CA directory's own entry for ca_dir): 0 unchanged, 1 rebuilt,
 * -1 the rebuild failed (err says why; the old context is kept, and the
 * same files are not tried, nor reported, again).  The system trust store
 * is read once.  One caller at a time (a check's runs).
 */
typedef struct health__tls_files health__tls_files_t;
int health__tls_files_new(health__tls_files_t **out, const char *ca_file, const char *ca_dir,
                          const char *cert_file, const char *key_file, int verify, char *err,
                          size_t errlen);
int health__tls_files_ctx(health__tls_files_t *f, struct ssl_ctx_st **ctx, char *err,
                          size_t errlen);
void health__tls_files_free(health__tls_files_t *f);

/**
 * An IPv4 or IPv6 literal (no host name, no brackets) and a port as a
 * socket address, for the listening sockets (health port, agent port).
 * @return 1 for IPv4, 2 for IPv6, 0 if `address` is neither.
 */
int health__sockaddr_literal(const char *address, unsigned port, struct sockaddr_storage *ss,
                             socklen_t *len);

/** Mark `c` as closed (fd -1, no TLS). */
void health__conn_init(health__conn_t *c);

/**
 * TLS handshake on the connected socket c->fd.  With `verify`, the server
 * certificate must match `name` (an IP literal is matched against IP SANs;
 * a name is also sent as SNI).  May be called again after a
 * HEALTH__IO_TIMEOUT to continue with a later deadline.
 * @return 0 or HEALTH__IO_*; `err` gets a message without host names.
 */
int health__tls_handshake(health__conn_t *c, struct ssl_ctx_st *ctx, const char *name, int verify,
                          uint64_t deadline_ms, char *err, size_t errlen);

/** Write all of buf.  @return 0 or HEALTH__IO_*. */
int health__conn_write(health__conn_t *c, const void *buf, size_t len, uint64_t deadline_ms,
                       char *err, size_t errlen);

/** Read what is available (waiting until the deadline for something).
 * @return bytes read (> 0) or HEALTH__IO_*. */
ssize_t health__conn_read(health__conn_t *c, void *buf, size_t cap, uint64_t deadline_ms, char *err,
                          size_t errlen);

/** 1 if an idle connection is unusable (peer closed, or sent something
 * nobody asked for). */
int health__conn_stale(health__conn_t *c);

/** Close the socket and free TLS state; `c` may be reused after. */
void health__conn_close(health__conn_t *c);

/** Wait until `fd` is ready for `events` (poll flags) or the deadline.
 * @return 1 ready, 0 timeout, -1 poll error. */
int health__wait_fd(int fd, short events, uint64_t deadline_ms);

/**
 * Connect a non-blocking TCP socket (TCP_NODELAY, close-on-exec) to one
 * address, waiting at most until `deadline` (monotonic ms).
 * @return the socket, or -1 with *err the errno (ETIMEDOUT at the deadline).
 */
int health__tcp_connect(const struct sockaddr *sa, socklen_t len, uint64_t deadline, int *err);

/** strerror(e) with a lower-case first letter, for messages. */
const char *health__errno_text(int e, char *buf, size_t len);

/* ---- net/conn.c, for net/conn_tls.c only ---- */
void health__conn_remember(health__conn_t *c, const void *buf, size_t n);
void health__io_say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int health__io_sys_fail(health__conn_t *c, int e, const char *what, char *err, size_t errlen);
int health__plain_write(health__conn_t *c, const char *p, size_t len, uint64_t deadline_ms,
                        char *err, size_t errlen);
ssize_t health__plain_read(health__conn_t *c, char *buf, size_t cap, uint64_t deadline_ms,
                           char *err, size_t errlen);

/* fd itself, or, when it is 0, 1 or 2, a close-on-exec copy at 3 or above
 * (fd closed): the library's descriptors never take stdio's numbers
 * (core/fdsafe.c; also declared in core/base_int.h). */
int health__fd_hoist(int fd);

#endif
