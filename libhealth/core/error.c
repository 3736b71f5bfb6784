/* Error codes: one X-macro list in health.h generates every table here. */
#include "health_int.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

HEALTH_EXPORT const char *health_strerror(int code) {
  switch (code) {
    case HEALTH_OK: return "success";
#define HEALTH_XX_(name, val, text) \
  case HEALTH_##name: return text;
      HEALTH_ERRNO_MAP(HEALTH_XX_)
#undef HEALTH_XX_
  }
  return "unknown error";
}

HEALTH_EXPORT const char *health_err_name(int code) {
  switch (code) {
    case HEALTH_OK: return "HEALTH_OK";
#define HEALTH_XX_(name, val, text) \
  case HEALTH_##name: return "HEALTH_" #name;
      HEALTH_ERRNO_MAP(HEALTH_XX_)
#undef HEALTH_XX_
  }
  return "HEALTH_UNKNOWN";
}

HEALTH_EXPORT const char *health_version(void) { return HEALTH_VERSION_STRING; }

int health__err(health_error_t *err, int code, const char *fmt, ...) {
  if (err) {
    err->code = code;
    if (fmt) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err->text, sizeof err->text, fmt, ap);
      va_end(ap);
    } else {
      snprintf(err->text, sizeof err->text, "%s", health_strerror(code));
    }
  }
  return code;
}

/* init_stamp took the first of four reserved pointers: the structs keep
 * their size and layout, so a program built against the older header
 * (that calls the init functions) still works. */
#define HEALTH__STAMP_LAYOUT(t)                                                           \
  _Static_assert(sizeof(uintptr_t) == sizeof(void *) &&                                   \
                     offsetof(t, reserved) == offsetof(t, init_stamp) + sizeof(void *) && \
                     sizeof(((t *)0)->reserved) == 3 * sizeof(void *),                    \
                 #t ": init_stamp must take exactly one reserved slot")
HEALTH__STAMP_LAYOUT(health_options_t);
HEALTH__STAMP_LAYOUT(health_check_options_t);
HEALTH__STAMP_LAYOUT(health_postgres_options_t);
HEALTH__STAMP_LAYOUT(health_redis_options_t);
HEALTH__STAMP_LAYOUT(health_serve_options_t);
HEALTH__STAMP_LAYOUT(health_fleet_options_t);
HEALTH__STAMP_LAYOUT(health_probe_options_t);
HEALTH__STAMP_LAYOUT(health_http_options_t);
HEALTH__STAMP_LAYOUT(health_disk_options_t);
HEALTH__STAMP_LAYOUT(health_memory_options_t);
HEALTH__STAMP_LAYOUT(health_fds_options_t);
HEALTH__STAMP_LAYOUT(health_agent_options_t);

int health__reserved_check(uintptr_t stamp, void *const *reserved, size_t n, const char *stem,
                           health_error_t *err) {
  if (stamp != HEALTH__INIT_STAMP)
    return health__err(err, HEALTH_EINVAL, "%s_t was not initialised: call %s_init() first", stem,
                       stem);
  for (size_t i = 0; i < n; i++)
    if (reserved[i])
      return health__err(err, HEALTH_EINVAL,
                         "%s_t: reserved fields must stay zero (fill the struct with %s_init)",
                         stem, stem);
  return 0;
}
