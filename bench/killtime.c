/*
 * killtime: send SIGTERM and say when, on the same clock as libhealth's log
 * lines ("mono_ms" is CLOCK_MONOTONIC).
 *
 * usage: killtime PID [--wait-exit TIMEOUT_MS]
 *   Prints "SENT_MS <ms>" (CLOCK_MONOTONIC, microsecond precision) right
 *   after kill().  With --wait-exit it also waits (through a pidfd, so it
 *   need not be the parent) until the process has exited and prints
 *   "EXIT_AFTER_MS <ms>", or "EXIT_TIMEOUT" after TIMEOUT_MS.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--wait-exit"))) {
    fprintf(stderr, "usage: killtime PID [--wait-exit TIMEOUT_MS]\n");
    return 2;
  }
  pid_t pid = (pid_t)atol(argv[1]);
  int timeout = argc == 4 ? atoi(argv[3]) : 0;
  int pfd = -1;
  if (timeout > 0) {
    pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
      perror("pidfd_open");
      return 1;
    }
  }
  double t0 = mono_ms();
  if (kill(pid, SIGTERM) != 0) {
    perror("kill");
    return 1;
  }
  double t1 = mono_ms();
  /* The signal left between t0 and t1 (normally a few microseconds). */
  printf("SENT_MS %.3f\nKILL_CALL_MS %.3f\n", t0, t1 - t0);
  if (pfd >= 0) {
    struct pollfd p = {pfd, POLLIN, 0};
    int n = poll(&p, 1, timeout);
    if (n == 1) printf("EXIT_AFTER_MS %.3f\n", mono_ms() - t0);
    else printf("EXIT_TIMEOUT\n");
  }
  return 0;
}
