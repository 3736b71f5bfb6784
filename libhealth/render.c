/*
 * Rendering of the IETF "Health Check Response Format for HTTP APIs"
 * (application/health+json).  Called with h->lock held, once per change of
 * state (http.c caches the result), never once per request.
 */
#include "health-int.h"

#include <math.h>
#include <string.h>

static void add_str_field(health__buf_t *b, const char *key, const char *val) {
  health__buf_printf(b, ",\"%s\":\"", key);
  health__buf_json_str(b, val, strlen(val));
  health__buf_adds(b, "\"");
}

static const char *word(health_status_t s) {
  return s == HEALTH_PASS ? "pass" : s == HEALTH_WARN ? "warn" : "fail";
}

void health__render_check_locked(health_t *h, const health__check_t *c, uint64_t now,
                                 health__buf_t *b) {
  const char *why;
  health_status_t s = health__check_status_locked(h, c, now, &why);
  if (s == HEALTH_PENDING) s = HEALTH_FAIL;
  if (s == HEALTH_FAIL && !c->critical) s = HEALTH_WARN;
  health__buf_adds(b, "\"");
  health__buf_json_str(b, c->key, strlen(c->key));
  health__buf_adds(b, "\":[{\"componentType\":\"");
  health__buf_json_str(b, c->component_type, strlen(c->component_type));
  health__buf_adds(b, "\"");
  if (c->component_id) add_str_field(b, "componentId", c->component_id);
  if (c->effective != HEALTH_PENDING && c->has_observed && isfinite(c->observed_value)) {
    health__buf_adds(b, ",\"observedValue\":");
    health__buf_double(b, c->observed_value); /* locale-proof, shortest round trip */
    if (c->observed_unit[0]) add_str_field(b, "observedUnit", c->observed_unit);
  }
  health__buf_printf(b, ",\"status\":\"%s\"", word(s));
  if (c->effective != HEALTH_PENDING) {
    char ts[40];
    health__rfc3339(c->result_wall_ms, ts, sizeof ts);
    add_str_field(b, "time", ts);
  }
  if (!c->critical) health__buf_adds(b, ",\"critical\":false");
  const char *out = why ? why : c->output;
  if (out) {
    size_t n = strlen(out);
    if (n > h->opt.max_output_bytes) n = h->opt.max_output_bytes;
    health__buf_adds(b, ",\"output\":\"");
    health__buf_json_str(b, out, n);
    health__buf_adds(b, "\"");
  }
  health__buf_adds(b, "}]");
}

unsigned health__render_locked(health_t *h, unsigned endpoint, int status_only,
                               uint64_t now, health__buf_t *b,
                               uint64_t *valid_until_ms) {
  health_status_t st = health__aggregate_locked(h, endpoint, now, valid_until_ms);
  int draining = endpoint == HEALTH_READINESS && health__draining(h);
  health__buf_printf(b, "{\"status\":\"%s\"", word(st));
  if (!status_only) {
    if (h->service_version) add_str_field(b, "version", h->service_version);
    if (h->service_id) add_str_field(b, "serviceId", h->service_id);
    if (h->description) add_str_field(b, "description", h->description);
  }
  if (draining) {
    health__buf_adds(b, ",\"output\":\"draining\"");
    if (!status_only) health__buf_adds(b, ",\"notes\":[\"shutdown in progress: not accepting new work\"]");
  } else if (!status_only) {
    health__controls_render_output_locked(h, endpoint, b); /* readiness.c */
  }
  if (!status_only) {
    health__buf_adds(b, ",\"checks\":{");
    int first = 1;
    for (size_t i = 0; i < h->eng.nchecks; i++) {
      const health__check_t *c = h->eng.checks[i];
      if (!(c->endpoints & endpoint)) continue;
      if (!first) health__buf_adds(b, ",");
      first = 0;
      health__render_check_locked(h, c, now, b);
    }
    health__controls_render_entries_locked(h, endpoint, now, b, &first); /* readiness.c */
    health__buf_adds(b, "}");
  }
  health__buf_adds(b, "}\n");
  return st == HEALTH_FAIL ? 503 : 200;
}
