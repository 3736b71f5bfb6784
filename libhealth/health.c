/* Handle lifecycle: new, start, stop, free. */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int copy_str(char **dst, const char *src) {
  *dst = NULL;
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : -1;
}

static void free_final(health_t *h);

HEALTH_EXPORT int health_new(health_t **out, const health_options_t *opts, health_error_t *err) {
  if (!out) return health__err(err, HEALTH_EINVAL, "health_new: out is NULL");
  *out = NULL;
  health_options_t o;
  if (opts) o = *opts;
  else health_options_init(&o);
  int rc = HEALTH__RESERVED_CHECK(&o, "health_options", err);
  if (rc) return rc;
  rc = health__options_validate(&o, 0, err);
  if (rc) return rc;
  /* Unset: the drain never ends early, whatever drain_ms was set to. */
  if (o.drain_min_ms == HEALTH_DRAIN_MIN_UNSET) o.drain_min_ms = o.drain_ms;

  health_t *h = calloc(1, sizeof *h);
  if (!h) return health__err(err, HEALTH_ENOMEM, "out of memory");
  h->opt = o;
  h->core.free_final = free_final; /* for the last abandoned worker */
  /* First the parts whose fields say "none" with -1, so the handle can be
   * freed from here on: notify/sd_notify.c never fails, shutdown/shutdown.c marks its pipes
   * before it may. */
  health__notify_init(h);
  int sd_rc = health__shutdown_init(h);
  health__fork_register(h); /* fork.c: from here on a child's copy is inert */
  health__fleet_init(h);
  if (copy_str(&h->address, o.address) || copy_str(&h->detail_token, o.detail_token) ||
      copy_str(&h->service_id, o.service_id) || copy_str(&h->service_version, o.service_version) ||
      copy_str(&h->description, o.description))
    goto nomem;
  /* The copies replace the caller's pointers, which may be freed now. */
  h->opt.address = h->address;
  h->opt.detail_token = h->detail_token;
  h->opt.service_id = h->service_id;
  h->opt.service_version = h->service_version;
  h->opt.description = h->description;

  if (sd_rc != 0) goto nomem;
  if (health__core_init(h) != 0) goto nomem;   /* h->lock (core/core.c) */
  if (health__engine_init(h) != 0) goto nomem; /* engine/scheduler.c */
  if (health__obs_new(h) != 0) goto nomem;
  if (health__controls_init(h) != 0) goto nomem; /* controls/readiness.c */
  *out = h;
  return 0;

nomem:
  free_final(h);
  return health__err(err, HEALTH_ENOMEM, "out of memory creating the handle");
}

HEALTH_EXPORT int health_start(health_t *h, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_start: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED,
                       "health_start: the handle belongs to the parent process");
  pthread_mutex_lock(&h->lock);
  int st = h->state;
  pthread_mutex_unlock(&h->lock);
  if (st != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "health_start: already started or stopped");
  /* The shutdown plan first: an impossible one leaves the handle as it was. */
  health__plan_t plan;
  int rc = health__plan_derive(h, &plan, err);
  if (rc) return rc;
  pthread_mutex_lock(&h->lock);
  st = h->state;
  if (st == HEALTH__ST_NEW) h->state = HEALTH__ST_STARTED;
  pthread_mutex_unlock(&h->lock);
  if (st != HEALTH__ST_NEW) {
    health__plan_free(&plan);
    return health__err(err, HEALTH_ESTATE, "health_start: already started or stopped");
  }

  /* The log writer first: from here no line waits for the sink (core/logq.c).
   * Listeners next: they must see the first transitions of the checks.
   * The checks last: a start that fails has run none (and so told no
   * listener anything), and health_stop() joins every thread made. */
  if (health__core_start_log(h) != 0)
    rc =
        health__err(err, HEALTH_ESYS, "could not start the log writer thread: %s", strerror(errno));
  if (rc == 0) rc = health__obs_start(h, err);       /* http/answer_cache.c: answer cache */
  if (rc == 0) rc = health__listeners_start(h, err); /* notify/listeners.c */
  if (rc == 0) rc = health__controls_start(h, err);  /* controls/readiness.c: sets the start time */
  /* The signal handlers before any port opens: a supervisor that sends
   * SIGTERM as soon as the port answers must find them installed. */
  if (rc == 0) rc = health__shutdown_start(h, err); /* + the hook runner and the watchdog */
  if (rc == 0) rc = health__agent_start(h, err);    /* controls/agent.c */
  if (rc == 0 && h->opt.port != HEALTH_PORT_OFF) rc = health__http_start(h, err);
  else if (rc == 0)
    health__log(h, HEALTH_LOG_INFO, "http_off", "reason",
                "HEALTH_PORT=off: no health port; the application serves health_answer_render()",
                NULL);
  if (rc == 0 && health__notify_start(h) != 0)
    rc = health__err(err, HEALTH_ESYS, "could not start the systemd watchdog thread");
  if (rc == 0) rc = health__checks_start(h, err);
  if (rc != 0) {
    health__plan_free(&plan);
    health_stop(h);
    return rc;
  }
  /* A child of fork() closes its copies of these (fork.c). */
  health__fork_listening(h, health__http_listen_fd(h), health__agent_listen_fd(h));
  char n[24];
  snprintf(n, sizeof n, "%zu", health__checks_count_locked(h));
  health__log(h, HEALTH_LOG_INFO, "started", "version", HEALTH_VERSION_STRING, "#checks", n, NULL);
  health__plan_log(h, &plan, 0);
  health__plan_warn(h, &plan);
  health__plan_free(&plan);
  return 0;
}

HEALTH_EXPORT void health_stop(health_t *h) {
  if (!h || health__forked(h)) return; /* the threads are the parent's */
  pthread_mutex_lock(&h->lock);
  int st = h->state;
  h->state = HEALTH__ST_STOPPED;
  pthread_mutex_unlock(&h->lock);
  if (st != HEALTH__ST_STARTED) return;
  health__fork_listening(h, -1, -1); /* about to be closed: a child leaves them */
  /* The shutdown thread first: it may be using everything below.  One
   * blocked for good after the watchdog answered health_wait() (a drain
   * callback or a hook run on it that never returns) may still use all of
   * it: the handle is left running, to the process's exit. */
  if (health__shutdown_stop(h) != 0) {
    char ms[24];
    snprintf(ms, sizeof ms, "%u", HEALTH__STOP_LEAVE_MS);
    health__log(h, HEALTH_LOG_ERROR, "stop_incomplete", "#waited_ms", ms, "reason",
                "the shutdown sequence is still blocked after its deadline; the handle is left "
                "running (nothing is stopped or freed) until the process exits",
                NULL);
    /* The writer keeps running too: give the line a moment to get out
     * before the application exits. */
    health__log_flush(h, health__now_ms() + 200);
    return;
  }
  health__notify_stop(h);
  health__agent_stop(h);
  health__controls_stop(h); /* controls/readiness.c */
  health__http_stop(h);
  health__checks_stop(h);
  health__listeners_stop(h); /* after the engine: every transition is told */
  health__core_stop_log(h);  /* last: the lines of the stop are written */
}

HEALTH_EXPORT void health_free(health_t *h) {
  if (!h) return;
  /* In a child after fork(): its copies of the listening sockets and pipes
   * were closed at fork(); everything else (threads, locks, checker
   * connections) is the parent's, so nothing is walked or freed (fork.c
   * keeps the copy reachable until the child exits). */
  if (health__forked(h)) return;
  health_stop(h);
  if (health__shutdown_left(h)) return; /* still in use: see health_stop() */
  /* A hung check still runs on a worker: the last worker frees. */
  if (health__engine_defer_free(h)) return; /* engine/scheduler.c */
  free_final(h);
}

static void free_final(health_t *h) {
  health__fork_unregister(h); /* fork.c */
  health__obs_free(h);        /* before the checks: cached answers name them */
  health__checks_free(h);
  health__shutdown_free(h);
  health__controls_free(h); /* controls/readiness.c */
  health__notify_free(h);   /* notify/sd_notify.c */
  health__core_free(h);
  free(h->address);
  free(h->detail_token);
  free(h->service_id);
  free(h->service_version);
  free(h->description);
  free(h);
}
