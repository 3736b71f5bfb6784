/* JSON log lines, one object per line: the calls the library logs with.
 * core/logfmt.c formats a line; core/logq.c takes it to the sink without ever making
 * the caller wait for it. */
#include "health_int.h"

#include <errno.h>
#include <string.h>

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
