/*
 * Where the memory checker reads the container's limit: this process's
 * memory cgroup, found from /proc/self/cgroup and /proc/self/mountinfo
 * (their paths are arguments, so the tests can give synthetic ones).
 *
 * cgroup v1 lists one line per hierarchy, "ID:CONTROLLERS:PATH", and the
 * memory controller has a mount of its own (fstype "cgroup", "memory" in
 * its super options).  cgroup v2 lists "0::PATH" and mounts "cgroup2".  A
 * mount's ROOT is the part of the hierarchy it shows: "/" on the host or
 * with a cgroup namespace, the container's own path when a runtime
 * bind-mounts it without one; PATH is then taken relative to it.
 */
#include "checkers/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void health__memcg_free(health__memcg_t *cg) {
  if (!cg) return;
  free(cg->dir);
  free(cg->top);
  cg->dir = cg->top = NULL;
}

/* 1 if the comma-separated `list` (of length n) holds `word`. */
static int has_word(const char *list, size_t n, const char *word) {
  size_t wl = strlen(word);
  for (const char *p = list, *end = list + n; p < end;) {
    size_t l = strcspn(p, ",");
    if (p + l > end) l = (size_t)(end - p);
    if (l == wl && strncmp(p, word, wl) == 0) return 1;
    p += l + 1;
  }
  return 0;
}

/* The directory of `path` under a mount at `mp` showing `root`; -1 when
 * the mount does not show it. */
static int join(const char *mp, const char *root, const char *path, char **dir) {
  size_t rl = strlen(root);
  const char *rest = path;
  if (strcmp(root, "/") != 0) {
    if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != 0)) return -1;
    rest = path + rl;
  }
  if (strcmp(rest, "/") == 0) rest = "";
  return asprintf(dir, "%s%s", mp, rest) < 0 ? -1 : 0;
}

/* Find the mount of (v1 ? the memory controller : cgroup2) showing `path`. */
static int find_mount(const char *mountinfo, int v1, const char *path, health__memcg_t *out) {
  char line[4096];
  FILE *f = fopen(mountinfo, "re");
  if (!f) return -1;
  int rc = -1;
  while (rc != 0 && fgets(line, sizeof line, f)) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER */
    char root[1024], mp[1024], fstype[32], source[256], super[1024];
    const char *dash = strstr(line, " - ");
    if (!dash || sscanf(dash + 3, "%31s %255s %1023s", fstype, source, super) < 2) continue;
    if (v1 ? strcmp(fstype, "cgroup") != 0 || !has_word(super, strlen(super), "memory")
           : strcmp(fstype, "cgroup2") != 0)
      continue;
    if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mp) != 2) continue;
    if (join(mp, root, path, &out->dir) != 0) continue;
    if (!(out->top = strdup(mp))) {
      free(out->dir);
      out->dir = NULL;
      break;
    }
    out->v1 = v1;
    rc = 0;
  }
  fclose(f);
  return rc;
}

int health__memcg_find(const char *proc_cgroup, const char *mountinfo, health__memcg_t *out,
                       const char **why) {
  char line[4096], v1path[4096] = "", v2path[4096] = "";
  memset(out, 0, sizeof *out);
  FILE *f = fopen(proc_cgroup, "re");
  if (!f) {
    *why = "cannot read /proc/self/cgroup";
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    if (strncmp(line, "0::", 3) == 0) snprintf(v2path, sizeof v2path, "%s", c2 + 1);
    else if (has_word(c1 + 1, (size_t)(c2 - c1 - 1), "memory"))
      snprintf(v1path, sizeof v1path, "%s", c2 + 1);
  }
  fclose(f);
  /* A controller is on one hierarchy only: listed on v1, it is not on v2. */
  if (v1path[0]) {
    if (find_mount(mountinfo, 1, v1path, out) == 0) return 0;
    *why = "the cgroup v1 memory controller is not mounted where this process can read it";
    return -1;
  }
  if (v2path[0] && find_mount(mountinfo, 0, v2path, out) == 0) {
    /* The memory controller may not be enabled in the v2 tree at all. */
    char path[4096], buf[512] = "";
    snprintf(path, sizeof path, "%s/cgroup.controllers", out->top);
    if ((f = fopen(path, "re")) != NULL) {
      size_t n = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[n] = 0;
      buf[strcspn(buf, "\n")] = 0;
      char *p = buf;
      int found = 0;
      for (char *w; !found && (w = strsep(&p, " ")) != NULL;) found = strcmp(w, "memory") == 0;
      if (!found) {
        health__memcg_free(out);
        *why = "the memory controller is not enabled in the cgroup v2 tree";
        return -1;
      }
    }
    return 0;
  }
  *why = "no cgroup v2 hierarchy or cgroup v1 memory controller found";
  return -1;
}
