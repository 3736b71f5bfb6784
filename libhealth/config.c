/*
 * health_config_from_env(): every HEALTH_* variable the library knows, in
 * one call and all or nothing.  An entry point over the parsers of each
 * family (core/env.c, engine/jitter.c, http/paths.c, controls/controls_env.c,
 * checkers/env_checks.c, http/guard_nofile.c): everything is parsed and validated first, then
 * applied; a variable with the prefix that no one reads is logged (warn), by name. Also
 * health_check_add_from_env(), the same for HEALTH_CHECK_* alone.
 */
#include "health_int.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

/* The parsers' lookup, noting every name they ask for: a HEALTH_* variable
 * none asked for (and not HEALTH_CHECK_*, checkers/env_checks.c's) is unknown, with
 * no list of names to keep in step with the parsers. */
typedef struct {
  health__lookup_fn fn;
  void *arg;
  const char *asked[64]; /* the parsers' names: string literals */
  size_t n;
} spy_t;

static const char *spy(const char *name, void *arg) {
  spy_t *s = arg;
  if (s->n < sizeof s->asked / sizeof s->asked[0]) s->asked[s->n++] = name;
  return s->fn(name, s->arg);
}

static int asked(const spy_t *s, const char *name, size_t len) {
  if (len > 13 && strncmp(name, "HEALTH_CHECK_", 13) == 0) return 1;
  for (size_t i = 0; i < s->n; i++)
    if (strlen(s->asked[i]) == len && strncmp(s->asked[i], name, len) == 0) return 1;
  return 0;
}

static void warn_unknown(health_t *h, const spy_t *s, const char *const *names) {
  for (const char *const *e = names; e && *e; e++) {
    size_t len = strcspn(*e, "=");
    if (len <= 7 || strncmp(*e, "HEALTH_", 7) != 0 || asked(s, *e, len)) continue;
    char name[128];
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, *e, len);
    name[len] = 0;
    health__log(h, HEALTH_LOG_WARN, "env_unknown", "variable", name, "reason",
                "not a variable of libhealth (a typo?); ignored", NULL);
  }
}

/* HEALTH_CHECK_* alone (checkers/env_checks.c parses, engine/registry.c registers). */
HEALTH_EXPORT int health_check_add_from_env(health_t *h, unsigned *added, health_error_t *err) {
  if (added) *added = 0;
  if (!h) return health__err(err, HEALTH_EINVAL, "health_check_add_from_env: handle is required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  if (h->state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "checks must be added before health_start()");
  health__checks_env_t *ce;
  int rc =
      health__checks_env_parse(health__env_lookup, NULL, (const char *const *)environ, &ce, err);
  if (rc) return rc;
  rc = health__checks_env_add(h, ce, added, err);
  health__checks_env_free(ce);
  return rc;
}

HEALTH_EXPORT int health_config_from_env(health_t *h, health_error_t *err) {
  return health__config_from_lookup(h, health__env_lookup, NULL, (const char *const *)environ, err);
}

int health__config_from_lookup(health_t *h, health__lookup_fn lookup, void *arg,
                               const char *const *names, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_config_from_env: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  pthread_mutex_lock(&h->lock);
  int state = h->state;
  health_options_t o = h->opt;
  pthread_mutex_unlock(&h->lock);
  if (state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE,
                       "health_config_from_env must be called before health_start()");

  /* 1. Parse and validate everything; nothing changes. */
  spy_t sp = {.fn = lookup, .arg = arg};
  /* health_new() made an unset drain minimum equal to the drain: keep it
   * following the drain, which HEALTH_DRAIN_MS may move. */
  if (o.drain_min_ms == o.drain_ms) o.drain_min_ms = HEALTH_DRAIN_MIN_UNSET;
  int rc = health__options_from_lookup(&o, spy, &sp, err); /* validates as health_new */
  if (rc) return rc;
  if (o.drain_min_ms == HEALTH_DRAIN_MIN_UNSET) o.drain_min_ms = o.drain_ms;

  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  pthread_mutex_lock(&h->lock);
  fo.initial_offset = h->fleet.initial_offset;
  fo.run_jitter_percent = h->fleet.run_percent;
  fo.backoff = h->fleet.backoff;
  fo.keep_connections = h->fleet.keep_connections;
  pthread_mutex_unlock(&h->lock);
  if ((rc = health__fleet_options_from_lookup(&fo, spy, &sp, err)) != 0) return rc;

  health_serve_options_t so;
  health__serve_options_get(h, &so);
  if ((rc = health__serve_options_from_lookup(&so, spy, &sp, err)) != 0) return rc;
  const char *pv;
  int set_paths = 0;
  for (int i = 0; i < 3; i++)
    if ((pv = lookup(i == 0   ? "HEALTH_READY_PATH"
                     : i == 1 ? "HEALTH_LIVE_PATH"
                              : "HEALTH_METRICS_PATH",
                     arg)) &&
        *pv)
      set_paths = 1;

  health__controls_env_t ctl;
  if ((rc = health__controls_env_parse(h, spy, &sp, &ctl, err)) != 0) return rc;

  int nofile_set;
  unsigned long nofile_max = 0;
  if ((rc = health__nofile_from_lookup(spy, &sp, &nofile_set, &nofile_max, err)) != 0) return rc;

  health__checks_env_t *ce;
  if ((rc = health__checks_env_parse(lookup, arg, names, &ce, err)) != 0) return rc;

  /* 2. Apply: the options first (checks added from here take their
   * defaults), then what can still fail, undone on failure. */
  char *s[5] = {0};
  const char *src[5] = {o.address, o.detail_token, o.service_id, o.service_version, o.description};
  for (int i = 0; i < 5; i++)
    if (src[i] && !(s[i] = strdup(src[i]))) {
      for (int j = 0; j < 5; j++) free(s[j]);
      health__checks_env_free(ce);
      return health__err(err, HEALTH_ENOMEM, "out of memory applying the environment");
    }
  pthread_mutex_lock(&h->lock);
  health_options_t old = h->opt;
  char *olds[5] = {h->address, h->detail_token, h->service_id, h->service_version, h->description};
  h->opt = o;
  h->opt.address = h->address = s[0];
  h->opt.detail_token = h->detail_token = s[1];
  h->opt.service_id = h->service_id = s[2];
  h->opt.service_version = h->service_version = s[3];
  h->opt.description = h->description = s[4];
  pthread_mutex_unlock(&h->lock);

  size_t before = health__checks_count(h);
  rc = health__checks_env_add(h, ce, NULL, err);
  if (rc == 0 && set_paths) rc = health_serve_set(h, &so, err);
  /* Validated above: only out of memory (or a racing health_start) fails. */
  if (rc == 0) rc = health__controls_env_apply(h, &ctl, err);
  if (rc != 0) {
    health__checks_truncate(h, before);
    pthread_mutex_lock(&h->lock);
    h->opt = old;
    h->address = olds[0], h->detail_token = olds[1], h->service_id = olds[2];
    h->service_version = olds[3], h->description = olds[4];
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < 5; i++) free(s[i]);
    health__checks_env_free(ce);
    return rc;
  }
  for (int i = 0; i < 5; i++) free(olds[i]);
  health__checks_env_free(ce);
  if (rc == 0) rc = health_fleet_set(h, &fo, err);
  if (rc == 0 && nofile_set) rc = health_fds_set_limit(h, nofile_max, err);
  if (rc == 0) warn_unknown(h, &sp, names);
  return rc;
}
