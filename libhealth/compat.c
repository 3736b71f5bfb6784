/*
 * The names 0.2.0 replaced, kept one minor release so that existing callers
 * keep building (with a warning) and existing binaries keep loading: each
 * calls the new function.  Removed in 0.3.0 (include/health.h, "Deprecated
 * names"; NEWS).
 */
#define HEALTH_COMPAT_BUILDING 1 /* no deprecation warnings for the definitions */
#include "health_int.h"

HEALTH_EXPORT int health_add_check(health_t *h, const char *name, health_check_fn fn, void *arg,
                                   void (*free_arg)(void *arg), const health_check_options_t *opts,
                                   health_error_t *err) {
  return health_check_add(h, name, fn, arg, free_arg, opts, err);
}

HEALTH_EXPORT int health_check_get(health_t *h, const char *name, health_check_info_t *out) {
  return health_check_find(h, name, out, NULL);
}

HEALTH_EXPORT int health_add_checks_from_env(health_t *h, unsigned *added, health_error_t *err) {
  return health_check_add_from_env(h, added, err);
}

HEALTH_EXPORT void health_pg_options_init(health_postgres_options_t *o) {
  health_postgres_options_init(o);
}

HEALTH_EXPORT int health_add_postgres(health_t *h, const char *name, const char *conninfo,
                                      const health_postgres_options_t *pg,
                                      const health_check_options_t *opts, health_error_t *err) {
  return health_postgres_add(h, name, conninfo, pg, opts, err);
}

HEALTH_EXPORT int health_add_redis(health_t *h, const char *name, const char *url,
                                   const health_redis_options_t *redis,
                                   const health_check_options_t *opts, health_error_t *err) {
  return health_redis_add(h, name, url, redis, opts, err);
}

HEALTH_EXPORT int health_add_tcp(health_t *h, const char *name, const char *target,
                                 const health_check_options_t *opts, health_error_t *err) {
  return health_tcp_add(h, name, target, opts, err);
}

HEALTH_EXPORT int health_add_http(health_t *h, const char *name, const char *url,
                                  const health_http_options_t *http,
                                  const health_check_options_t *opts, health_error_t *err) {
  return health_http_add(h, name, url, http, opts, err);
}

HEALTH_EXPORT int health_add_disk(health_t *h, const char *name, const char *path,
                                  const health_disk_options_t *disk,
                                  const health_check_options_t *opts, health_error_t *err) {
  return health_disk_add(h, name, path, disk, opts, err);
}

HEALTH_EXPORT int health_add_memory(health_t *h, const char *name,
                                    const health_memory_options_t *mem,
                                    const health_check_options_t *opts, health_error_t *err) {
  return health_memory_add(h, name, mem, opts, err);
}

HEALTH_EXPORT int health_add_fds(health_t *h, const char *name, const health_fds_options_t *fds,
                                 const health_check_options_t *opts, health_error_t *err) {
  return health_fds_add(h, name, fds, opts, err);
}

HEALTH_EXPORT int health_set_nofile_max(health_t *h, unsigned long max_soft, health_error_t *err) {
  return health_fds_set_limit(h, max_soft, err);
}

HEALTH_EXPORT int health_add_hook(health_t *h, const char *name, int order, unsigned timeout_ms,
                                  health_hook_fn fn, void *arg, health_error_t *err) {
  return health_hook_add(h, name, order, timeout_ms, fn, arg, err);
}

HEALTH_EXPORT int health_on_drain(health_t *h, void (*fn)(void *arg), void *arg) {
  return health_drain_notify(h, fn, arg, NULL);
}

HEALTH_EXPORT int health_is_draining(const health_t *h) { return health_drain_active(h); }

HEALTH_EXPORT int health_render(health_t *h, unsigned what, const char *check,
                                const char *authorization, const char *accept,
                                health_answer_t *out) {
  return health_answer_render(h, what, check, authorization, accept, out, NULL);
}

HEALTH_EXPORT int health_add_listener(health_t *h, health_listener_fn fn, void *arg,
                                      health_error_t *err) {
  return health_listener_add(h, fn, arg, err);
}

HEALTH_EXPORT int health_set_fleet(health_t *h, const health_fleet_options_t *o,
                                   health_error_t *err) {
  return health_fleet_set(h, o, err);
}

HEALTH_EXPORT int health_set_serve_options(health_t *h, const health_serve_options_t *o,
                                           health_error_t *err) {
  return health_serve_set(h, o, err);
}

HEALTH_EXPORT int health_set_agent(health_t *h, const health_agent_options_t *o,
                                   health_error_t *err) {
  return health_agent_set(h, o, err);
}

HEALTH_EXPORT int health_set_not_ready(health_t *h, const char *reason, health_error_t *err) {
  return health_ready_hold(h, reason, err);
}

HEALTH_EXPORT int health_set_ready(health_t *h) { return health_ready_release(h, NULL); }

HEALTH_EXPORT int health_add_gate(health_t *h, const char *name, health_error_t *err) {
  return health_gate_add(h, name, err);
}

HEALTH_EXPORT int health_open_gate(health_t *h, const char *name) {
  return health_gate_open(h, name, NULL);
}

HEALTH_EXPORT int health_set_startup_deadline(health_t *h, unsigned deadline_ms,
                                              health_error_t *err) {
  return health_startup_set_deadline(h, deadline_ms, err);
}
