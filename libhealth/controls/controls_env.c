/*
 * health_controls_from_env(): the environment variables of the liveness
 * and readiness controls (startup gates and deadline, HAProxy agent).  An
 * entry point: it calls the public setters of controls/gates.c and controls/agent.c.
 */
#include "health_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration from the environment ---- */

static int parse_uint(const char *var, const char *s, unsigned long max, unsigned *out,
                      health_error_t *err) {
  if (health__env_uint(s, 0, max, out) != 0)
    return health__err(err, HEALTH_EINVAL, "%s='%.40s' is not a whole number from 0 to %lu", var, s,
                       max);
  return 0;
}

HEALTH_EXPORT int health_controls_from_env(health_t *h, health_error_t *err) {
  return health__controls_from_lookup(h, health__env_lookup, NULL, err);
}

int health__controls_env_parse(const health_t *h, health__lookup_fn lookup, void *arg,
                               health__controls_env_t *c, health_error_t *err) {
  const char *v;
  memset(c, 0, sizeof *c);
  if ((v = lookup("HEALTH_STARTUP_DEADLINE_MS", arg)) && *v) {
    if (parse_uint("HEALTH_STARTUP_DEADLINE_MS", v, 86400000ul, &c->deadline, err))
      return HEALTH_EINVAL;
    c->has_deadline = 1;
  }
  if ((v = lookup("HEALTH_AGENT_PORT", arg)) && *v) {
    if (parse_uint("HEALTH_AGENT_PORT", v, 65535ul, &c->port, err)) return HEALTH_EINVAL;
    c->has_port = 1;
  }
  if ((v = lookup("HEALTH_AGENT_WEIGHT", arg)) && *v) {
    if (parse_uint("HEALTH_AGENT_WEIGHT", v, 256ul, &c->weight, err)) return HEALTH_EINVAL;
    c->has_weight = 1;
  }
  c->address = lookup("HEALTH_AGENT_ADDRESS", arg);
  if (c->address && !*c->address) c->address = NULL;
  struct in_addr a4;
  struct in6_addr a6;
  if (c->address && inet_pton(AF_INET, c->address, &a4) != 1 &&
      inet_pton(AF_INET6, c->address, &a6) != 1)
    return health__err(err, HEALTH_EINVAL,
                       "HEALTH_AGENT_ADDRESS='%.60s' is not an IPv4 or IPv6 literal", c->address);
  health_agent_options_t now;
  if ((c->has_weight || c->address) && !c->has_port && !health__agent_settings(h, &now))
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_AGENT_WEIGHT and HEALTH_AGENT_ADDRESS need HEALTH_AGENT_PORT (the agent is off)");
  return 0;
}

int health__controls_env_apply(health_t *h, const health__controls_env_t *c, health_error_t *err) {
  if (c->has_port || c->has_weight || c->address) {
    health_agent_options_t o;
    health__agent_settings(h, &o); /* controls/agent.c owns them */
    if (c->address) o.address = c->address;
    if (c->has_port) o.port = c->port;
    if (c->has_weight) o.weight = c->weight;
    int rc = health_agent_set(h, &o, err);
    if (rc) {
      if (err && rc == HEALTH_EINVAL && strncmp(err->text, "HEALTH_", 7) != 0) {
        char tmp[HEALTH_ERROR_TEXT_LENGTH];
        snprintf(tmp, sizeof tmp, "%s", err->text);
        health__err(err, rc, "HEALTH_AGENT_*: %s", tmp);
      }
      return rc;
    }
  }
  if (c->has_deadline) return health_startup_set_deadline(h, c->deadline, err);
  return 0;
}

int health__controls_from_lookup(health_t *h, health__lookup_fn lookup, void *arg,
                                 health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_controls_from_env: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  health__controls_env_t c;
  int rc = health__controls_env_parse(h, lookup, arg, &c, err);
  if (rc) return rc;
  pthread_mutex_lock(&h->lock);
  int state = h->state;
  pthread_mutex_unlock(&h->lock);
  if (state != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE,
                       "health_controls_from_env must be called before health_start()");
  return health__controls_env_apply(h, &c, err);
}
