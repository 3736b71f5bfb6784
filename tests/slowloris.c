/*
 * slowloris: a bounded attack on a health port, with a probe beside it.
 *
 *   slowloris -p PORT [-n CONNS] [-a ADDRS] [-t SECONDS] [-m slow|flood]
 *             [-d DRIBBLE_MS] [-i PROBE_EVERY_MS] [-w PROBE_WITHIN_MS]
 *             [-P PATH] [-S SERVER_PID] [-r MAX_OPENS_PER_S]
 *
 * slow:  CONNS connections, each bound to its own loopback source address
 *        (127.16.0.1, 127.16.0.2, ...; ADDRS distinct ones, default CONNS),
 *        send a request line and then one header line every DRIBBLE_MS,
 *        never ending the head.  A connection the server closes is opened
 *        again at once, as a real attacker would.
 * flood: CONNS connection attempts in flight from ADDRS addresses, each
 *        closed as soon as it is established, and replaced.
 *
 * -r caps the rate of new connections (default: as fast as possible), for
 * a server slower than its attacker, as under sanitizers or valgrind.
 *
 * Meanwhile a probe thread sends "GET PATH" (Connection: close) from
 * 127.0.0.1 every PROBE_EVERY_MS, starting once the attack has opened its
 * connections (or after a second), and counts it good if a 200 arrives
 * within PROBE_WITHIN_MS (default 1000).  Everything stops after SECONDS
 * (default 10).  With -S, the CPU time the server process used during the
 * probing window is reported too.
 *
 * One line on stdout, key=value:
 *   mode conns addrs seconds opened cut probes ok ok_pct p50_ms p99_ms
 *   max_ms server_cpu_pct
 * Exit status 0, or 2 for a usage error or when the attack could not
 * start (no descriptors).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_NONE, ST_CONNECTING, ST_OPEN };

typedef struct {
  int fd, state;
  uint64_t next_ms; /* next header line (slow) */
} conn_t;

static unsigned g_port, g_addrs, g_within = 1000, g_every = 100;
static const char *g_path = "/health";
static atomic_int g_stop, g_attack_ready;
static unsigned *g_lat; /* probe latencies, ms (g_within * 2 + 1 if failed) */
static unsigned g_nprobes, g_maxprobes, g_ok;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void source_of(unsigned i, struct sockaddr_in *sa) {
  unsigned k = i % g_addrs, b = k / 254, c = k % 254 + 1;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_addr.s_addr = htonl((127u << 24) | ((16u + b / 256) << 16) | ((b % 256) << 8) | c);
}

/* A non-blocking connect from `src` (NULL: any). */
static int open_from(const struct sockaddr_in *src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (src) {
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)src, sizeof *src) != 0) {
      close(fd);
      return -1;
    }
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One probe: ms until a complete 200 head arrived, or 0 if it did not
 * within g_within. */
static unsigned probe_once(void) {
  uint64_t t0 = now_ms(), deadline = t0 + g_within;
  int fd = open_from(NULL);
  if (fd < 0) return 0;
  char req[256], buf[512];
  int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
                    g_path);
  size_t sent = 0, got = 0;
  unsigned result = 0;
  while (!result) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    struct pollfd p = {fd, sent < (size_t)rl ? POLLOUT : POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    if (sent < (size_t)rl) {
      ssize_t n = send(fd, req + sent, (size_t)rl - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) break;
      if (n > 0) sent += (size_t)n;
      continue;
    }
    ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (n > 0) got += (size_t)n;
    buf[got] = 0;
    if (strstr(buf, "\r\n\r\n") || got == sizeof buf - 1) {
      if (strncmp(buf, "HTTP/1.1 200 ", 13) == 0) result = (unsigned)(now_ms() - t0) + 1;
      break;
    }
  }
  close(fd);
  return result;
}

static void *probe_main(void *arg) {
  (void)arg;
  uint64_t t0 = now_ms();
  while (!atomic_load(&g_attack_ready) && !atomic_load(&g_stop) && now_ms() - t0 < 1000)
    usleep(10000);
  uint64_t next = now_ms();
  while (!atomic_load(&g_stop) && g_nprobes < g_maxprobes) {
    unsigned r = probe_once();
    g_lat[g_nprobes++] = r ? r - 1 : g_within * 2 + 1;
    if (r) g_ok++;
    next += g_every;
    uint64_t now = now_ms();
    if (next > now) usleep((useconds_t)(next - now) * 1000);
    else next = now;
  }
  return NULL;
}

static int cmp_u(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return x < y ? -1 : x > y;
}

static double cpu_s(int pid) {
  if (pid <= 0) return 0;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv) {
  unsigned n = 1000, seconds = 10, dribble = 1000, rate = 0;
  int flood = 0, server_pid = 0;
  int opt;
  while ((opt = getopt(argc, argv, "p:n:a:t:m:d:i:w:P:S:r:")) != -1) {
    switch (opt) {
      case 'p': g_port = (unsigned)atoi(optarg); break;
      case 'n': n = (unsigned)atoi(optarg); break;
      case 'a': g_addrs = (unsigned)atoi(optarg); break;
      case 't': seconds = (unsigned)atoi(optarg); break;
      case 'm': flood = strcmp(optarg, "flood") == 0; break;
      case 'd': dribble = (unsigned)atoi(optarg); break;
      case 'i': g_every = (unsigned)atoi(optarg); break;
      case 'w': g_within = (unsigned)atoi(optarg); break;
      case 'P': g_path = optarg; break;
      case 'S': server_pid = atoi(optarg); break;
      case 'r': rate = (unsigned)atoi(optarg); break;
      default: return 2;
    }
  }
  if (!g_port || !n || n > 200000 || !seconds || seconds > 3600 || !g_every || !dribble) {
    fprintf(stderr, "usage: slowloris -p PORT [-n CONNS] [-a ADDRS] [-t SECONDS] "
                    "[-m slow|flood] [-d DRIBBLE_MS] [-i PROBE_EVERY_MS] [-w PROBE_WITHIN_MS] "
                    "[-P PATH] [-S SERVER_PID]\n");
    return 2;
  }
  if (!g_addrs || g_addrs > n) g_addrs = n;
  /* One descriptor per connection, and some for the probe. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > n + 64 ? n + 64 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 16) {
    fprintf(stderr, "slowloris: RLIMIT_NOFILE %llu is too low for %u connections\n",
            (unsigned long long)rl.rlim_cur, n);
    return 2;
  }
  g_maxprobes = seconds * 1000u / g_every + 2;
  g_lat = calloc(g_maxprobes, sizeof *g_lat);
  conn_t *c = calloc(n, sizeof *c);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event *ev = calloc(1024, sizeof *ev);
  if (!g_lat || !c || ep < 0 || !ev) return 2;

  uint64_t t0 = now_ms(), end = t0 + seconds * 1000u, last_scan = 0, probe_t0 = 0;
  unsigned long opened = 0, cut = 0;
  unsigned established = 0;
  double cpu0 = 0;
  pthread_t probe;
  static const char line1[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  while (now_ms() < end) {
    uint64_t now = now_ms();
    /* (Re)open whatever is not connected or connecting. */
    for (unsigned i = 0; i < n; i++) {
      if (c[i].state != ST_NONE) continue;
      if (rate && opened >= (unsigned long)((now - t0) * rate / 1000u) + 1) break;
      struct sockaddr_in src;
      source_of(i, &src);
      int fd = open_from(&src);
      if (fd < 0) continue; /* out of ports or descriptors for now: next round */
      struct epoll_event e = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = i};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        close(fd);
        continue;
      }
      c[i].fd = fd;
      c[i].state = ST_CONNECTING;
      opened++;
    }
    if (!probe_t0 && (established >= n * 9 / 10 || now - t0 >= 1000 || flood)) {
      probe_t0 = now;
      cpu0 = cpu_s(server_pid);
      atomic_store(&g_attack_ready, 1);
      if (pthread_create(&probe, NULL, probe_main, NULL) != 0) return 2;
    }
    int k = epoll_wait(ep, ev, 1024, 20);
    now = now_ms();
    for (int j = 0; j < k; j++) {
      conn_t *x = &c[ev[j].data.u32];
      int gone = (ev[j].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
      if (!gone && (ev[j].events & EPOLLIN)) {
        char buf[512];
        ssize_t r = recv(x->fd, buf, sizeof buf, 0);
        gone = r == 0 || (r < 0 && errno != EAGAIN);
        if (!gone) continue;
      }
      if (!gone && x->state == ST_CONNECTING && (ev[j].events & EPOLLOUT)) {
        established++;
        if (flood) {
          gone = 1; /* established: close at once, open another */
        } else {
          struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = ev[j].data.u32};
          epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
          x->state = ST_OPEN;
          gone = send(x->fd, line1, sizeof line1 - 1, MSG_NOSIGNAL) < 0;
          x->next_ms = now + dribble;
          if (!gone) continue;
        }
      }
      if (gone) {
        if (!flood || x->state == ST_OPEN) cut++;
        if (x->state == ST_OPEN && established) established--;
        close(x->fd);
        x->state = ST_NONE;
        x->fd = -1;
      }
    }
    /* Dribble: one header line per connection every `dribble` ms. */
    if (!flood && now - last_scan >= 20) {
      last_scan = now;
      for (unsigned i = 0; i < n; i++) {
        if (c[i].state != ST_OPEN || c[i].next_ms > now) continue;
        c[i].next_ms = now + dribble;
        if (send(c[i].fd, "X-a: b\r\n", 8, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
          close(c[i].fd);
          c[i].state = ST_NONE;
          c[i].fd = -1;
          cut++;
          if (established) established--;
        }
      }
    }
  }
  atomic_store(&g_stop, 1);
  double cpu = 0, window = 0;
  if (probe_t0) {
    pthread_join(probe, NULL);
    window = (double)(now_ms() - probe_t0) / 1000.0;
    cpu = server_pid > 0 && window > 0 ? (cpu_s(server_pid) - cpu0) / window * 100.0 : 0;
  }
  for (unsigned i = 0; i < n; i++)
    if (c[i].state != ST_NONE) close(c[i].fd);
  qsort(g_lat, g_nprobes, sizeof *g_lat, cmp_u);
  unsigned p50 = g_nprobes ? g_lat[(g_nprobes - 1) / 2] : 0;
  unsigned p99 = g_nprobes ? g_lat[(g_nprobes * 99 + 99) / 100 - 1] : 0;
  unsigned mx = g_nprobes ? g_lat[g_nprobes - 1] : 0;
  printf("mode=%s conns=%u addrs=%u seconds=%u opened=%lu cut=%lu probes=%u ok=%u "
         "ok_pct=%.1f p50_ms=%u p99_ms=%s%u max_ms=%s%u server_cpu_pct=%.0f\n",
         flood ? "flood" : "slow", n, g_addrs, seconds, opened, cut, g_nprobes, g_ok,
         g_nprobes ? 100.0 * g_ok / g_nprobes : 0.0, p50, p99 > g_within * 2 ? ">" : "",
         p99 > g_within * 2 ? g_within * 2 : p99, mx > g_within * 2 ? ">" : "",
         mx > g_within * 2 ? g_within * 2 : mx, cpu);
  free(c);
  free(ev);
  free(g_lat);
  close(ep);
  return 0;
}
