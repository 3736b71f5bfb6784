/*
 * What a heartbeat beat costs, against references measured in the same run:
 * an empty loop, a relaxed atomic store (the floor for "publish something"),
 * and the designs that were rejected: a clock read per beat
 * (CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC, both through the vDSO) and a
 * locked atomic increment.  The handle is started, so the library's sampler
 * thread reads the counter meanwhile, as in production.  Then the idle cost
 * of that sampler: CPU and wake-ups of the process over a few seconds with
 * one heartbeat and nothing else to do.
 *
 * usage: heartbeat [--iterations N] [--rounds R] [--idle-seconds S]
 * Prints one table; each figure is the median of R rounds.  The process
 * exits 1 if a beat costs 10 ns or more (the target), else 0.
 */
#define _GNU_SOURCE
#include <health.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Alignas(64) atomic_ulong slot;
static health_heartbeat_t *hb;

/* Each loop keeps the compiler from folding it (the barrier / the atomic
 * operations / the external call). */
static void loop_empty(long n) {
  for (long i = 0; i < n; i++) __asm__ __volatile__("" ::: "memory");
}
static void loop_store(long n) {
  for (long i = 0; i < n; i++) atomic_store_explicit(&slot, (unsigned long)i, memory_order_relaxed);
}
static void loop_beat(long n) {
  for (long i = 0; i < n; i++) health_heartbeat_beat(hb);
}
static void loop_fetch_add(long n) {
  for (long i = 0; i < n; i++) atomic_fetch_add_explicit(&slot, 1, memory_order_relaxed);
}
static void loop_clock(long n, clockid_t id) {
  struct timespec ts;
  for (long i = 0; i < n; i++) {
    clock_gettime(id, &ts);
    atomic_store_explicit(&slot, (unsigned long)ts.tv_nsec, memory_order_relaxed);
  }
}
static void loop_coarse(long n) { loop_clock(n, CLOCK_MONOTONIC_COARSE); }
static void loop_mono(long n) { loop_clock(n, CLOCK_MONOTONIC); }

/* Wake-ups per second and CPU percent of the whole process over `secs`. */
static void idle(unsigned secs, double *cpu_pct, double *wakeups) {
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  uint64_t t0 = now_ns();
  struct timespec nap = {(time_t)secs, 0};
  while (nanosleep(&nap, &nap) != 0) {}
  double wall = (double)(now_ns() - t0) / 1e9;
  getrusage(RUSAGE_SELF, &r1);
  double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
               (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
               (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
               (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
  *cpu_pct = 100.0 * cpu / wall;
  *wakeups = (double)((r1.ru_nvcsw - r0.ru_nvcsw) + (r1.ru_nivcsw - r0.ru_nivcsw)) / wall;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median_ns(void (*fn)(long), long n, int rounds) {
  double r[64];
  if (rounds > 64) rounds = 64;
  fn(n / 10); /* warm up */
  for (int i = 0; i < rounds; i++) {
    uint64_t t0 = now_ns();
    fn(n);
    r[i] = (double)(now_ns() - t0) / (double)n;
  }
  qsort(r, (size_t)rounds, sizeof r[0], cmp);
  return r[rounds / 2];
}

int main(int argc, char **argv) {
  long n = 50000000;
  int rounds = 7;
  unsigned idle_s = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--iterations") == 0) n = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--idle-seconds") == 0) idle_s = (unsigned)atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: heartbeat [--iterations N] [--rounds R] [--idle-seconds S]\n");
      return 2;
    }
  }
  if (n < 1000 || rounds < 1) return 2;

  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_OFF;
  health_t *h;
  health_error_t err;
  if (health_new(&h, &o, &err) || health_heartbeat_add(h, "bench", 1000, &hb, &err) ||
      health_start(h, &err)) {
    fprintf(stderr, "heartbeat: %s\n", err.text);
    return 2;
  }

  struct {
    const char *name;
    void (*fn)(long);
    double ns;
  } rows[] = {
      {"empty loop", loop_empty, 0},
      {"relaxed atomic store (reference)", loop_store, 0},
      {"health_heartbeat_beat()", loop_beat, 0},
      {"atomic_fetch_add (locked increment)", loop_fetch_add, 0},
      {"CLOCK_MONOTONIC_COARSE + store", loop_coarse, 0},
      {"CLOCK_MONOTONIC + store", loop_mono, 0},
  };
  size_t nrows = sizeof rows / sizeof rows[0];
  for (size_t i = 0; i < nrows; i++) rows[i].ns = median_ns(rows[i].fn, n, rounds);
  double ref = rows[1].ns, beat = rows[2].ns;

  printf("heartbeat: %ld iterations x %d rounds, medians, one thread, sampler running\n", n,
         rounds);
  printf("%-38s %10s %14s\n", "loop body", "ns/iter", "x reference");
  for (size_t i = 0; i < nrows; i++)
    printf("%-38s %10.2f %14.2f\n", rows[i].name, rows[i].ns, ref > 0 ? rows[i].ns / ref : 0.0);

  /* Idle cost of the sampler: the process with one heartbeat and nothing
   * else to do, then the same with the heartbeat removed (the sampler then
   * sleeps without a timeout): the difference is the sampler's. */
  double cpu1, wk1, cpu0, wk0;
  idle(idle_s, &cpu1, &wk1);
  health_heartbeat_remove(hb, NULL);
  hb = NULL;
  idle(idle_s, &cpu0, &wk0);
  printf("idle process, 1 heartbeat (max age 1000 ms): %.1f wake-ups/s, CPU %.4f %% of a core\n",
         wk1, cpu1);
  printf("idle process, no heartbeat:                   %.1f wake-ups/s, CPU %.4f %% of a core\n",
         wk0, cpu0);

  int pass = beat < 10.0;
  printf("beat: %.2f ns (%.2fx a relaxed store, %.2fx CLOCK_MONOTONIC_COARSE) target < 10 ns: %s\n",
         beat, ref > 0 ? beat / ref : 0.0, rows[4].ns > 0 ? beat / rows[4].ns : 0.0,
         pass ? "PASS" : "MISS");
  health_free(h);
  return pass ? 0 : 1;
}
