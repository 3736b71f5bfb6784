/* The JSON log line's format (for core/log.c, and core/logq.c's own log_dropped
 * line): {"ts":...,"mono_ms":...,"level":...,"lib":"libhealth","event":...}.
 * Integers only besides the strings: no locale can change a byte. */
#include "health_int.h"

#include <string.h>

static const char *level_name(health_log_level_t l) {
  switch (l) {
    case HEALTH_LOG_DEBUG: return "debug";
    case HEALTH_LOG_INFO: return "info";
    case HEALTH_LOG_WARN: return "warn";
    case HEALTH_LOG_ERROR: return "error";
    default: return "off";
  }
}

void health__log_formatv(health__buf_t *b, health_log_level_t level, const char *event,
                         const char *extra, va_list ap) {
  char ts[40];
  health__rfc3339(health__wall_ms(), ts, sizeof ts);
  uint64_t us = health__now_us();
  health__buf_printf(
      b, "{\"ts\":\"%s\",\"mono_ms\":%llu.%03u,\"level\":\"%s\",\"lib\":\"libhealth\",\"event\":\"",
      ts, (unsigned long long)(us / 1000), (unsigned)(us % 1000), level_name(level));
  health__buf_json_str(b, event, strlen(event));
  health__buf_adds(b, "\"");
  const char *key;
  while ((key = va_arg(ap, const char *)) != NULL) {
    const char *val = va_arg(ap, const char *);
    int raw = key[0] == '#';
    if (raw) key++;
    health__buf_adds(b, ",\"");
    health__buf_json_str(b, key, strlen(key));
    health__buf_adds(b, "\":");
    if (!val) {
      health__buf_adds(b, "null");
    } else if (raw) {
      health__buf_adds(b, val);
    } else {
      health__buf_adds(b, "\"");
      health__buf_json_str(b, val, strlen(val));
      health__buf_adds(b, "\"");
    }
  }
  if (extra) health__buf_adds(b, extra);
  health__buf_adds(b, "}");
}

void health__log_format(health__buf_t *b, health_log_level_t level, const char *event,
                        const char *extra, ...) {
  va_list ap;
  va_start(ap, extra);
  health__log_formatv(b, level, event, extra, ap);
  va_end(ap);
}
