/*
 * The adapter between the checker interface (checkers/checker.h) and the engine:
 * the only checker-side file that sees struct health.  What it reads of the
 * engine, and nothing more: the check's resolved timeout after
 * registration (h->lock, health__check_at_locked, check->arg,
 * check->timeout_ms), the handle's log settings (h->opt.log_level, log_fn,
 * log_arg); and it calls health__add_check, health__logv,
 * health__log_repeatv and the backoff helpers (engine/backoff.c).
 */
#include "health_int.h"

#include "checkers/checker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct health__checker {
  health_t *h;
  char *name;
  unsigned timeout_ms;       /* as the engine resolved it, after _add */
  health__backoff_t backoff; /* failed connection attempts (engine/backoff.c) */
  health__repeat_t logrep;   /* the same line every run is logged once */
  health__dns_slot_t *dns;   /* a lookup left running by a run (core/resolve.c) */
};

health__checker_t *health__checker_new(health_t *h, const char *name) {
  health__checker_t *ck = calloc(1, sizeof *ck);
  if (!ck) return NULL;
  ck->h = h;
  if (!(ck->name = strdup(name ? name : ""))) {
    free(ck);
    return NULL;
  }
  return ck;
}

void health__checker_free(health__checker_t *ck) {
  if (!ck) return;
  health__resolve_slot_free(&ck->dns);
  free(ck->name);
  free(ck);
}

health__dns_slot_t **health__checker_dns(health__checker_t *ck) { return ck ? &ck->dns : NULL; }

int health__checker_add(health__checker_t *ck, health_check_fn run, void *state,
                        void (*state_free)(void *), const health_check_options_t *opts,
                        const char *component_type, health_error_t *err) {
  health_t *h = ck->h;
  int rc = health__add_check(h, ck->name, run, state, state_free, opts, component_type, err);
  if (rc != 0) return rc;
  /* The timeout as the engine resolved it: one rule, the engine's.  Checks
   * are added before start only, so no run reads it yet. */
  pthread_mutex_lock(&h->lock);
  const health__check_t *c;
  for (size_t i = 0; (c = health__check_at_locked(h, i)); i++)
    if (c->arg == state) ck->timeout_ms = c->timeout_ms;
  pthread_mutex_unlock(&h->lock);
  return 0;
}

const char *health__checker_name(const health__checker_t *ck) { return ck->name; }

unsigned health__checker_timeout_ms(const health__checker_t *ck) { return ck->timeout_ms; }

health_t *health__checker_handle(const health__checker_t *ck) { return ck->h; }

uint64_t health__checker_deadline_slack(const health_result_t *r, unsigned fraction,
                                        unsigned max_ms) {
  unsigned left = health_result_remaining_ms(r);
  unsigned part = fraction ? left / fraction : 0;
  return health__now_ms() + left - (part < max_ms ? part : max_ms);
}

/* Up to a tenth of the budget, at most 100 ms: under a sanitizer on a busy
 * machine 25 ms (the Redis checker's slack) was sometimes not enough for
 * the checker's own "timeout ... (phase)" to beat the engine's generic one. */
uint64_t health__checker_deadline(const health_result_t *r) {
  return health__checker_deadline_slack(r, 10, 100);
}

void health__checker_phase(health_result_t *r, const char *phase) {
  health__result_phase(r, phase);
}

void health__checker_timeout_text(const health__checker_t *ck, const char *phase, char *buf,
                                  size_t len) {
  snprintf(buf, len, "timeout after %u ms (%s)", ck->timeout_ms, phase);
}

void health__checker_timeout(const health__checker_t *ck, health_result_t *r, const char *phase) {
  health_result_set(r, HEALTH_FAIL, "timeout after %u ms (%s)", ck->timeout_ms, phase);
}

void health__checker_pass(health_result_t *r, double elapsed_ms) {
  health_result_observe(r, elapsed_ms, "ms");
  health_result_set(r, HEALTH_PASS, NULL);
}

void health__checker_connect_failed(health__checker_t *ck, health_result_t *r) {
  health__backoff_failed(&ck->backoff, r);
}

void health__checker_connected(health__checker_t *ck) { health__backoff_reset(&ck->backoff); }

int health__checker_keep_connection(const health_result_t *r) {
  return health__keep_connections(r);
}

void health__checker_log(const health__checker_t *ck, health_log_level_t level, const char *event,
                         ...) {
  va_list ap;
  va_start(ap, event);
  health__logv(ck->h, level, event, ap);
  va_end(ap);
}

void health__checker_log_once(health__checker_t *ck, health_log_level_t level, const char *event,
                              ...) {
  va_list ap;
  va_start(ap, event);
  health__log_repeatv(ck->h, &ck->logrep, ck->name, level, event, ap);
  va_end(ap);
}

void health__checker_warn_insecure(const health__checker_t *ck, const char *event) {
  health__checker_log(ck, HEALTH_LOG_WARN, event, "check", ck->name, "message",
                      "TLS certificate verification is DISABLED (insecure_skip_verify): "
                      "anyone on the path can impersonate the server",
                      NULL);
}

struct ssl_ctx_st *health__checker_tls_ctx(const health__checker_t *ck, health__tls_files_t *f) {
  struct ssl_ctx_st *ctx;
  char why[300] = "", msg[400];
  int rc = health__tls_files_ctx(f, &ctx, why, sizeof why);
  if (rc > 0) {
    health__checker_log(ck, HEALTH_LOG_INFO, "tls_files_reloaded", "check", ck->name, "message",
                        "a CA, client certificate or key file changed: new connections use "
                        "the files as they are now",
                        NULL);
  } else if (rc < 0) {
    snprintf(msg, sizeof msg, "%s; new connections keep the previous TLS files", why);
    health__checker_log(ck, HEALTH_LOG_WARN, "tls_files_reload_failed", "check", ck->name,
                        "message", msg, NULL);
  }
  return ctx;
}
