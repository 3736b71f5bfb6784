/*
 * A fleet of libhealth replicas in one process, for bench/fleet.sh.
 *
 * usage: fleet --n N --pg CONNINFO --redis URL [--interval-ms MS]
 *              [--timeout-ms MS] [--seconds S]
 *
 * Each replica is its own handle with its own health port on 127.0.0.1,
 * one PostgreSQL check (application_name=fleet-<i>, so the server's log
 * tells replicas apart) and one Redis check, as N separate processes would
 * have.  HEALTH_JITTER and HEALTH_KEEP_CONNECTIONS apply
 * (health_fleet_options_from_env), and HEALTH_LOG_LEVEL etc.
 * (health_options_from_env; logs go to stderr).  Every handle is created first and then
 * started in one tight loop, as replicas of a deployment that start
 * together.  Prints "STARTED <n> <ms>" once all run, then every second
 * "STATUS <mono_ms> <pg passing> <redis passing>", and on SIGTERM/SIGINT
 * or after S seconds (default 600) stops every handle and prints "DONE".
 */
#define _GNU_SOURCE
#include <health.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static unsigned long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static void die(const char *what, int rc, const health_error_t *err) {
  fprintf(stderr, "fleet: %s: %d %s\n", what, rc, err ? err->text : "");
  exit(1);
}

#define START_THREADS 16

typedef struct {
  health_t **hs;
  unsigned from, to;
} starter_t;

static void *starter(void *arg) {
  starter_t *s = arg;
  health_error_t err = {0};
  for (unsigned i = s->from; i < s->to; i++) {
    int rc = health_start(s->hs[i], &err);
    if (rc) die("health_start", rc, &err);
  }
  return NULL;
}

/* health_stop() waits for runs in flight (up to their deadline): stop the
 * replicas in parallel, as separate processes would. */
static void *stopper(void *arg) {
  starter_t *s = arg;
  for (unsigned i = s->from; i < s->to; i++) {
    health_stop(s->hs[i]);
    health_free(s->hs[i]);
  }
  return NULL;
}

static void in_parallel(health_t **hs, unsigned n, void *(*fn)(void *)) {
  pthread_t th[START_THREADS];
  starter_t st[START_THREADS];
  for (unsigned k = 0; k < START_THREADS; k++) {
    st[k] = (starter_t){hs, n * k / START_THREADS, n * (k + 1) / START_THREADS};
    if (pthread_create(&th[k], NULL, fn, &st[k]) != 0) die("pthread_create", -1, NULL);
  }
  for (unsigned k = 0; k < START_THREADS; k++) pthread_join(th[k], NULL);
}

int main(int argc, char **argv) {
  unsigned n = 200, interval = 1000, timeout = 800, seconds = 600;
  const char *pg = NULL, *redis = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--n") == 0) n = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--pg") == 0) pg = argv[i + 1];
    else if (strcmp(argv[i], "--redis") == 0) redis = argv[i + 1];
    else if (strcmp(argv[i], "--interval-ms") == 0) interval = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--timeout-ms") == 0) timeout = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = (unsigned)atoi(argv[i + 1]);
    else {
      fprintf(stderr, "fleet: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (!pg || !redis || n == 0 || n > 2000) {
    fprintf(stderr, "usage: fleet --n N(1-2000) --pg CONNINFO --redis URL "
                    "[--interval-ms MS] [--timeout-ms MS] [--seconds S]\n");
    return 2;
  }
  health_t **hs = calloc(n, sizeof *hs);
  if (!hs) return 1;
  health_error_t err = {0};
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  int rc = health_fleet_options_from_env(&fo, &err);
  if (rc) die("environment", rc, &err);

  for (unsigned i = 0; i < n; i++) {
    health_options_t o;
    health_options_init(&o);
    o.address = "127.0.0.1";
    o.port = 0;
    o.handle_signals = 0;
    o.exit_on_shutdown = 0;
    o.log_level = HEALTH_LOG_ERROR;
    o.failure_threshold = 1;
    if ((rc = health_options_from_env(&o, &err))) die("environment", rc, &err);
    if ((rc = health_new(&hs[i], &o, &err))) die("health_new", rc, &err);
    if ((rc = health_fleet_set(hs[i], &fo, &err))) die("health_fleet_set", rc, &err);
    health_check_options_t co;
    health_check_options_init(&co);
    co.interval_ms = interval;
    co.timeout_ms = timeout;
    char kv[1024];
    snprintf(kv, sizeof kv, "%s application_name=fleet-%u", pg, i);
    if ((rc = health_postgres_add(hs[i], "pg", kv, NULL, &co, &err))) die("postgres", rc, &err);
    if ((rc = health_redis_add(hs[i], "redis", redis, NULL, &co, &err))) die("redis", rc, &err);
  }
  /* Replicas of a deployment start together: start the handles from
   * several threads at once, so that the start itself spreads them as
   * little as this machine allows. */
  unsigned long long t0 = mono_ms();
  in_parallel(hs, n, starter);
  printf("STARTED %u %llu\n", n, mono_ms() - t0);
  fflush(stdout);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  unsigned long long end = t0 + (unsigned long long)seconds * 1000ull;
  while (!stop_flag && mono_ms() < end) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    unsigned pg_ok = 0, redis_ok = 0;
    for (unsigned i = 0; i < n; i++) {
      health_check_info_t info;
      if (health_check_find(hs[i], "pg", &info, NULL) == 0 && info.last_status == HEALTH_PASS)
        pg_ok++;
      if (health_check_find(hs[i], "redis", &info, NULL) == 0 && info.last_status == HEALTH_PASS)
        redis_ok++;
    }
    printf("STATUS %llu %u %u\n", mono_ms(), pg_ok, redis_ok);
    fflush(stdout);
  }
  unsigned long long s0 = mono_ms();
  in_parallel(hs, n, stopper);
  fprintf(stderr, "fleet: stopped %u replicas in %llu ms\n", n, mono_ms() - s0);
  free(hs);
  printf("DONE\n");
  return 0;
}
