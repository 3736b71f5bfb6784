/*
 * The shutdown plan: the one place where the options turn into a timeline.
 *
 *   t = 0                     SIGTERM (or health_shutdown()): readiness 503
 *   t = drain_min             earliest end of the drain, once nothing is in
 *                             flight (only if drain_min < drain)
 *   t = drain                 the drain ends; hooks run in order
 *   hook i                    starts at the latest at drain + the timeouts of
 *                             the hooks before it, and gets min(its timeout,
 *                             deadline - that start): its budget
 *   t = deadline              exit, whatever still runs (code 5)
 *
 * health_start() derives it (an impossible plan is an error naming the
 * fields), logs it once as "shutdown_plan" with a warn line per hook the
 * deadline may cut, and the shutdown thread logs it again at the signal,
 * with absolute (monotonic and wall-clock) times.  The property test
 * (tests/check_timeline.c) holds the real sequence to this plan.
 */
#include "health_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hook_cmp(const void *a, const void *b) {
  const health__hook_t *x = *(health__hook_t *const *)a, *y = *(health__hook_t *const *)b;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void health__plan_sort_hooks(health__hook_t **hooks, size_t n) {
  if (n > 1) qsort(hooks, n, sizeof *hooks, hook_cmp);
}

int health__plan_derive(const health_t *h, health__plan_t *p, health_error_t *err) {
  memset(p, 0, sizeof *p);
  const health_options_t *o = &h->opt;
  unsigned drain_min = o->drain_min_ms == HEALTH_DRAIN_MIN_UNSET ? o->drain_ms : o->drain_min_ms;
  if (drain_min > o->drain_ms)
    return health__err(err, HEALTH_EINVAL,
                       "shutdown plan: HEALTH_DRAIN_MIN_MS (%u) exceeds HEALTH_DRAIN_MS (%u)",
                       drain_min, o->drain_ms);
  if (o->drain_ms >= o->shutdown_deadline_ms)
    return health__err(
        err, HEALTH_EINVAL,
        "shutdown plan: HEALTH_DRAIN_MS (%u) must be less than HEALTH_SHUTDOWN_DEADLINE_MS (%u), or no flush hook can run",
        o->drain_ms, o->shutdown_deadline_ms);
  p->drain_ms = o->drain_ms;
  p->drain_min_ms = drain_min;
  p->early = drain_min < o->drain_ms;
  p->deadline_ms = o->shutdown_deadline_ms;
  if (h->sd.nhooks) {
    p->hooks = calloc(h->sd.nhooks, sizeof *p->hooks);
    health__hook_t **sorted = malloc(h->sd.nhooks * sizeof *sorted);
    if (!p->hooks || !sorted) {
      free(sorted);
      free(p->hooks);
      p->hooks = NULL;
      return health__err(err, HEALTH_ENOMEM, "out of memory deriving the shutdown plan");
    }
    memcpy(sorted, h->sd.hooks, h->sd.nhooks * sizeof *sorted);
    health__plan_sort_hooks(sorted, h->sd.nhooks);
    uint64_t at = p->drain_ms;
    for (size_t i = 0; i < h->sd.nhooks; i++) {
      health__plan_hook_t *k = &p->hooks[i];
      k->hook = sorted[i];
      k->timeout_ms = sorted[i]->timeout_ms;
      k->latest_start_ms = at < p->deadline_ms ? (unsigned)at : p->deadline_ms;
      uint64_t left = p->deadline_ms - k->latest_start_ms;
      k->budget_ms = k->timeout_ms < left ? k->timeout_ms : (unsigned)left;
      at += k->timeout_ms;
    }
    free(sorted);
    p->nhooks = h->sd.nhooks;
    p->hooks_ms = at - p->drain_ms > UINT32_MAX ? UINT32_MAX : (unsigned)(at - p->drain_ms);
    p->worst_exit_ms = at < p->deadline_ms ? (unsigned)at : p->deadline_ms;
  } else {
    p->worst_exit_ms = p->drain_ms;
  }
  return 0;
}

void health__plan_free(health__plan_t *p) {
  free(p->hooks);
  p->hooks = NULL;
  p->nhooks = 0;
}

static void num(char *buf, size_t n, uint64_t v) {
  snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* t0 == 0: relative to the signal (at start); otherwise absolute. */
void health__plan_log(const health_t *h, const health__plan_t *p, uint64_t t0) {
  health__buf_t hooks;
  health__buf_init(&hooks);
  health__buf_adds(&hooks, "[");
  for (size_t i = 0; i < p->nhooks; i++) {
    const health__plan_hook_t *k = &p->hooks[i];
    health__buf_adds(&hooks, i ? ",{\"name\":\"" : "{\"name\":\"");
    health__buf_json_str(&hooks, k->hook->name, strlen(k->hook->name));
    health__buf_printf(&hooks, "\",\"order\":%d,\"timeout_ms\":%u,\"budget_ms\":%u", k->hook->order,
                       k->timeout_ms, k->budget_ms);
    if (t0)
      health__buf_printf(&hooks, ",\"latest_start_mono_ms\":%llu",
                         (unsigned long long)(t0 + k->latest_start_ms));
    else health__buf_printf(&hooks, ",\"latest_start_ms\":%u", k->latest_start_ms);
    health__buf_adds(&hooks, "}");
  }
  health__buf_adds(&hooks, "]");
  char drain[24], dmin[24], dl[24], hk[24], worst[24], early[96];
  num(drain, sizeof drain, t0 + p->drain_ms);
  num(dmin, sizeof dmin, t0 + p->drain_min_ms);
  num(dl, sizeof dl, t0 + p->deadline_ms);
  num(hk, sizeof hk, p->hooks_ms);
  num(worst, sizeof worst, t0 + p->worst_exit_ms);
  if (p->early)
    snprintf(early, sizeof early, "after %u ms once nothing is in flight", p->drain_min_ms);
  else snprintf(early, sizeof early, "never");
  const char *hooks_json = hooks.failed ? "[]" : hooks.data;
  if (!t0) {
    health__log(
        h, HEALTH_LOG_INFO, "shutdown_plan", "#drain_ms", drain, "#drain_min_ms", dmin,
        "drain_early_end", early, "#deadline_ms", dl, "#hooks_total_ms", hk, "#exit_by_ms", worst,
        "#hooks", hooks_json, "signals",
        "2nd ends the drain, hooks still run; 3rd exits at once (code 6); signals within 1000 ms count once",
        NULL);
  } else {
    char t[24], wall[40];
    num(t, sizeof t, t0);
    health__rfc3339(health__wall_ms() + (int64_t)p->deadline_ms - (int64_t)(health__now_ms() - t0),
                    wall, sizeof wall);
    health__log(h, HEALTH_LOG_INFO, "shutdown_plan", "at", "signal", "#signal_mono_ms", t,
                "#drain_end_mono_ms", drain, "#drain_min_end_mono_ms", p->early ? dmin : NULL,
                "drain_early_end", early, "#deadline_mono_ms", dl, "deadline_at", wall,
                "#exit_by_mono_ms", worst, "#hooks", hooks_json, NULL);
  }
  health__buf_free(&hooks);
}

void health__plan_warn(const health_t *h, const health__plan_t *p) {
  for (size_t i = 0; i < p->nhooks; i++) {
    const health__plan_hook_t *k = &p->hooks[i];
    if (k->budget_ms >= k->timeout_ms) continue;
    char msg[256], to[24], bu[24], cut[24], need[24];
    num(to, sizeof to, k->timeout_ms);
    num(bu, sizeof bu, k->budget_ms);
    num(cut, sizeof cut, k->timeout_ms - k->budget_ms);
    num(need, sizeof need, (uint64_t)k->latest_start_ms + k->timeout_ms);
    if (k->budget_ms == 0)
      snprintf(
          msg, sizeof msg,
          "hook '%s' may not run at all: if the drain and the hooks before it use their whole time, it starts at the deadline (%u ms)",
          k->hook->name, p->deadline_ms);
    else
      snprintf(
          msg, sizeof msg,
          "hook '%s' may be cut by %u ms: it may start as late as %u ms after the signal, leaving %u of its %u ms before the deadline (%u ms)",
          k->hook->name, k->timeout_ms - k->budget_ms, k->latest_start_ms, k->budget_ms,
          k->timeout_ms, p->deadline_ms);
    health__log(h, HEALTH_LOG_WARN, "shutdown_plan_risk", "hook", k->hook->name, "#timeout_ms", to,
                "#budget_ms", bu, "#cut_ms", cut, "#deadline_needed_ms", need, "message", msg,
                NULL);
  }
}
