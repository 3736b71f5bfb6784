/*
 * The TCP checker: open a connection to host:port and close it.  The name
 * lookup runs on a thread the run can walk away from (core/resolve.c), so the
 * deadline holds in every phase; the host is resolved on every run, so a
 * moved service is followed.
 */
#include "checkers/checker.h"

#include "checkers/target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct tcp_state {
  health__checker_t *ck; /* the handle, the name, the timeout (checkers/checker.h) */
  health__hostport_t hp;
} tcp_state_t;

static void tcp_free(void *arg) {
  tcp_state_t *st = arg;
  if (!st) return;
  health__hostport_free(&st->hp);
  health__checker_free(st->ck);
  free(st);
}

static void tcp_run(health_result_t *r, void *arg) {
  tcp_state_t *st = arg;
  uint64_t deadline = health__checker_deadline(r);
  uint64_t t0 = health__now_us();
  const char *phase = "dns";
  char why[160] = "";
  int fd = health__net_connect(st->ck, r, &st->hp, deadline, &phase, why, sizeof why);
  if (fd >= 0) {
    double ms = (double)(health__now_us() - t0) / 1000.0;
    close(fd);
    health__checker_pass(r, ms);
    return;
  }
  if (fd == HEALTH__IO_TIMEOUT) {
    char note[64];
    snprintf(note, sizeof note, "%s", why);
    health__checker_timeout_text(st->ck, phase, why, sizeof why);
    if (note[0]) snprintf(why + strlen(why), sizeof why - strlen(why), ": %s", note);
  }
  health__checker_log(st->ck, HEALTH_LOG_DEBUG, "tcp_check_failed", "check",
                      health__checker_name(st->ck), "phase", phase, "output", why, NULL);
  health_result_set(r, HEALTH_FAIL, "%s", why);
}

HEALTH_EXPORT int health_tcp_add(health_t *h, const char *name, const char *target,
                                 const health_check_options_t *opts, health_error_t *err) {
  if (!h || !name || !target)
    return health__err(err, HEALTH_EINVAL, "health_tcp_add: handle, name and target are required");
  const char *t = target, *why = NULL;
  if (strncasecmp(t, "tcp://", 6) == 0) t += 6;
  else if (strstr(t, "://"))
    return health__err(err, HEALTH_EURL,
                       "check '%.64s': TCP target must be host:port or tcp://host:port", name);
  size_t n = strlen(t);
  if (n && t[n - 1] == '/') n--;
  tcp_state_t *st = calloc(1, sizeof *st);
  if (!st) return health__err(err, HEALTH_ENOMEM, "out of memory");
  if (!(st->ck = health__checker_new(h, name))) {
    tcp_free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  int rc = health__hostport_parse(t, n, 0, &st->hp, &why);
  if (rc) {
    tcp_free(st);
    return health__err(err, rc, "check '%.64s': invalid TCP target: %s", name, why);
  }
  rc = health__checker_add(st->ck, tcp_run, st, tcp_free, opts, "component", err);
  if (rc) tcp_free(st);
  return rc;
}
