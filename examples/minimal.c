/* minimal: the smallest program that serves /health and /ready and shuts down gracefully on
 * SIGTERM. */
#include <health.h>
#include <stdio.h>

int main(void) {
  health_options_t opts;
  health_error_t err;
  health_t *h;
  health_options_init(&opts);
  if (health_new(&h, &opts, &err) != 0 || health_config_from_env(h, &err) != 0 ||
      health_start(h, &err) != 0) {
    fprintf(stderr, "minimal: %s\n", err.text);
    return 1;
  }
  /* SIGTERM drains, runs the (no) hooks and exits the process. */
  int code = health_wait(h);
  health_free(h);
  return code;
}
