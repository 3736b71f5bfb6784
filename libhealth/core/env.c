/*
 * Defaults, validation, and configuration from HEALTH_* environment
 * variables (ECS and Kubernetes inject configuration that way).  A
 * malformed value is an error naming the variable, never a silent default,
 * and a failed parse leaves the caller's options untouched.
 */
#include "health_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

HEALTH_EXPORT void health_options_init(health_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->address = "0.0.0.0";
  o->port = 8081;
  o->detail = HEALTH_DETAIL_FULL;
  o->max_connections = 128;
  o->max_connections_per_ip = 32;
  o->connection_timeout_s = 10;
  o->max_output_bytes = 512;
  o->check_interval_ms = 5000;
  o->check_timeout_ms = 2000;
  o->failure_threshold = 2;
  o->success_threshold = 1;
  o->handle_signals = 1;
  o->drain_ms = 15000;
  o->drain_min_ms = HEALTH_DRAIN_MIN_UNSET; /* = drain_ms, whatever it becomes */
  o->hook_timeout_ms = 5000;
  o->shutdown_deadline_ms = 25000;
  o->exit_on_shutdown = 1;
  o->log_level = HEALTH_LOG_INFO;
}

/* Every numeric option with its variable and range, so parsing and
 * validation share one table. */
typedef struct {
  const char *var;
  size_t offset;
  unsigned min, max;
} num_opt_t;

#define NUM(var, field, min, max) \
  { var, offsetof(health_options_t, field), min, max }
static const num_opt_t num_opts[] = {
    NUM("HEALTH_PORT", port, 0, 65535),
    NUM("HEALTH_MAX_CONNECTIONS", max_connections, 1, 100000),
    NUM("HEALTH_MAX_CONNECTIONS_PER_IP", max_connections_per_ip, 0, 100000),
    NUM("HEALTH_CONNECTION_TIMEOUT", connection_timeout_s, 1, 3600),
    NUM("HEALTH_MAX_OUTPUT", max_output_bytes, 16, HEALTH__OUTPUT_MAX),
    NUM("HEALTH_CHECK_INTERVAL_MS", check_interval_ms, 10, 86400000),
    NUM("HEALTH_CHECK_TIMEOUT_MS", check_timeout_ms, 1, 600000),
    NUM("HEALTH_FAILURE_THRESHOLD", failure_threshold, 1, 100),
    NUM("HEALTH_SUCCESS_THRESHOLD", success_threshold, 1, 100),
    NUM("HEALTH_DRAIN_MS", drain_ms, 0, 600000),
    NUM("HEALTH_DRAIN_MIN_MS", drain_min_ms, 0, 600000),
    NUM("HEALTH_HOOK_TIMEOUT_MS", hook_timeout_ms, 1, 600000),
    NUM("HEALTH_SHUTDOWN_DEADLINE_MS", shutdown_deadline_ms, 1, 900000),
};
#undef NUM

static unsigned *num_field(health_options_t *o, const num_opt_t *n) {
  return (unsigned *)((char *)o + n->offset);
}

static int printable(const char *s, size_t max) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
    if (*p < 0x20 || *p == 0x7F || n >= max) return 0;
  return 1;
}

/* Cross-field and range validation shared by health_new() and
 * health_options_from_env(); `env` names variables instead of fields. */
int health__options_validate(const health_options_t *o, int env, health_error_t *err) {
  for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++) {
    unsigned v = *num_field((health_options_t *)o, &num_opts[i]);
    if (num_opts[i].offset == offsetof(health_options_t, drain_min_ms) &&
        v == HEALTH_DRAIN_MIN_UNSET)
      continue; /* unset: follows the drain */
    if (num_opts[i].offset == offsetof(health_options_t, port) && v == HEALTH_PORT_OFF) continue;
    if (v < num_opts[i].min || v > num_opts[i].max)
      return health__err(err, HEALTH_EINVAL, "%s%s must be %u to %u (got %u)",
                         env ? "" : "option for ", num_opts[i].var, num_opts[i].min,
                         num_opts[i].max, v);
  }
  struct in6_addr a6;
  struct in_addr a4;
  if (!o->address ||
      (inet_pton(AF_INET, o->address, &a4) != 1 && inet_pton(AF_INET6, o->address, &a6) != 1))
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_ADDRESS must be an IPv4 or IPv6 address literal such as 0.0.0.0 or ::");
  if (o->detail != HEALTH_DETAIL_FULL && o->detail != HEALTH_DETAIL_STATUS &&
      o->detail != HEALTH_DETAIL_TOKEN)
    return health__err(err, HEALTH_EINVAL, "HEALTH_DETAIL must be full, status or token");
  if (o->detail == HEALTH_DETAIL_TOKEN &&
      (!o->detail_token || strlen(o->detail_token) < 8 || !printable(o->detail_token, 256)))
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_DETAIL=token needs HEALTH_DETAIL_TOKEN of 8-256 printable characters");
  const char *strs[][2] = {{"HEALTH_SERVICE_ID", o->service_id},
                           {"HEALTH_SERVICE_VERSION", o->service_version},
                           {"HEALTH_DESCRIPTION", o->description}};
  for (size_t i = 0; i < 3; i++)
    if (strs[i][1] && !printable(strs[i][1], 256))
      return health__err(err, HEALTH_EINVAL, "%s must be at most 256 printable characters",
                         strs[i][0]);
  /* A minimum above the window was once clamped in silence; a value the
   * program did not mean is better refused. */
  if (o->drain_min_ms != HEALTH_DRAIN_MIN_UNSET && o->drain_min_ms > o->drain_ms)
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_DRAIN_MIN_MS (%u) must not exceed HEALTH_DRAIN_MS (%u); leave it unset for a drain that never ends early",
        o->drain_min_ms, o->drain_ms);
  if (o->drain_ms >= o->shutdown_deadline_ms)
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_DRAIN_MS (%u) must be less than HEALTH_SHUTDOWN_DEADLINE_MS (%u), or the flush hooks never run",
        o->drain_ms, o->shutdown_deadline_ms);
  /* Booleans are 0 or 1: 7 is a bug in the caller, not "true". */
  if (o->handle_signals < HEALTH_SIGNALS_OFF || o->handle_signals > HEALTH_SIGNALS_REPLACE)
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_HANDLE_SIGNALS (handle_signals) must be 0 (off), 1 (chain) or 2 (replace) (got %d)",
        o->handle_signals);
  if (o->exit_on_shutdown != 0 && o->exit_on_shutdown != 1)
    return health__err(err, HEALTH_EINVAL, "HEALTH_EXIT (exit_on_shutdown) must be 0 or 1 (got %d)",
                       o->exit_on_shutdown);
  if (o->log_level < HEALTH_LOG_DEBUG || o->log_level > HEALTH_LOG_OFF)
    return health__err(err, HEALTH_EINVAL,
                       "HEALTH_LOG_LEVEL must be debug, info, warn, error or off");
  return 0;
}

const char *health__env_lookup(const char *name, void *arg) {
  (void)arg;
  return getenv(name);
}

HEALTH_EXPORT int health_options_from_env(health_options_t *opts, health_error_t *err) {
  return health__options_from_lookup(opts, health__env_lookup, NULL, err);
}

int health__options_from_lookup(health_options_t *opts, health__lookup_fn lookup, void *arg,
                                health_error_t *err) {
  if (!opts) return health__err(err, HEALTH_EINVAL, "options are required");
  int rrc = HEALTH__RESERVED_CHECK(opts, "health_options", err);
  if (rrc) return rrc;
  health_options_t o = *opts; /* work on a copy: all or nothing */
  const char *v;

  for (size_t i = 0; i < sizeof num_opts / sizeof num_opts[0]; i++) {
    const num_opt_t *n = &num_opts[i];
    if (!(v = lookup(n->var, arg)) || !*v) continue;
    if (n->offset == offsetof(health_options_t, port) && strcasecmp(v, "off") == 0) {
      o.port = HEALTH_PORT_OFF; /* no HTTP thread: the application serves health_answer_render() */
      continue;
    }
    unsigned x;
    if (health__env_uint(v, n->min, n->max, &x) < 0)
      return health__err(err, HEALTH_EINVAL, "%s='%.40s' is not a whole number from %u to %u%s",
                         n->var, v, n->min, n->max,
                         n->offset == offsetof(health_options_t, port) ? " (or off)" : "");
    *num_field(&o, n) = x;
  }

  if ((v = lookup("HEALTH_ADDRESS", arg)) && *v) o.address = v;
  if ((v = lookup("HEALTH_DETAIL", arg)) && *v) {
    if (strcasecmp(v, "full") == 0) o.detail = HEALTH_DETAIL_FULL;
    else if (strcasecmp(v, "status") == 0) o.detail = HEALTH_DETAIL_STATUS;
    else if (strcasecmp(v, "token") == 0) o.detail = HEALTH_DETAIL_TOKEN;
    else
      return health__err(err, HEALTH_EINVAL, "HEALTH_DETAIL='%.40s' must be full, status or token",
                         v);
  }
  if ((v = lookup("HEALTH_DETAIL_TOKEN", arg)) && *v) o.detail_token = v;
  if ((v = lookup("HEALTH_SERVICE_ID", arg)) && *v) o.service_id = v;
  if ((v = lookup("HEALTH_SERVICE_VERSION", arg)) && *v) o.service_version = v;
  if ((v = lookup("HEALTH_DESCRIPTION", arg)) && *v) o.description = v;
  const struct {
    const char *var;
    int *field;
  } bools[] = {{"HEALTH_HANDLE_SIGNALS", &o.handle_signals}, {"HEALTH_EXIT", &o.exit_on_shutdown}};
  for (size_t i = 0; i < 2; i++) {
    if (!(v = lookup(bools[i].var, arg)) || !*v) continue;
    if (i == 0 && strcasecmp(v, "chain") == 0) {
      o.handle_signals = HEALTH_SIGNALS_CHAIN;
      continue;
    }
    if (i == 0 && (strcasecmp(v, "replace") == 0 || strcmp(v, "2") == 0)) {
      o.handle_signals = HEALTH_SIGNALS_REPLACE;
      continue;
    }
    if (health__env_bool(v, bools[i].field) < 0)
      return health__err(err, HEALTH_EINVAL,
                         "%s='%.40s' must be 1/0, true/false, yes/no or on/off%s", bools[i].var, v,
                         i == 0 ? ", chain or replace" : "");
  }
  if ((v = lookup("HEALTH_LOG_LEVEL", arg)) && *v) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    int found = -1;
    for (int i = 0; i < 5; i++)
      if (strcasecmp(v, names[i]) == 0) found = i;
    if (found < 0)
      return health__err(err, HEALTH_EINVAL,
                         "HEALTH_LOG_LEVEL='%.40s' must be debug, info, warn, error or off", v);
    o.log_level = (health_log_level_t)found;
  }

  int rc = health__options_validate(&o, 1, err);
  if (rc) return rc;
  *opts = o;
  return 0;
}
