/*
 * The cost of a /metrics scrape, measured inside one process: a libhealth
 * handle with N passing checks (run once, then idle: interval 1 h, so no
 * check work runs during the measurement) and a client thread that scrapes
 * /metrics over one keep-alive connection.  Server CPU = the process's CPU
 * time minus the client thread's own (CLOCK_PROCESS_CPUTIME_ID and
 * CLOCK_THREAD_CPUTIME_ID), per scrape.
 *
 *   fresh:  before every scrape the state changes (health_inflight_begin /
 *           _end move the in-flight gauge), so every scrape renders the
 *           body again: the cost when checks ran since the last scrape,
 *           which is the usual case for a Prometheus scraping every 15 s.
 *   cached: nothing changes between scrapes: the body is handed out as is.
 *   render: health_answer_render(HEALTH_METRICS) alone, fresh and cached.
 *
 * usage: metrics [--checks N] [--scrapes K]
 * Prints "name value" lines for bench/metrics.sh.
 */
#define _GNU_SOURCE
#include <health.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

static double cpu_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char buf[4 << 20];

/* One keep-alive GET /metrics; returns the body length or -1. */
static long scrape(int fd) {
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) return -1;
  size_t have = 0;
  long clen = -1, head = -1;
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    if (head < 0) {
      char *e = memmem(buf, have, "\r\n\r\n", 4);
      if (!e) continue;
      head = (long)(e - buf) + 4;
      char *cl = memmem(buf, (size_t)head, "Content-Length: ", 16);
      if (!cl) return -1;
      clen = strtol(cl + 16, NULL, 10);
    }
    if ((long)have >= head + clen) return clen;
  }
}

int main(int argc, char **argv) {
  unsigned nchecks = 100, scrapes = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--checks")) nchecks = (unsigned)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--scrapes")) scrapes = (unsigned)atoi(argv[i + 1]);
  }
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.log_level = HEALTH_LOG_WARN;
  health_t *h;
  health_error_t err;
  if (health_new(&h, &o, &err)) return fprintf(stderr, "metrics: %s\n", err.text), 1;
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = 3600000;
  for (unsigned i = 0; i < nchecks; i++) {
    char name[32];
    snprintf(name, sizeof name, "c%04u", i);
    if (health_check_add(h, name, pass_check, NULL, NULL, &co, &err))
      return fprintf(stderr, "metrics: %s\n", err.text), 1;
  }
  if (health_start(h, &err)) return fprintf(stderr, "metrics: %s\n", err.text), 1;
  for (int i = 0; i < 10000 && health_status(h, HEALTH_READINESS) != HEALTH_PASS; i++) usleep(1000);
  usleep(200000); /* every worker back to idle */

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)health_port(h))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return perror("connect"), 1;
  long body = scrape(fd);
  if (body <= 0) return fprintf(stderr, "metrics: scrape failed\n"), 1;
  printf("body_bytes %ld\n", body);

  for (int fresh = 1; fresh >= 0; fresh--) {
    for (unsigned i = 0; i < scrapes / 10; i++) scrape(fd); /* warm-up */
    double p0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID), t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    for (unsigned i = 0; i < scrapes; i++) {
      if (fresh) (i % 2 ? health_inflight_end : health_inflight_begin)(h);
      if (scrape(fd) <= 0) return fprintf(stderr, "metrics: scrape failed\n"), 1;
    }
    double p1 = cpu_s(CLOCK_PROCESS_CPUTIME_ID), t1 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    printf("%s_scrape_server_cpu_us %.2f\n", fresh ? "fresh" : "cached",
           ((p1 - p0) - (t1 - t0)) * 1e6 / scrapes);
  }
  if (scrapes % 2) health_inflight_end(h);
  close(fd);

  for (int fresh = 1; fresh >= 0; fresh--) {
    unsigned n = fresh ? scrapes : scrapes * 100;
    double t0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    for (unsigned i = 0; i < n; i++) {
      if (fresh) (i % 2 ? health_inflight_end : health_inflight_begin)(h);
      health_answer_t a;
      if (health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL)) return 1;
      health_answer_release(&a);
    }
    double t1 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    printf("render_%s_us %.3f\n", fresh ? "fresh" : "cached", (t1 - t0) * 1e6 / n);
  }
  health_free(h);
  return 0;
}
