/*
 * Descriptors for the health port's connections (the connection guard,
 * http/guard.c): the soft RLIMIT_NOFILE is raised as far as the guard's table
 * needs, never above the hard limit nor the application's ceiling
 * (health_fds_set_limit(), HEALTH_NOFILE_MAX through health_config_from_env()).
 */
#include "health_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define FD_MARGIN 64 /* listen, epoll, ITC, reserve, threads, and the application's growth */

/* Descriptors open now (Linux: /proc/self/fd), or a guess. */
static unsigned fds_in_use(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 64;
  unsigned n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n > 3 ? n - 3 : n; /* ".", "..", and the directory's own fd */
}

/* Room for `want` connections: raise the soft limit as far as the table
 * needs, within the hard limit and the application's ceiling.  Returns how
 * many descriptors connections may use. */
unsigned health__guard_fd_room(health_t *h, unsigned want) {
  struct rlimit rl;
  unsigned in_use = fds_in_use();
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
  rlim_t need = (rlim_t)in_use + want + FD_MARGIN;
  unsigned long ceiling = h->http.nofile_set ? h->http.nofile_max : HEALTH__NOFILE_HARD;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && ceiling != 0) {
    rlim_t to = need;
    if (rl.rlim_max != RLIM_INFINITY && to > rl.rlim_max) to = rl.rlim_max;
    if (ceiling != HEALTH__NOFILE_HARD && to > (rlim_t)ceiling) to = (rlim_t)ceiling;
    if (to > rl.rlim_cur) {
      struct rlimit nl = {to, rl.rlim_max};
      char from_s[24], to_s[24];
      snprintf(from_s, sizeof from_s, "%llu", (unsigned long long)rl.rlim_cur);
      snprintf(to_s, sizeof to_s, "%llu", (unsigned long long)to);
      if (setrlimit(RLIMIT_NOFILE, &nl) == 0) {
        health__log(h, HEALTH_LOG_INFO, "nofile_raised", "#from", from_s, "#to", to_s, NULL);
        rl.rlim_cur = to;
      }
    }
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return want;
  rlim_t room =
      rl.rlim_cur > (rlim_t)in_use + FD_MARGIN + 16 ? rl.rlim_cur - in_use - FD_MARGIN : 16;
  return (unsigned)room;
}

HEALTH_EXPORT int health_fds_set_limit(health_t *h, unsigned long max_soft, health_error_t *err) {
  if (!h) return health__err(err, HEALTH_EINVAL, "health_fds_set_limit: handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  pthread_mutex_lock(&h->lock);
  int st = h->state;
  if (st == HEALTH__ST_NEW) {
    h->http.nofile_max = max_soft;
    h->http.nofile_set = 1;
  }
  pthread_mutex_unlock(&h->lock);
  if (st != HEALTH__ST_NEW)
    return health__err(err, HEALTH_ESTATE, "health_fds_set_limit: only before health_start");
  return 0;
}

/* HEALTH_NOFILE_MAX (read by health_config_from_env, config.c). */
int health__nofile_from_lookup(health__lookup_fn lookup, void *arg, int *set, unsigned long *max,
                               health_error_t *err) {
  const char *v = lookup("HEALTH_NOFILE_MAX", arg);
  *set = 0;
  if (!v || !*v) return 0;
  if (strcmp(v, "hard") == 0) {
    *max = HEALTH__NOFILE_HARD;
    *set = 1;
    return 0;
  }
  /* The strict parser every number of the environment goes through: digits
   * only (no sign, no space, no hex); at most the kernel's own ceiling for
   * a process's descriptors (fs.nr_open cannot exceed 1 << 30). */
  unsigned n;
  if (health__env_uint(v, 0, 1UL << 30, &n) != 0)
    return health__err(
        err, HEALTH_EINVAL,
        "HEALTH_NOFILE_MAX='%.40s': want a number of descriptors (0-1073741824), 0 or 'hard'", v);
  *max = n;
  *set = 1;
  return 0;
}
