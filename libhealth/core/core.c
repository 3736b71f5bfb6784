/*
 * The shared state of a handle that every layer may use: the state
 * version and its observers, the status words, the name grammar.  The
 * lowest layer of the engine: it calls nothing above it.  A lower layer
 * (the check engine, the controls, the shutdown sequence) that changed
 * something rendered calls health__state_changed_locked(); the layers above
 * (listeners, systemd notification) registered observers at start and
 * are told from here, so no lower file calls a higher one.
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int health__valid_name(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > HEALTH__NAME_MAX) return 0;
  for (const char *p = n; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

const char *health__status_word(health_status_t s) {
  switch (s) {
    case HEALTH_PASS: return "pass";
    case HEALTH_WARN: return "warn";
    case HEALTH_FAIL: return "fail";
    default: return "pending";
  }
}

int health__core_init(health_t *h) {
  if (!(h->core.logq = health__logq_new(h->opt.log_fn, h->opt.log_arg))) return -1;
  if (pthread_mutex_init(&h->lock, NULL) != 0) {
    health__logq_free(h->core.logq);
    h->core.logq = NULL;
    return -1;
  }
  h->core.inited = 1;
  return 0;
}

void health__core_free(health_t *h) {
  if (h->core.inited) pthread_mutex_destroy(&h->lock);
  h->core.inited = 0;
  health__logq_free(h->core.logq); /* lines logged from here go out synchronously */
  h->core.logq = NULL;
}

int health__core_start_log(health_t *h) {
  if (h->opt.log_level >= HEALTH_LOG_OFF) return 0; /* no lines: no writer */
  return health__logq_start(h->core.logq);
}

void health__core_stop_log(health_t *h) { health__logq_stop(h->core.logq); }

int health__observe_locked(health_t *h, health__state_observer_fn on_state,
                           health__check_observer_fn on_check) {
  health__core_t *k = &h->core;
  if (on_state) {
    if (k->nstate >= HEALTH__OBSERVERS) return -1;
    k->on_state[k->nstate++] = on_state;
  }
  if (on_check) {
    if (k->ncheck >= HEALTH__OBSERVERS) return -1;
    k->on_check[k->ncheck++] = on_check;
  }
  return 0;
}

void health__check_changed_locked(health_t *h, const health__check_t *c, health_status_t prev) {
  for (size_t i = 0; i < h->core.ncheck; i++) h->core.on_check[i](h, c, prev);
}

void health__version_bump(health_t *h) { atomic_fetch_add(&h->core.version, 1); }

void health__state_changed_locked(health_t *h) {
  atomic_fetch_add(&h->core.version, 1);
  for (size_t i = 0; i < h->core.nstate; i++) h->core.on_state[i](h);
}
