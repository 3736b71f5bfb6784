/*
 * The memory checker's private header: checkers/memory.c (the checks) and
 * checkers/memory_cgroup.c (where this process's memory cgroup is).
 */
#ifndef HEALTH_CHECKER_MEMORY_H
#define HEALTH_CHECKER_MEMORY_H

#include "checkers/checker.h"

/* A memory cgroup: the directory whose limit applies, the mount point up
 * to which the parents' limits are read too, and the version. */
typedef struct health__memcg {
  char *dir;
  char *top;
  int v1; /* 1: cgroup v1 memory controller (memory.limit_in_bytes,
             memory.oom_control); 0: cgroup v2 (memory.max, memory.events) */
} health__memcg_t;

/*
 * This process's memory cgroup, from `proc_cgroup` (/proc/self/cgroup) and
 * `mountinfo` (/proc/self/mountinfo): the cgroup v1 memory controller when
 * one is listed and mounted (it then owns memory, also on hybrid systems
 * that mount a cgroup2 tree beside it), else the cgroup v2 tree.
 * @return 0 (free with health__memcg_free), or -1 with *why (static text)
 *         saying what is missing.
 */
int health__memcg_find(const char *proc_cgroup, const char *mountinfo, health__memcg_t *out,
                       const char **why);
void health__memcg_free(health__memcg_t *cg);

#endif
