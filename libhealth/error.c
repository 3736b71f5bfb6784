/* Error codes: one X-macro list in health.h generates every table here. */
#include "health-int.h"

#include <stdio.h>
#include <string.h>

HEALTH_EXPORT const char *health_strerror(int code) {
  switch (code) {
    case HEALTH_OK: return "success";
#define HEALTH_XX_(name, val, text) \
  case HEALTH_##name:               \
    return text;
      HEALTH_ERRNO_MAP(HEALTH_XX_)
#undef HEALTH_XX_
  }
  return "unknown error";
}

HEALTH_EXPORT const char *health_err_name(int code) {
  switch (code) {
    case HEALTH_OK: return "HEALTH_OK";
#define HEALTH_XX_(name, val, text) \
  case HEALTH_##name:               \
    return "HEALTH_" #name;
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

int health__reserved_check(uintptr_t stamp, void *const *reserved, size_t n, const char *stem,
                           health_error_t *err) {
  if (stamp != HEALTH__INIT_STAMP)
    return health__err(err, HEALTH_EINVAL, "%s_t was not initialised: call %s_init() first", stem,
                       stem);
  for (size_t i = 0; i < n; i++)
    if (reserved[i])
      return health__err(err, HEALTH_EINVAL,
                         "%s_t: reserved fields must stay zero (fill the struct with %s_init)", stem,
                         stem);
  return 0;
}
