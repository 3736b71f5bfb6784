/*
 * Resource checkers: resident memory against the container's limit
 * (cgroup v2 memory.max and the OOM kills counted in memory.events; under
 * cgroup v1, memory.limit_in_bytes and memory.oom_control), and open file
 * descriptors against RLIMIT_NOFILE.  A container close to its memory
 * limit is killed without a word in the service's own logs; this check
 * says so while there is still time.
 *
 * The effective limit is the lowest limit of the process's cgroup and its
 * ancestors up to the mount (a task's limit is often set one level up, on
 * the task's cgroup, not the container's).  Which cgroup that is:
 * checkers/memory_cgroup.c.
 */
#include "checkers/memory.h"

#include "checkers/target.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

HEALTH_EXPORT void health_memory_options_init(health_memory_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->warn_percent = 80;
  o->fail_percent = 90;
  o->oom_kill = HEALTH_WARN;
}

HEALTH_EXPORT void health_fds_options_init(health_fds_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->warn_percent = 80;
  o->fail_percent = 90;
}

static int bad_thresholds(double warn, double fail) {
  return !(warn >= 0 && warn <= 100 && fail >= 0 && fail <= 100) || (warn && fail && warn > fail);
}

/* Status for a used percentage against "at or above" thresholds (0 = off). */
static health_status_t at_or_above(double pct, double warn, double fail) {
  if (fail > 0 && pct >= fail) return HEALTH_FAIL;
  if (warn > 0 && pct >= warn) return HEALTH_WARN;
  return HEALTH_PASS;
}

/* ---- memory ---- */

/* cgroup v1 has no "max": no limit is the largest page counter, about
 * 2^63; anything from 2^62 up is taken as none. */
#define V1_NO_LIMIT (1ULL << 62)

typedef struct mem_state {
  health__checker_t *ck;
  char *dir; /* the cgroup directory (memory.events) */
  char *top; /* walk memory.max up to here (== dir when given) */
  health_memory_options_t o;
  int given;       /* cgroup_dir was given: its memory.max must exist */
  int v1;          /* cgroup v1 file names */
  const char *why; /* no cgroup found: why the limit cannot be seen */
  int have_oom;
  unsigned long long oom_seen;
} mem_state_t;

static void mem_free(void *arg) {
  mem_state_t *st = arg;
  if (!st) return;
  free(st->dir);
  free(st->top);
  health__checker_free(st->ck);
  free(st);
}

/* Read a small file into buf; 0 or -1 (errno set). */
static int slurp(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, len - 1, f);
  int e = ferror(f);
  fclose(f);
  if (e) {
    errno = EIO;
    return -1;
  }
  buf[n] = 0;
  return 0;
}

static const char *limit_file(const mem_state_t *st) {
  return st->v1 ? "memory.limit_in_bytes" : "memory.max";
}

/* The lowest memory.max from dir up to top; 0 for none ("max" all the way
 * or no file), -1 when unreadable (errno set). */
static long long limit_of(const mem_state_t *st, uint64_t *limit) {
  char path[4096], buf[64];
  size_t tl = strlen(st->top);
  uint64_t best = 0;
  snprintf(path, sizeof path, "%s", st->dir);
  for (;;) {
    size_t pl = strlen(path);
    snprintf(path + pl, sizeof path - pl, "/%s", limit_file(st));
    if (slurp(path, buf, sizeof buf) == 0) {
      if (strncmp(buf, "max", 3) != 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || end == buf || buf[0] == '-') {
          errno = EINVAL;
          return -1;
        }
        if (st->v1 && v >= V1_NO_LIMIT) v = 0;
        if (v && (!best || v < best)) best = v;
      }
    } else if (errno != ENOENT || st->given) {
      return -1;
    }
    path[pl] = 0;
    if (pl <= tl) break;
    char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) < tl) break;
    *slash = 0;
  }
  *limit = best;
  return 0;
}

static int oom_kills(const mem_state_t *st, unsigned long long *n) {
  char path[4096], buf[1024];
  snprintf(path, sizeof path, "%s/%s", st->dir, st->v1 ? "memory.oom_control" : "memory.events");
  if (slurp(path, buf, sizeof buf) != 0) return -1;
  const char *p = strstr(buf, "oom_kill "); /* v1: since kernel 4.13 */
  if (!p || (p != buf && p[-1] != '\n')) return -1;
  *n = strtoull(p + 9, NULL, 10);
  return 0;
}

static int rss_bytes(uint64_t *out) {
  char buf[256];
  unsigned long long size, res;
  if (slurp("/proc/self/statm", buf, sizeof buf) != 0) return -1;
  if (sscanf(buf, "%llu %llu", &size, &res) != 2) return -1;
  *out = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
  return 0;
}

static void mem_run(health_result_t *r, void *arg) {
  mem_state_t *st = arg;
  uint64_t rss, limit;
  char eb[96], a[32], b[32], c[32], d[32];
  if (rss_bytes(&rss) != 0) {
    health_result_set(r, HEALTH_FAIL, "cannot read the resident memory size");
    return;
  }
  if (limit_of(st, &limit) != 0) {
    health_result_set(r, HEALTH_FAIL, "cannot read %s: %s", limit_file(st),
                      health__errno_text(errno, eb, sizeof eb));
    return;
  }
  health_status_t s = HEALTH_PASS;
  char msg[HEALTH_ERROR_TEXT_LENGTH] = "";
  health__fmt_bytes(b, sizeof b, rss);
  if (limit) {
    double pct = 100.0 * (double)rss / (double)limit;
    health_result_observe(r, pct, "%");
    s = at_or_above(pct, st->o.warn_percent, st->o.fail_percent);
    if (s != HEALTH_PASS) {
      health__fmt_fixed(a, sizeof a, pct, 1);
      health__fmt_bytes(c, sizeof c, limit);
      health__fmt_fixed(d, sizeof d, s == HEALTH_FAIL ? st->o.fail_percent : st->o.warn_percent, 1);
      snprintf(msg, sizeof msg,
               "resident memory %s%% of the container limit (%s of %s), %s at %s%%", a, b, c,
               health__status_word(s), d);
    }
  } else if (st->why) {
    health_result_observe(r, (double)rss, "bytes");
    snprintf(msg, sizeof msg, "cannot see the container's memory limit (%s); resident memory %s",
             st->why, b);
  } else {
    health_result_observe(r, (double)rss, "bytes");
    snprintf(msg, sizeof msg, "no memory limit; resident memory %s", b);
  }
  if (st->o.oom_kill != HEALTH_PASS) {
    unsigned long long n;
    if (oom_kills(st, &n) == 0) {
      if (st->have_oom && n > st->oom_seen) {
        char prev[sizeof msg];
        snprintf(prev, sizeof prev, "%s", msg);
        snprintf(msg, sizeof msg, "%llu OOM kill%s in the container since the previous run%s%.180s",
                 n - st->oom_seen, n - st->oom_seen == 1 ? "" : "s", prev[0] && s ? "; " : "",
                 s ? prev : "");
        if (st->o.oom_kill > s) s = st->o.oom_kill;
      }
      st->have_oom = 1;
      st->oom_seen = n;
    }
  }
  health_result_set(r, s, msg[0] ? "%s" : NULL, msg);
}

HEALTH_EXPORT int health_memory_add(health_t *h, const char *name,
                                    const health_memory_options_t *mem,
                                    const health_check_options_t *opts, health_error_t *err) {
  health_memory_options_t o;
  if (!h || !name)
    return health__err(err, HEALTH_EINVAL, "health_memory_add: handle and name are required");
  if (mem && HEALTH__RESERVED_CHECK(mem, "health_memory_options", err)) return HEALTH_EINVAL;
  if (mem) o = *mem;
  else health_memory_options_init(&o);
  if (bad_thresholds(o.warn_percent, o.fail_percent))
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': thresholds must be 0-100 %% with warn <= fail", name);
  if (o.oom_kill != HEALTH_PASS && o.oom_kill != HEALTH_WARN && o.oom_kill != HEALTH_FAIL)
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': oom_kill must be HEALTH_PASS, HEALTH_WARN or HEALTH_FAIL",
                       name);
  mem_state_t *st = calloc(1, sizeof *st);
  if (!st) return health__err(err, HEALTH_ENOMEM, "out of memory");
  st->o = o;
  if (!(st->ck = health__checker_new(h, name))) {
    mem_free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  if (o.cgroup_dir) {
    DIR *d = opendir(o.cgroup_dir);
    if (!d) {
      mem_free(st);
      return health__err(err, HEALTH_EINVAL, "check '%.64s': cgroup directory '%.200s': %s", name,
                         o.cgroup_dir, strerror(errno));
    }
    closedir(d);
    st->given = 1;
    st->dir = strdup(o.cgroup_dir);
    st->top = strdup(o.cgroup_dir);
    /* cgroup v1 when its limit file is there and memory.max is not */
    char p[4096];
    snprintf(p, sizeof p, "%s/memory.max", o.cgroup_dir);
    if (access(p, F_OK) != 0) {
      snprintf(p, sizeof p, "%s/memory.limit_in_bytes", o.cgroup_dir);
      st->v1 = access(p, F_OK) == 0;
    }
  } else {
    health__memcg_t cg;
    const char *why = NULL;
    if (health__memcg_find("/proc/self/cgroup", "/proc/self/mountinfo", &cg, &why) == 0) {
      st->dir = cg.dir;
      st->top = cg.top;
      st->v1 = cg.v1;
    } else {
      /* No container limit to compare with: the check still reports the
       * resident size, and says why it sees no limit. */
      health__checker_log(st->ck, HEALTH_LOG_INFO, "memory_no_cgroup", "check", name, "message",
                          why, NULL);
      st->why = why;
      st->dir = strdup("/nonexistent-cgroup");
      st->top = strdup("/");
    }
  }
  if (!st->dir || !st->top) {
    mem_free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  health_check_options_t co;
  if (opts) co = *opts;
  else health_check_options_init(&co);
  if (!co.measurement) co.measurement = "utilization";
  int rc = health__checker_add(st->ck, mem_run, st, mem_free, &co, "system", err);
  if (rc) mem_free(st);
  return rc;
}

/* ---- file descriptors ---- */

typedef struct fds_state {
  health__checker_t *ck;
  health_fds_options_t o;
} fds_state_t;

static void fds_free(void *arg) {
  fds_state_t *st = arg;
  if (!st) return;
  health__checker_free(st->ck);
  free(st);
}

static int count_fds(unsigned long *n) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  unsigned long c = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') c++;
  closedir(d);
  *n = c ? c - 1 : 0; /* the directory's own descriptor */
  return 0;
}

static void fds_run(health_result_t *r, void *arg) {
  fds_state_t *st = arg;
  struct rlimit rl;
  unsigned long n;
  char eb[96], a[32], d[32];
  if (count_fds(&n) != 0) {
    health_result_set(r, HEALTH_FAIL, "cannot count open file descriptors: %s",
                      health__errno_text(errno, eb, sizeof eb));
    return;
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur == 0) {
    health_result_observe(r, (double)n, "descriptors");
    health_result_set(r, HEALTH_PASS, "%lu open file descriptors; no limit", n);
    return;
  }
  double pct = 100.0 * (double)n / (double)rl.rlim_cur;
  health_result_observe(r, pct, "%");
  health_status_t s = at_or_above(pct, st->o.warn_percent, st->o.fail_percent);
  if (s == HEALTH_PASS) {
    health_result_set(r, HEALTH_PASS, NULL);
    return;
  }
  health__fmt_fixed(a, sizeof a, pct, 1);
  health__fmt_fixed(d, sizeof d, s == HEALTH_FAIL ? st->o.fail_percent : st->o.warn_percent, 1);
  health_result_set(r, s, "%lu open file descriptors, %s%% of the limit %llu, %s at %s%%", n, a,
                    (unsigned long long)rl.rlim_cur, health__status_word(s), d);
}

HEALTH_EXPORT int health_fds_add(health_t *h, const char *name, const health_fds_options_t *fds,
                                 const health_check_options_t *opts, health_error_t *err) {
  if (!h || !name)
    return health__err(err, HEALTH_EINVAL, "health_fds_add: handle and name are required");
  if (fds && HEALTH__RESERVED_CHECK(fds, "health_fds_options", err)) return HEALTH_EINVAL;
  fds_state_t *st = calloc(1, sizeof *st);
  if (!st) return health__err(err, HEALTH_ENOMEM, "out of memory");
  if (fds) st->o = *fds;
  else health_fds_options_init(&st->o);
  if (bad_thresholds(st->o.warn_percent, st->o.fail_percent)) {
    fds_free(st);
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': thresholds must be 0-100 %% with warn <= fail", name);
  }
  health_check_options_t co;
  if (opts) co = *opts;
  else health_check_options_init(&co);
  if (!co.measurement) co.measurement = "utilization";
  if (!(st->ck = health__checker_new(h, name))) {
    fds_free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  int rc = health__checker_add(st->ck, fds_run, st, fds_free, &co, "system", err);
  if (rc) fds_free(st);
  return rc;
}
