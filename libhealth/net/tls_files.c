/*
 * TLS material that follows rotation: a client context (net/conn_tls.c) kept
 * with the files it was built from.  Before each new connection the CA
 * file, the CA directory, the client certificate and key are stat()ed
 * (device, inode, size, modification and change times: a rename over the
 * file, as cert-manager and Kubernetes secret volumes do, and a rewrite in
 * place both show); when one changed the context is rebuilt.  A rebuild
 * that fails (a half-written file, a key that does not match the new
 * certificate yet) keeps the old context and is reported once per change
 * of the files.  Only the check's runs use it: they never overlap, so no
 * lock.  Connections already made keep the context they were made with
 * (OpenSSL counts its references).
 */
#include "config.h"

#include "net/conn.h"

#include "health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { F_CA, F_DIR, F_CERT, F_KEY, F_N };

typedef struct stamp {
  int err; /* errno of stat(), 0 when it worked */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} stamp_t;

struct health__tls_files {
  char *path[F_N]; /* NULL when not given */
  int verify;
  struct ssl_ctx_st *ctx;
  stamp_t built[F_N];  /* the files as the context was built from them */
  stamp_t failed[F_N]; /* the files as a rebuild last failed on them */
  int have_failed;
};

static void take(const health__tls_files_t *f, stamp_t *s) {
  memset(s, 0, F_N * sizeof *s);
  for (int i = 0; i < F_N; i++) {
    struct stat st;
    if (!f->path[i]) continue;
    if (stat(f->path[i], &st) != 0) {
      s[i].err = errno ? errno : -1;
      continue;
    }
    s[i].dev = st.st_dev;
    s[i].ino = st.st_ino;
    s[i].size = st.st_size;
    s[i].mtime = st.st_mtim;
    s[i].ctime = st.st_ctim;
  }
}

static int same(const stamp_t *a, const stamp_t *b) {
  for (int i = 0; i < F_N; i++)
    if (a[i].err != b[i].err || a[i].dev != b[i].dev || a[i].ino != b[i].ino ||
        a[i].size != b[i].size || a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
        a[i].mtime.tv_nsec != b[i].mtime.tv_nsec || a[i].ctime.tv_sec != b[i].ctime.tv_sec ||
        a[i].ctime.tv_nsec != b[i].ctime.tv_nsec)
      return 0;
  return 1;
}

void health__tls_files_free(health__tls_files_t *f) {
  if (!f) return;
  health__tls_ctx_free(f->ctx);
  for (int i = 0; i < F_N; i++) free(f->path[i]);
  free(f);
}

int health__tls_files_new(health__tls_files_t **out, const char *ca_file, const char *ca_dir,
                          const char *cert_file, const char *key_file, int verify, char *err,
                          size_t errlen) {
  const char *p[F_N] = {ca_file, ca_dir, cert_file, key_file};
  health__tls_files_t *f = calloc(1, sizeof *f);
  *out = NULL;
  if (!f) goto nomem;
  f->verify = verify;
  for (int i = 0; i < F_N; i++)
    if (p[i] && !(f->path[i] = strdup(p[i]))) goto nomem;
  take(f, f->built);
  int rc = health__tls_ctx_new(&f->ctx, ca_file, ca_dir, cert_file, key_file, verify, err, errlen);
  if (rc) {
    health__tls_files_free(f);
    return rc;
  }
  *out = f;
  return 0;
nomem:
  health__tls_files_free(f);
  health__io_say(err, errlen, "out of memory");
  return HEALTH_ENOMEM;
}

int health__tls_files_ctx(health__tls_files_t *f, struct ssl_ctx_st **ctx, char *err,
                          size_t errlen) {
  stamp_t now[F_N];
  *ctx = f->ctx;
  take(f, now);
  if (same(now, f->built)) return 0;
  if (f->have_failed && same(now, f->failed)) return 0; /* said once already */
  struct ssl_ctx_st *fresh = NULL;
  if (health__tls_ctx_new(&fresh, f->path[F_CA], f->path[F_DIR], f->path[F_CERT], f->path[F_KEY],
                          f->verify, err, errlen) != 0) {
    memcpy(f->failed, now, sizeof now);
    f->have_failed = 1;
    return -1;
  }
  health__tls_ctx_free(f->ctx);
  f->ctx = *ctx = fresh;
  memcpy(f->built, now, sizeof now);
  f->have_failed = 0;
  return 1;
}
