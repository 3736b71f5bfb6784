/* JSON log lines: one object per line, written with a single write() so
 * lines from different threads never interleave. */
#include "health-int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char *level_name(health_log_level_t l) {
  switch (l) {
    case HEALTH_LOG_DEBUG: return "debug";
    case HEALTH_LOG_INFO: return "info";
    case HEALTH_LOG_WARN: return "warn";
    case HEALTH_LOG_ERROR: return "error";
    default: return "off";
  }
}

static void stderr_sink(health_log_level_t level, const char *line, void *arg) {
  (void)level;
  (void)arg;
  size_t n = strlen(line);
  /* One write for line + newline: copy into a local buffer when it fits. */
  char small[2048];
  if (n + 1 <= sizeof small) {
    memcpy(small, line, n);
    small[n] = '\n';
    ssize_t w;
    do w = write(STDERR_FILENO, small, n + 1);
    while (w < 0 && errno == EINTR);
  } else {
    ssize_t w;
    do w = write(STDERR_FILENO, line, n);
    while (w < 0 && errno == EINTR);
    do w = write(STDERR_FILENO, "\n", 1);
    while (w < 0 && errno == EINTR);
  }
}

void health__logv(health_log_level_t min, health_log_fn fn, void *arg,
                  health_log_level_t level, const char *event, va_list ap) {
  health__logv_extra(min, fn, arg, level, event, NULL, ap);
}

void health__logv_extra(health_log_level_t min, health_log_fn fn, void *arg,
                        health_log_level_t level, const char *event, const char *extra,
                        va_list ap) {
  if (level < min || level >= HEALTH_LOG_OFF) return;
  if (!fn) fn = stderr_sink;
  int saved = errno;
  health__buf_t b;
  health__buf_init(&b);
  char ts[40];
  health__rfc3339(health__wall_ms(), ts, sizeof ts);
  uint64_t us = health__now_us();
  health__buf_printf(&b, "{\"ts\":\"%s\",\"mono_ms\":%llu.%03u,\"level\":\"%s\",\"lib\":\"libhealth\",\"event\":\"",
                     ts, (unsigned long long)(us / 1000), (unsigned)(us % 1000),
                     level_name(level));
  health__buf_json_str(&b, event, strlen(event));
  health__buf_adds(&b, "\"");
  const char *key;
  while ((key = va_arg(ap, const char *)) != NULL) {
    const char *val = va_arg(ap, const char *);
    int raw = key[0] == '#';
    if (raw) key++;
    health__buf_adds(&b, ",\"");
    health__buf_json_str(&b, key, strlen(key));
    health__buf_adds(&b, "\":");
    if (!val) {
      health__buf_adds(&b, "null");
    } else if (raw) {
      health__buf_adds(&b, val);
    } else {
      health__buf_adds(&b, "\"");
      health__buf_json_str(&b, val, strlen(val));
      health__buf_adds(&b, "\"");
    }
  }
  if (extra) health__buf_adds(&b, extra);
  health__buf_adds(&b, "}");
  if (!b.failed) fn(level, b.data, arg);
  health__buf_free(&b);
  errno = saved;
}

void health__log(const health_t *h, health_log_level_t level, const char *event,
                 ...) {
  va_list ap;
  va_start(ap, event);
  if (h)
    health__logv(h->opt.log_level, h->opt.log_fn, h->opt.log_arg, level, event, ap);
  else
    health__logv(HEALTH_LOG_INFO, NULL, NULL, level, event, ap);
  va_end(ap);
}
