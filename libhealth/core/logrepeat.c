/*
 * Identical log lines once: a check that flaps, or a checker that meets the
 * same wrong password every interval, would otherwise write the same lines
 * forever on every task of a fleet.  A line is printed; copies of it within
 * a minute are demoted to debug (dropped if they were debug) and counted;
 * the count goes out with the next copy printed after the minute
 * ("repeated": N) or, at stop, as a "log_repeated" summary.  Digits are
 * ignored in the comparison: "backlog 10234" and "backlog 10301" are the
 * same news.
 */
#include "health_int.h"

#include <stdio.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const char *s) {
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= '0' && c <= '9') { /* a run of digits counts as one '#' */
      c = '#';
      while (s[1] >= '0' && s[1] <= '9') s++;
    }
    h = (h ^ c) * 0x100000001b3ull;
  }
  return (h ^ 0xFF) * 0x100000001b3ull; /* field separator */
}

void health__log_repeat(const health_t *h, health__repeat_t *r, const char *subject,
                        health_log_level_t level, const char *event, ...) {
  va_list ap;
  va_start(ap, event);
  health__log_repeatv(h, r, subject, level, event, ap);
  va_end(ap);
}

void health__log_repeatv(const health_t *h, health__repeat_t *r, const char *subject,
                         health_log_level_t level, const char *event, va_list ap) {
  va_list cp;
  va_copy(cp, ap);
  uint64_t hash = fnv(0xcbf29ce484222325ull, event);
  const char *k;
  while ((k = va_arg(cp, const char *)) != NULL) {
    hash = fnv(hash, k);
    hash = fnv(hash, va_arg(cp, const char *));
  }
  va_end(cp);
  if (!hash) hash = 1;
  if (subject) snprintf(r->subject, sizeof r->subject, "%s", subject);
  uint64_t now = health__now_ms();
  int i = 0;
  while (i < HEALTH__REPEAT_SLOTS && r->slot[i].hash != hash) i++;
  if (i < HEALTH__REPEAT_SLOTS && now - r->slot[i].printed_ms < HEALTH__REPEAT_WINDOW_MS) {
    r->slot[i].suppressed++;
    if (level > HEALTH_LOG_DEBUG)
      health__logv_extra(h, HEALTH_LOG_DEBUG, event, ",\"repeat\":true", ap);
    return;
  }
  char extra[48] = "";
  if (i < HEALTH__REPEAT_SLOTS && r->slot[i].suppressed)
    snprintf(extra, sizeof extra, ",\"repeated\":%u", r->slot[i].suppressed);
  health__logv_extra(h, level, event, extra[0] ? extra : NULL, ap);
  if (i == HEALTH__REPEAT_SLOTS) {
    i = (int)(r->next++ % HEALTH__REPEAT_SLOTS);
    if (r->slot[i].hash && r->slot[i].suppressed) { /* evicted with a count: say so */
      char n[24];
      snprintf(n, sizeof n, "%u", r->slot[i].suppressed);
      health__log(h, r->slot[i].level, "log_repeated", "of", r->slot[i].event, "subject",
                  r->subject, "#repeated", n, NULL);
    }
  }
  r->slot[i].hash = hash;
  r->slot[i].printed_ms = now;
  r->slot[i].suppressed = 0;
  r->slot[i].level = level;
  snprintf(r->slot[i].event, sizeof r->slot[i].event, "%s", event);
}

void health__repeat_flush(const health_t *h, health__repeat_t *r) {
  for (int i = 0; i < HEALTH__REPEAT_SLOTS; i++) {
    if (!r->slot[i].hash || !r->slot[i].suppressed) continue;
    char n[24], ms[24];
    snprintf(n, sizeof n, "%u", r->slot[i].suppressed);
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)(health__now_ms() - r->slot[i].printed_ms));
    health__log(h, r->slot[i].level, "log_repeated", "of", r->slot[i].event, "subject", r->subject,
                "#repeated", n, "#since_ms", ms, NULL);
    r->slot[i].suppressed = 0;
  }
}
