/*
 * Paths on the health port: /ready, /health and /metrics by default (with
 * the /readyz and /livez aliases while the defaults stand), configurable
 * through HEALTH_READY_PATH, HEALTH_LIVE_PATH, HEALTH_METRICS_PATH or
 * health_serve_set(); routing of a request's path.
 */
#include "http/obs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PATH_MAX_LEN 128

HEALTH_EXPORT void health_serve_options_init(health_serve_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->ready_path = "/ready";
  o->live_path = "/health";
  o->metrics_path = "/metrics";
}

static int off(const char *p) { return !p || !*p || strcasecmp(p, "off") == 0; }

static int path_ok(const char *p) {
  size_t n = strlen(p);
  if (n < 1 || n > PATH_MAX_LEN || p[0] != '/') return 0;
  for (const unsigned char *c = (const unsigned char *)p; *c; c++)
    if (*c <= 0x20 || *c >= 0x7F || *c == '?' || *c == '#' || *c == '%') return 0;
  return 1;
}

static int validate_paths(const health_serve_options_t *o, int env, health_error_t *err) {
  const char *names[3][2] = {{"HEALTH_READY_PATH", "ready_path"},
                             {"HEALTH_LIVE_PATH", "live_path"},
                             {"HEALTH_METRICS_PATH", "metrics_path"}};
  const char *v[3] = {o->ready_path, o->live_path, o->metrics_path};
  for (int i = 0; i < 3; i++) {
    if (i == 2 && off(v[i])) continue;
    if (!v[i] || !path_ok(v[i]))
      return health__err(
          err, HEALTH_EINVAL,
          "%s must be 1-%d printable characters starting with '/', without '?', '#', '%%' or spaces%s",
          names[i][env ? 0 : 1], PATH_MAX_LEN, i == 2 ? " (or off)" : "");
  }
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      if (!(j == 2 && off(v[j])) && strcmp(v[i], v[j]) == 0)
        return health__err(err, HEALTH_EINVAL, "%s and %s must differ (both '%s')",
                           names[i][env ? 0 : 1], names[j][env ? 0 : 1], v[i]);
  return 0;
}

HEALTH_EXPORT int health_serve_options_from_env(health_serve_options_t *o, health_error_t *err) {
  return health__serve_options_from_lookup(o, health__env_lookup, NULL, err);
}

void health__serve_options_get(const health_t *h, health_serve_options_t *o) {
  const struct health__obs *b = h->obs;
  health_serve_options_init(o);
  if (b->ready_path) o->ready_path = b->ready_path;
  if (b->live_path) o->live_path = b->live_path;
  if (b->metrics_off) o->metrics_path = "off";
  else if (b->metrics_path) o->metrics_path = b->metrics_path;
}

int health__serve_options_from_lookup(health_serve_options_t *o, health__lookup_fn lookup,
                                      void *arg, health_error_t *err) {
  if (!o) return health__err(err, HEALTH_EINVAL, "options are required");
  int rc = HEALTH__RESERVED_CHECK(o, "health_serve_options", err);
  if (rc) return rc;
  health_serve_options_t n = *o;
  const char *v;
  if ((v = lookup("HEALTH_READY_PATH", arg)) && *v) n.ready_path = v;
  if ((v = lookup("HEALTH_LIVE_PATH", arg)) && *v) n.live_path = v;
  if ((v = lookup("HEALTH_METRICS_PATH", arg)) && *v) n.metrics_path = v;
  rc = validate_paths(&n, 1, err);
  if (rc == 0) *o = n;
  return rc;
}

HEALTH_EXPORT int health_serve_set(health_t *h, const health_serve_options_t *so,
                                   health_error_t *err) {
  if (!h || !so)
    return health__err(err, HEALTH_EINVAL, "health_serve_set: handle and options are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  int rc = HEALTH__RESERVED_CHECK(so, "health_serve_options", err);
  if (rc) return rc;
  rc = validate_paths(so, 0, err);
  if (rc) return rc;
  /* NULL for a default path: the alias stays served with it. */
  char *r = strcmp(so->ready_path, "/ready") ? strdup(so->ready_path) : NULL;
  char *l = strcmp(so->live_path, "/health") ? strdup(so->live_path) : NULL;
  int moff = off(so->metrics_path);
  char *m = !moff && strcmp(so->metrics_path, "/metrics") ? strdup(so->metrics_path) : NULL;
  if ((strcmp(so->ready_path, "/ready") && !r) || (strcmp(so->live_path, "/health") && !l) ||
      (!moff && strcmp(so->metrics_path, "/metrics") && !m)) {
    free(r), free(l), free(m);
    return health__err(err, HEALTH_ENOMEM, "out of memory setting the paths");
  }
  pthread_mutex_lock(&h->lock);
  if (h->state != HEALTH__ST_NEW) {
    pthread_mutex_unlock(&h->lock);
    free(r), free(l), free(m);
    return health__err(err, HEALTH_ESTATE, "paths must be set before health_start()");
  }
  struct health__obs *o = h->obs;
  free(o->ready_path), free(o->live_path), free(o->metrics_path);
  o->ready_path = r, o->live_path = l, o->metrics_path = m;
  o->metrics_off = moff;
  pthread_mutex_unlock(&h->lock);
  return 0;
}

unsigned health__route(const health_t *h, const char *p) {
  const struct health__obs *o = h->obs;
  if (o->ready_path ? strcmp(p, o->ready_path) == 0
                    : (strcmp(p, "/ready") == 0 || strcmp(p, "/readyz") == 0))
    return HEALTH_READINESS;
  if (o->live_path ? strcmp(p, o->live_path) == 0
                   : (strcmp(p, "/health") == 0 || strcmp(p, "/livez") == 0))
    return HEALTH_LIVENESS;
  if (!o->metrics_off && strcmp(p, o->metrics_path ? o->metrics_path : "/metrics") == 0)
    return HEALTH__ROUTE_METRICS;
  return 0;
}
