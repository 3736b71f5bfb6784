/*
 * health_controls_from_env(): the environment variables of the liveness
 * and readiness controls (startup gates and deadline, HAProxy agent).  An
 * entry point: it calls the public setters of gates.c and agent.c.
 */
#include "health-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  return health__controls_from_lookup(h, health__env_lookup, NULL, err);
}

int health__controls_from_lookup(health_t *h, health__lookup_fn lookup, void *arg,
                                 health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_controls_from_env: handle is NULL");
  if (health__forked(h)) return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process", __func__);
  const char *v;
  unsigned long deadline = 0, port = 0, weight = 0;
  int has_deadline = 0, has_port = 0, has_weight = 0;
  if ((v = lookup("HEALTH_STARTUP_DEADLINE_MS", arg)) && *v) {
    if (parse_uint("HEALTH_STARTUP_DEADLINE_MS", v, 86400000ul, &deadline, err)) return HEALTH_EINVAL;
    has_deadline = 1;
  }
  if ((v = lookup("HEALTH_AGENT_PORT", arg)) && *v) {
    if (parse_uint("HEALTH_AGENT_PORT", v, 65535ul, &port, err)) return HEALTH_EINVAL;
    has_port = 1;
  }
  if ((v = lookup("HEALTH_AGENT_WEIGHT", arg)) && *v) {
    if (parse_uint("HEALTH_AGENT_WEIGHT", v, 256ul, &weight, err)) return HEALTH_EINVAL;
    has_weight = 1;
  }
  const char *address = lookup("HEALTH_AGENT_ADDRESS", arg);
  if (address && !*address) address = NULL;
  health_agent_options_t o;
  int agent_on = health__agent_settings(h, &o); /* agent.c owns them */
  if ((has_weight || address) && !has_port && !agent_on)
    return health__err(err, HEALTH_EINVAL,
                       "HEALTH_AGENT_WEIGHT and HEALTH_AGENT_ADDRESS need HEALTH_AGENT_PORT (the agent is off)");
  pthread_mutex_lock(&h->lock);
  int state = h->state;
  pthread_mutex_unlock(&h->lock);
  if (state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "health_controls_from_env must be called before health_start()");
  /* Validate the agent's settings before changing anything. */
  if (has_port || has_weight || address) {
    if (address) o.address = address;
    if (has_port) o.port = (unsigned)port;
    if (has_weight) o.weight = (unsigned)weight;
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
