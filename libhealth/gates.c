/*
 * Startup gates (readiness fails until each is opened; with a startup
 * deadline, liveness too once it passes: readiness.c folds them into the
 * endpoints) and the environment variables of the liveness and readiness
 * controls.
 */
#include "health-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- startup gates ---- */

HEALTH_EXPORT int health_add_gate(health_t *h, const char *name, health_error_t *err) {
  if (!h || !name) return health__err(err, HEALTH_EINVAL, "health_add_gate: handle and name are required");
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
  for (size_t i = 0; i < h->eng.nchecks; i++)
    if (strcmp(h->eng.checks[i]->key, g->key) == 0) {
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

HEALTH_EXPORT int health_open_gate(health_t *h, const char *name) {
  if (!h || !name) return HEALTH_EINVAL;
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
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)(c->started_ms ? health__now_ms() - c->started_ms : 0));
    health__log(h, HEALTH_LOG_INFO, "gate_open", "gate", name, "#after_ms", ms, NULL);
    health__state_changed_locked(h);
    break;
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

HEALTH_EXPORT int health_set_startup_deadline(health_t *h, unsigned deadline_ms,
                                              health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_set_startup_deadline: handle is NULL");
  if (deadline_ms > 86400000u)
    return health__err(err, HEALTH_EINVAL, "startup deadline must be 0 (none) to 86400000 ms");
  int rc = 0;
  pthread_mutex_lock(&h->lock);
  if (h->state != HEALTH__ST_NEW) rc = health__err(err, HEALTH_ESTATE, "the startup deadline must be set before health_start()");
  else h->ctl->startup_deadline_ms = deadline_ms;
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* ---- configuration from the environment ---- */

static int parse_uint(const char *var, const char *s, unsigned long max, unsigned long *out,
                      health_error_t *err) {
  int ok = *s && strlen(s) <= 10;
  for (const char *p = s; ok && *p; p++)
    if (*p < '0' || *p > '9') ok = 0;
  unsigned long v = 0;
  if (ok) {
    errno = 0;
    v = strtoul(s, NULL, 10);
    ok = errno == 0 && v <= max;
  }
  if (!ok)
    return health__err(err, HEALTH_EINVAL, "%s='%.40s' is not a whole number from 0 to %lu", var, s, max);
  *out = v;
  return 0;
}

HEALTH_EXPORT int health_controls_from_env(health_t *h, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_controls_from_env: handle is NULL");
  const char *v;
  unsigned long deadline = 0, port = 0, weight = 0;
  int has_deadline = 0, has_port = 0, has_weight = 0;
  if ((v = getenv("HEALTH_STARTUP_DEADLINE_MS")) && *v) {
    if (parse_uint("HEALTH_STARTUP_DEADLINE_MS", v, 86400000ul, &deadline, err)) return HEALTH_EINVAL;
    has_deadline = 1;
  }
  if ((v = getenv("HEALTH_AGENT_PORT")) && *v) {
    if (parse_uint("HEALTH_AGENT_PORT", v, 65535ul, &port, err)) return HEALTH_EINVAL;
    has_port = 1;
  }
  if ((v = getenv("HEALTH_AGENT_WEIGHT")) && *v) {
    if (parse_uint("HEALTH_AGENT_WEIGHT", v, 256ul, &weight, err)) return HEALTH_EINVAL;
    has_weight = 1;
  }
  const char *address = getenv("HEALTH_AGENT_ADDRESS");
  if (address && !*address) address = NULL;
  if ((has_weight || address) && !has_port && !h->ctl->agent_enabled)
    return health__err(err, HEALTH_EINVAL,
                       "HEALTH_AGENT_WEIGHT and HEALTH_AGENT_ADDRESS need HEALTH_AGENT_PORT (the agent is off)");
  pthread_mutex_lock(&h->lock);
  int state = h->state;
  pthread_mutex_unlock(&h->lock);
  if (state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "health_controls_from_env must be called before health_start()");
  /* Validate the agent's settings before changing anything. */
  if (has_port || has_weight || address) {
    health_agent_options_t o;
    health_agent_options_init(&o);
    o.address = address ? address : h->ctl->agent_address;
    o.port = has_port ? (unsigned)port : h->ctl->agent_port;
    o.weight = has_weight ? (unsigned)weight : atomic_load(&h->ctl->agent_weight);
    int rc = health_set_agent(h, &o, err);
    if (rc) {
      if (err && rc == HEALTH_EINVAL && strncmp(err->text, "HEALTH_", 7) != 0) {
        char tmp[HEALTH_ERROR_TEXT_LENGTH];
        snprintf(tmp, sizeof tmp, "%s", err->text);
        health__err(err, rc, "HEALTH_AGENT_*: %s", tmp);
      }
      return rc;
    }
  }
  if (has_deadline) return health_set_startup_deadline(h, (unsigned)deadline, err);
  return 0;
}
