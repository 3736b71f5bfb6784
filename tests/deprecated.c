/*
 * The names 0.2.0 replaced still build and still work: each old name is
 * called once with what its successor accepts, and must answer as the
 * successor does.  Compiled with the deprecation warnings off here;
 * tests/deprecated.sh compiles this file again with them as errors and
 * expects one per old name.
 */
#include <stdio.h>
#include <string.h>

#include "health.h"

static int failures;

#define EXPECT(call, want)                                                               \
  do {                                                                                   \
    int got_ = (call);                                                                   \
    if (got_ != (want)) {                                                                \
      fprintf(stderr, "deprecated: %s returned %d, expected %d\n", #call, got_, (want)); \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)

static void pass(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

static int hook(void *arg, unsigned remaining_ms) {
  (void)arg;
  (void)remaining_ms;
  return 0;
}

static void on_drain(void *arg) { (void)arg; }

static void listener(const health_transition_t *t, void *arg) {
  (void)t;
  (void)arg;
}

int main(void) {
  health_options_t o;
  health_options_init(&o);
  o.port = HEALTH_PORT_OFF;
  o.handle_signals = HEALTH_SIGNALS_OFF;
  o.log_level = HEALTH_LOG_OFF;
  health_t *h = NULL;
  health_error_t err;
  EXPECT(health_new(&h, &o, &err), 0);
  if (!h) return 1;

  EXPECT(health_add_check(h, "cb", pass, NULL, NULL, NULL, &err), 0);
  EXPECT(health_add_check(h, "cb", pass, NULL, NULL, NULL, &err), HEALTH_EEXIST);
  health_pg_options_t pg;
  health_pg_options_init(&pg);
  EXPECT(health_add_postgres(h, "pg", "postgresql://u@127.0.0.1:1/db", &pg, NULL, &err), 0);
  EXPECT(health_add_redis(h, "redis", "redis://127.0.0.1:1", NULL, NULL, &err), 0);
  EXPECT(health_add_tcp(h, "tcp", "127.0.0.1:1", NULL, &err), 0);
  EXPECT(health_add_http(h, "http", "http://127.0.0.1:1/", NULL, NULL, &err), 0);
  EXPECT(health_add_disk(h, "disk", "/", NULL, NULL, &err), 0);
  EXPECT(health_add_memory(h, "mem", NULL, NULL, &err), 0);
  EXPECT(health_add_fds(h, "fds", NULL, NULL, &err), 0);
  EXPECT(health_add_checks_from_env(h, NULL, &err), 0);
  EXPECT(health_set_nofile_max(h, 0, &err), 0);
  EXPECT(health_add_hook(h, "flush", 1, 0, hook, NULL, &err), 0);
  EXPECT(health_on_drain(h, on_drain, NULL), 0);
  EXPECT(health_on_drain(h, NULL, NULL), HEALTH_EINVAL);
  EXPECT(health_add_listener(h, listener, NULL, &err), 0);
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  EXPECT(health_set_fleet(h, &fo, &err), 0);
  health_serve_options_t so;
  health_serve_options_init(&so);
  EXPECT(health_set_serve_options(h, &so, &err), 0);
  health_agent_options_t ao;
  health_agent_options_init(&ao);
  EXPECT(health_set_agent(h, &ao, &err), 0);
  EXPECT(health_add_gate(h, "warm", &err), 0);
  EXPECT(health_set_startup_deadline(h, 0, &err), 0);

  EXPECT(health_start(h, &err), 0);
  EXPECT(health_is_draining(h), 0);
  health_check_info_t info;
  EXPECT(health_check_get(h, "cb", &info), 0);
  EXPECT(health_check_get(h, "none", &info), HEALTH_ENOENT);
  EXPECT(health_open_gate(h, "warm"), 0);
  EXPECT(health_open_gate(h, "none"), HEALTH_ENOENT);
  EXPECT(health_set_not_ready(h, "maintenance", &err), 0);
  health_answer_t a;
  EXPECT(health_render(h, HEALTH_READINESS, NULL, NULL, NULL, &a), 0);
  EXPECT((int)a.code, 503);
  if (!a.body || !strstr(a.body, "maintenance")) {
    fprintf(stderr, "deprecated: /ready does not give the reason: %s\n", a.body ? a.body : "");
    failures++;
  }
  health_answer_release(&a);
  EXPECT(health_set_ready(h), 0);
  EXPECT(health_render(h, 99, NULL, NULL, NULL, &a), HEALTH_EINVAL);
  health_free(h);
  if (failures) return 1;
  printf("deprecated: every old name builds and answers as its successor\n");
  return 0;
}
