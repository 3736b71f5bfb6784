/* JSON log lines, one object per line.  This file formats them; logq.c
 * takes them to the sink without ever making the caller wait for it. */
#include "health-int.h"

#include <errno.h>
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
  health__buf_printf(b, "{\"ts\":\"%s\",\"mono_ms\":%llu.%03u,\"level\":\"%s\",\"lib\":\"libhealth\",\"event\":\"",
                     ts, (unsigned long long)(us / 1000), (unsigned)(us % 1000),
                     level_name(level));
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

void health__logv(const health_t *h, health_log_level_t level, const char *event, va_list ap) {
  health__logv_extra(h, level, event, NULL, ap);
}

void health__logv_extra(const health_t *h, health_log_level_t level, const char *event,
                        const char *extra, va_list ap) {
  health_log_level_t min = h ? h->opt.log_level : HEALTH_LOG_INFO;
  if (level < min || level >= HEALTH_LOG_OFF) return;
  int saved = errno;
  health__buf_t b;
  health__buf_init(&b);
  health__log_formatv(&b, level, event, extra, ap);
  if (b.failed) {
  } else if (h && !h->core.logq && h->opt.log_fn) { /* a handle being made or freed */
    h->opt.log_fn(level, b.data, h->opt.log_arg);
  } else {
    health__logq_put(h ? h->core.logq : NULL, level, &b);
  }
  health__buf_free(&b);
  errno = saved;
}

void health__log(const health_t *h, health_log_level_t level, const char *event, ...) {
  va_list ap;
  va_start(ap, event);
  health__logv(h, level, event, ap);
  va_end(ap);
}

int health__log_flush(health_t *h, uint64_t until_mono_ms) {
  return h ? health__logq_flush(h->core.logq, until_mono_ms) : 0;
}

unsigned long long health__log_dropped(const health_t *h) {
  return h ? health__logq_dropped(h->core.logq) : 0;
}
