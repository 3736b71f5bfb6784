/*
 * Rendering of the IETF "Health Check Response Format for HTTP APIs"
 * (application/health+json).  Called with h->lock held, once per change of
 * state (http/server.c caches the result), never once per request.  A check is
 * rendered from the view the engine fills (health__check_view_locked()):
 * its status, word and output are decided there, not here.
 */
#include "health_int.h"

#include <string.h>

static void add_str_field(health__buf_t *b, const char *key, const char *val) {
  health__buf_printf(b, ",\"%s\":\"", key);
  health__buf_json_str(b, val, strlen(val));
  health__buf_adds(b, "\"");
}

void health__render_check_locked(health_t *h, const health__check_t *c, uint64_t now,
                                 health__buf_t *b) {
  health__check_view_t v;
  health__check_view_locked(h, c, now, &v); /* the engine decides the status and its word */
  health__buf_adds(b, "\"");
  health__buf_json_str(b, v.key, strlen(v.key));
  health__buf_adds(b, "\":[{\"componentType\":\"");
  health__buf_json_str(b, v.component_type, strlen(v.component_type));
  health__buf_adds(b, "\"");
  if (v.component_id) add_str_field(b, "componentId", v.component_id);
  if (v.has_observed) {
    health__buf_adds(b, ",\"observedValue\":");
    health__buf_double(b, v.observed_value); /* locale-proof, shortest round trip */
    if (v.observed_unit[0]) add_str_field(b, "observedUnit", v.observed_unit);
  }
  health__buf_printf(b, ",\"status\":\"%s\"", v.word);
  if (v.has_result) {
    char ts[40];
    health__rfc3339(v.result_wall_ms, ts, sizeof ts);
    add_str_field(b, "time", ts);
  }
  if (!v.critical) health__buf_adds(b, ",\"critical\":false");
  if (v.output) {
    size_t n = strlen(v.output);
    if (n > h->opt.max_output_bytes) n = h->opt.max_output_bytes;
    health__buf_adds(b, ",\"output\":\"");
    health__buf_json_str(b, v.output, n);
    health__buf_adds(b, "\"");
  }
  health__buf_adds(b, "}]");
}

unsigned health__render_locked(health_t *h, unsigned endpoint, int status_only, uint64_t now,
                               health__buf_t *b, uint64_t *valid_until_ms) {
  health_status_t st = health__aggregate_locked(h, endpoint, now, valid_until_ms);
  int draining = endpoint == HEALTH_READINESS && health__draining(h);
  health__buf_printf(b, "{\"status\":\"%s\"", health__status_word(st));
  if (!status_only) {
    if (h->service_version) add_str_field(b, "version", h->service_version);
    if (h->service_id) add_str_field(b, "serviceId", h->service_id);
    if (h->description) add_str_field(b, "description", h->description);
  }
  if (draining) {
    health__buf_adds(b, ",\"output\":\"draining\"");
    if (!status_only)
      health__buf_adds(b, ",\"notes\":[\"shutdown in progress: not accepting new work\"]");
  } else if (!status_only) {
    health__controls_render_output_locked(h, endpoint, b); /* controls/readiness.c */
  }
  if (!status_only) {
    health__buf_adds(b, ",\"checks\":{");
    int first = 1;
    const health__check_t *c;
    for (size_t i = 0; (c = health__check_at_locked(h, i)); i++) {
      if (!(c->endpoints & endpoint)) continue;
      if (!first) health__buf_adds(b, ",");
      first = 0;
      health__render_check_locked(h, c, now, b);
    }
    health__controls_render_entries_locked(h, endpoint, now, b, &first); /* controls/readiness.c */
    health__buf_adds(b, "}");
  }
  health__buf_adds(b, "}\n");
  return st == HEALTH_FAIL ? 503 : 200;
}
