/* custom-check: registers a custom readiness check (free disk space) and a non-critical one. */
#include <health.h>
#include <stdio.h>
#include <sys/statvfs.h>

static void disk_space(health_result_t *r, void *arg) {
  const char *path = arg;
  struct statvfs s;
  if (statvfs(path, &s) != 0) {
    health_result_set(r, HEALTH_FAIL, "statvfs failed");
    return;
  }
  double free_pct = 100.0 * (double)s.f_bavail / (double)(s.f_blocks ? s.f_blocks : 1);
  health_result_observe(r, free_pct, "%");
  if (free_pct < 5) health_result_set(r, HEALTH_FAIL, "less than 5%% free");
  else if (free_pct < 15) health_result_set(r, HEALTH_WARN, "less than 15%% free");
  else health_result_set(r, HEALTH_PASS, NULL);
}

int main(void) {
  health_options_t opts;
  health_error_t err;
  health_t *h;
  health_options_init(&opts);
  if (health_new(&h, &opts, &err) != 0 || health_config_from_env(h, &err) != 0) {
    fprintf(stderr, "custom-check: %s\n", err.text);
    return 1;
  }
  health_check_options_t co;
  health_check_options_init(&co);
  co.component_type = "system";
  co.measurement = "utilization";
  co.interval_ms = 10000;
  if (health_check_add(h, "disk", disk_space, (void *)"/", NULL, &co, &err) != 0) {
    fprintf(stderr, "custom-check: %s\n", err.text);
    return 1;
  }
  co.critical = 0; /* a full /tmp is worth a warning, not an outage */
  if (health_check_add(h, "tmp-disk", disk_space, (void *)"/tmp", NULL, &co, &err) != 0 ||
      health_start(h, &err) != 0) {
    fprintf(stderr, "custom-check: %s\n", err.text);
    return 1;
  }
  int code = health_wait(h);
  health_free(h);
  return code;
}
