/*
 * The disk checker: free space and free inodes of the file system holding
 * a path (what an unprivileged process may use: f_bavail, f_favail), and
 * optionally a probe file created, written and removed on every run.
 *
 * statvfs() and the probe are plain system calls: on a hung network file
 * system they block, and the engine reports the run as timed out at its
 * deadline and does not start it again until the call returns.
 */
#include "checkers/checker.h"

#include "checkers/target.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

HEALTH_EXPORT void health_disk_options_init(health_disk_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->init_stamp = HEALTH__INIT_STAMP;
  o->warn_free_percent = 10;
  o->fail_free_percent = 5;
  o->warn_free_inodes_percent = 10;
  o->fail_free_inodes_percent = 5;
}

typedef struct disk_state {
  health__checker_t *ck;
  char *path, *probe;
  health_disk_options_t o;
} disk_state_t;

static void disk_free(void *arg) {
  disk_state_t *st = arg;
  if (!st) return;
  free(st->path);
  free(st->probe);
  health__checker_free(st->ck);
  free(st);
}

/* Status for a free amount against "below" thresholds (0 = off). */
static health_status_t below(double v, double warn, double fail) {
  if (fail > 0 && v < fail) return HEALTH_FAIL;
  if (warn > 0 && v < warn) return HEALTH_WARN;
  return HEALTH_PASS;
}

static int probe(disk_state_t *st, char *why, size_t len) {
  char eb[96];
  int fd = health__fd_hoist(
      open(st->probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd < 0) {
    snprintf(why, len, "write probe failed: cannot create a file: %s",
             health__errno_text(errno, eb, sizeof eb));
    return -1;
  }
  ssize_t w = write(fd, "libhealth\n", 10);
  int e = errno;
  int c = close(fd);
  if (c != 0 && w == 10) e = errno;
  if (unlink(st->probe) != 0 && w == 10 && c == 0) {
    snprintf(why, len, "write probe failed: cannot remove the file: %s",
             health__errno_text(errno, eb, sizeof eb));
    return -1;
  }
  if (w != 10 || c != 0) {
    snprintf(why, len, "write probe failed: cannot write: %s",
             health__errno_text(w >= 0 && c == 0 ? ENOSPC : e, eb, sizeof eb));
    return -1;
  }
  return 0;
}

static void disk_run(health_result_t *r, void *arg) {
  disk_state_t *st = arg;
  const health_disk_options_t *o = &st->o;
  struct statvfs sv;
  char eb[96];
  if (statvfs(st->path, &sv) != 0) {
    health_result_set(r, HEALTH_FAIL, "cannot read the file system's usage: %s",
                      health__errno_text(errno, eb, sizeof eb));
    return;
  }
  uint64_t unit = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
  uint64_t total = (uint64_t)sv.f_blocks * unit, avail = (uint64_t)sv.f_bavail * unit;
  double pct = sv.f_blocks ? 100.0 * (double)sv.f_bavail / (double)sv.f_blocks : 100.0;
  health_result_observe(r, pct, "%");

  char a[32], b[32], c[32], msg[HEALTH_ERROR_TEXT_LENGTH] = "";
  health_status_t s = below(pct, o->warn_free_percent, o->fail_free_percent), sb, si = HEALTH_PASS;
  sb = below((double)avail, (double)o->warn_free_bytes, (double)o->fail_free_bytes);
  if (s != HEALTH_PASS || sb != HEALTH_PASS) {
    health__fmt_fixed(a, sizeof a, pct, 1);
    health__fmt_bytes(b, sizeof b, avail);
    if (s >= sb) {
      health__fmt_fixed(c, sizeof c, s == HEALTH_FAIL ? o->fail_free_percent : o->warn_free_percent,
                        1);
      snprintf(msg, sizeof msg, "free space %s%% (%s), %s below %s%%", a, b, health__status_word(s),
               c);
    } else {
      health__fmt_bytes(c, sizeof c, sb == HEALTH_FAIL ? o->fail_free_bytes : o->warn_free_bytes);
      snprintf(msg, sizeof msg, "free space %s (%s%%), %s below %s", b, a, health__status_word(sb),
               c);
    }
    if (sb > s) s = sb;
  }
  (void)total;
  /* Some file systems (btrfs, some FUSE) report no inode counts. */
  if (sv.f_files > 0) {
    double ipct = 100.0 * (double)sv.f_favail / (double)sv.f_files;
    si = below(ipct, o->warn_free_inodes_percent, o->fail_free_inodes_percent);
    if (si > s || (si != HEALTH_PASS && !msg[0])) {
      health__fmt_fixed(a, sizeof a, ipct, 1);
      health__fmt_fixed(
          c, sizeof c,
          si == HEALTH_FAIL ? o->fail_free_inodes_percent : o->warn_free_inodes_percent, 1);
      snprintf(msg, sizeof msg, "free inodes %s%% (%llu), %s below %s%%", a,
               (unsigned long long)sv.f_favail, health__status_word(si), c);
      s = si;
    }
  }
  if (o->write_probe) {
    char why[HEALTH_ERROR_TEXT_LENGTH];
    if (probe(st, why, sizeof why) != 0) {
      health_result_set(r, HEALTH_FAIL, "%s", why);
      return;
    }
  }
  health_result_set(r, s, msg[0] ? "%s" : NULL, msg);
}

static int bad_pct(double v) { return !(v >= 0 && v <= 100); }

HEALTH_EXPORT int health_disk_add(health_t *h, const char *name, const char *path,
                                  const health_disk_options_t *disk,
                                  const health_check_options_t *opts, health_error_t *err) {
  health_disk_options_t o;
  struct stat sb;
  if (!h || !name || !path)
    return health__err(err, HEALTH_EINVAL, "health_disk_add: handle, name and path are required");
  if (disk && HEALTH__RESERVED_CHECK(disk, "health_disk_options", err)) return HEALTH_EINVAL;
  if (disk) o = *disk;
  else health_disk_options_init(&o);
  if (bad_pct(o.warn_free_percent) || bad_pct(o.fail_free_percent) ||
      bad_pct(o.warn_free_inodes_percent) || bad_pct(o.fail_free_inodes_percent))
    return health__err(err, HEALTH_EINVAL, "check '%.64s': percentages must be 0-100", name);
  if ((o.warn_free_percent && o.fail_free_percent > o.warn_free_percent) ||
      (o.warn_free_bytes && o.fail_free_bytes > o.warn_free_bytes) ||
      (o.warn_free_inodes_percent && o.fail_free_inodes_percent > o.warn_free_inodes_percent))
    return health__err(err, HEALTH_EINVAL,
                       "check '%.64s': a fail threshold must not exceed its warn threshold "
                       "(both are minimum free amounts)",
                       name);
  if (!*path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return health__err(err, HEALTH_EINVAL, "check '%.64s': disk path '%.200s' is not a directory",
                       name, path);
  disk_state_t *st = calloc(1, sizeof *st);
  if (!st) return health__err(err, HEALTH_ENOMEM, "out of memory");
  st->o = o;
  st->ck = health__checker_new(h, name);
  st->path = strdup(path);
  if (asprintf(&st->probe, "%s/.libhealth-probe-%ld-%s", path, (long)getpid(), name) < 0)
    st->probe = NULL;
  if (!st->ck || !st->path || !st->probe) {
    disk_free(st);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  health_check_options_t co;
  if (opts) co = *opts;
  else health_check_options_init(&co);
  if (!co.measurement) co.measurement = "utilization";
  int rc = health__checker_add(st->ck, disk_run, st, disk_free, &co, "system", err);
  if (rc) disk_free(st);
  return rc;
}
