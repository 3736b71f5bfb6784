/*
 * Startup gates (readiness fails until each is opened; with a startup
 * deadline, liveness too once it passes: controls/readiness.c folds them into the
 * endpoints).  Their environment variables: controls/controls_env.c.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- startup gates ---- */

HEALTH_EXPORT int health_gate_add(health_t *h, const char *name, health_error_t *err) {
  if (!h || !name)
    return health__err(err, HEALTH_EINVAL, "health_gate_add: handle and name are required");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_gate_add: the handle belongs to the parent process");
  if (!health__valid_name(name))
    return health__err(err, HEALTH_EINVAL, "gate name must be 1-%d characters of A-Z a-z 0-9 . _ -",
                       HEALTH__NAME_MAX);
  health__gate_t *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name)) || asprintf(&g->key, "%s:startup", name) < 0) {
    if (g) free(g->name);
    free(g);
    return health__err(err, HEALTH_ENOMEM, "out of memory adding gate '%s'", name);
  }
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  if (h->state != HEALTH__ST_NEW) {
    rc = health__err(err, HEALTH_ESTATE, "gates must be added before health_start()");
    goto out;
  }
  for (health__gate_t *o = c->gates; o; o = o->next)
    if (strcmp(o->name, name) == 0) {
      rc = health__err(err, HEALTH_EEXIST, "a gate named '%s' already exists", name);
      goto out;
    }
  if (health__check_find_locked(h, g->key, 1, NULL)) {
    rc = health__err(err, HEALTH_EEXIST, "gate '%s' would have the key of a check", name);
    goto out;
  }
  if (c->gates_tail) c->gates_tail->next = g;
  else c->gates = g;
  c->gates_tail = g;
  c->ngates++;
  c->nclosed++;
  g = NULL;
out:
  pthread_mutex_unlock(&h->lock);
  if (g) {
    free(g->name);
    free(g->key);
    free(g);
  }
  return rc;
}

HEALTH_EXPORT int health_gate_open(health_t *h, const char *name, health_error_t *err) {
  if (!h || !name) return health__err(err, HEALTH_EINVAL, "%s is NULL", !h ? "handle" : "name");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  int rc = HEALTH_ENOENT;
  pthread_mutex_lock(&h->lock);
  health__controls_t *c = h->ctl;
  for (health__gate_t *g = c->gates; g; g = g->next) {
    if (strcmp(g->name, name) != 0) continue;
    rc = 0;
    if (g->open) break;
    g->open = 1;
    g->opened_wall_ms = health__wall_ms();
    c->nclosed--;
    char ms[24];
    snprintf(ms, sizeof ms, "%llu",
             (unsigned long long)(c->started_ms ? health__now_ms() - c->started_ms : 0));
    health__log(h, HEALTH_LOG_INFO, "gate_open", "gate", name, "#after_ms", ms, NULL);
    health__state_changed_locked(h);
    break;
  }
  pthread_mutex_unlock(&h->lock);
  if (rc) return health__err(err, rc, "no gate named \"%s\"", name);
  return 0;
}

HEALTH_EXPORT int health_startup_set_deadline(health_t *h, unsigned deadline_ms,
                                              health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_startup_set_deadline: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  if (deadline_ms > 86400000u)
    return health__err(err, HEALTH_EINVAL, "startup deadline must be 0 (none) to 86400000 ms");
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  if (h->state != HEALTH__ST_NEW)
    rc = health__err(err, HEALTH_ESTATE, "the startup deadline must be set before health_start()");
  else h->ctl->startup_deadline_ms = deadline_ms;
  pthread_mutex_unlock(&h->lock);
  return rc;
}
