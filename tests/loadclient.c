/*
 * loadclient: a small, bounded HTTP/1.1 load generator for the rolling-deploy
 * test.  It records the outcome of every request, so a connection reset, a
 * connection closed without an answer, a timeout and an HTTP error status
 * are told apart, and it writes the body of every acknowledged POST /work
 * (answered 200 "recorded") to a file, one per line.
 *
 *   loadclient -p PORT [-c WORKERS] [-n MAX_REQUESTS] [-t MAX_SECONDS]
 *              [-P PAUSE_MS] [-s SLOW_MS] [-x BODY_PREFIX]
 *              [-a ACK_FILE] [-l LOG_FILE] [-r READY_FILE]
 *
 * Each worker cycles GET /, GET /slow?ms=SLOW_MS and POST /work with a
 * distinct body ("PREFIX-wW-N") against 127.0.0.1:PORT.  Even-numbered
 * workers keep their connection alive; odd-numbered ones send
 * "Connection: close", so both paths through a proxy are exercised.
 * It stops at the first of: MAX_REQUESTS requests started, MAX_SECONDS
 * elapsed, SIGTERM/SIGINT (requests in progress are finished first).
 * READY_FILE is created once the first request has completed.
 *
 * The last line on stdout is a summary of key=value pairs:
 *   total ok http_error reset closed timeout connect other acked
 * and the exit status is 0 if every request succeeded, 1 otherwise
 * (2 for a usage error).  LOG_FILE gets one line per request:
 *   MS_SINCE_START WORKER METHOD PATH OUTCOME STATUS LATENCY_MS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_TIMEOUT_MS 5000
#define MAX_WORKERS 64

enum outcome { O_OK, O_HTTP, O_RESET, O_CLOSED, O_TIMEOUT, O_CONNECT, O_OTHER, O_N };
static const char *outcome_name[O_N] = {"ok",      "http_error", "reset", "closed",
                                        "timeout", "connect",    "other"};

static unsigned port, workers = 4, pause_ms = 5, slow_ms = 200;
static long max_requests = 5000;
static unsigned max_seconds = 30;
static const char *prefix = "body", *ack_path, *log_path, *ready_path;

static atomic_int stop_flag;
static atomic_long started_requests;
static atomic_long counts[O_N];
static atomic_long acked;
static atomic_int ready_done;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *ack_file, *log_file;
static long long t_start, t_end;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&stop_flag, 1);
}

/* Wait for `ev` on fd until `deadline`; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short ev, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

static enum outcome errno_outcome(int e) {
  if (e == ECONNRESET || e == EPIPE) return O_RESET;
  if (e == ETIMEDOUT) return O_TIMEOUT;
  return O_OTHER;
}

static int connect_lb(long long deadline, enum outcome *why) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = O_OTHER;
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    if (e == EINPROGRESS) {
      int w = wait_fd(fd, POLLOUT, deadline);
      socklen_t sl = sizeof e;
      e = 0;
      if (w == 0) e = ETIMEDOUT;
      else if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0) e = errno ? errno : EIO;
    }
    if (e) {
      close(fd);
      *why = e == ETIMEDOUT ? O_TIMEOUT : O_CONNECT;
      return -1;
    }
  }
  return fd;
}

static int send_all(int fd, const char *p, size_t len, long long deadline, enum outcome *why) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      int w = wait_fd(fd, POLLOUT, deadline);
      if (w > 0) continue;
      *why = w == 0 ? O_TIMEOUT : O_OTHER;
      return -1;
    }
    *why = errno_outcome(errno);
    return -1;
  }
  return 0;
}

/* Header value (case-insensitive name) within head; copies into out. */
static int header(const char *head, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = strcspn(v, "\r\n");
      if (vl >= outlen) vl = outlen - 1;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 1;
    }
  }
  return 0;
}

typedef struct {
  int status;
  int close_after;
  char body[256];
} resp_t;

/* Read one response.  0 ok (resp filled), -1 failed (*why set). */
static int read_response(int fd, long long deadline, resp_t *r, enum outcome *why) {
  char buf[8192];
  size_t len = 0;
  char *eoh = NULL;
  for (;;) {
    if (len > 0) {
      buf[len] = 0;
      eoh = strstr(buf, "\r\n\r\n");
      if (eoh) break;
    }
    if (len >= sizeof buf - 1) {
      *why = O_OTHER;
      return -1;
    }
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n == 0) {
      *why = O_CLOSED;
      return -1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      int w = wait_fd(fd, POLLIN, deadline);
      if (w > 0) continue;
      *why = w == 0 ? O_TIMEOUT : O_OTHER;
      return -1;
    }
    *why = errno_outcome(errno);
    return -1;
  }
  *eoh = 0;
  if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
    *why = O_OTHER;
    return -1;
  }
  r->status = atoi(buf + 9);
  char v[64];
  long clen = -1;
  if (header(buf, "Content-Length", v, sizeof v)) clen = strtol(v, NULL, 10);
  r->close_after = buf[7] == '0';
  if (header(buf, "Connection", v, sizeof v)) {
    if (strcasecmp(v, "close") == 0) r->close_after = 1;
    else if (strcasecmp(v, "keep-alive") == 0) r->close_after = 0;
  }
  char tmp[8];
  if (header(buf, "Transfer-Encoding", tmp, sizeof tmp)) {
    *why = O_OTHER;
    return -1;
  } /* not used here */
  size_t have = len - (size_t)(eoh + 4 - buf);
  const char *body = eoh + 4;
  size_t blen = 0;
  r->body[0] = 0;
  if (clen < 0) { /* read until close */
    r->close_after = 1;
    clen = LONG_MAX;
  }
  for (;;) {
    size_t take = have < sizeof r->body - 1 - blen ? have : sizeof r->body - 1 - blen;
    memcpy(r->body + blen, body, take);
    blen += take;
    r->body[blen] = 0;
    clen -= (long)have;
    if (clen <= 0) return 0;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      body = buf;
      have = (size_t)n;
      continue;
    }
    if (n == 0) {
      if (clen > LONG_MAX / 2) return 0; /* close-delimited body */
      *why = O_CLOSED;
      return -1;
    }
    if (errno == EINTR) {
      have = 0;
      continue;
    }
    if (errno == EAGAIN) {
      have = 0;
      int w = wait_fd(fd, POLLIN, deadline);
      if (w > 0) continue;
      *why = w == 0 ? O_TIMEOUT : O_OTHER;
      return -1;
    }
    *why = errno_outcome(errno);
    return -1;
  }
}

static void *worker(void *arg) {
  unsigned w = (unsigned)(uintptr_t)arg;
  int keepalive = (w % 2) == 0;
  int fd = -1;
  char req[1024], body[128], path[64];
  for (unsigned long i = 0;; i++) {
    if (atomic_load(&stop_flag)) break;
    if (now_ms() - t_start >= (long long)max_seconds * 1000) break;
    if (atomic_fetch_add(&started_requests, 1) >= max_requests) break;
    unsigned kind = (unsigned)((i + w) % 3);
    const char *method = kind == 2 ? "POST" : "GET";
    int rl;
    body[0] = 0;
    const char *conn = keepalive ? "keep-alive" : "close";
    if (kind == 0) {
      snprintf(path, sizeof path, "/");
      rl = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: lb\r\nConnection: %s\r\n\r\n", conn);
    } else if (kind == 1) {
      snprintf(path, sizeof path, "/slow?ms=%u", slow_ms);
      rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: lb\r\nConnection: %s\r\n\r\n", path,
                    conn);
    } else {
      snprintf(path, sizeof path, "/work");
      snprintf(body, sizeof body, "%s-w%u-%lu", prefix, w, i);
      rl = snprintf(req, sizeof req,
                    "POST /work HTTP/1.1\r\nHost: lb\r\nConnection: %s\r\n"
                    "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                    conn, strlen(body), body);
    }
    long long t0 = now_ms(), deadline = t0 + REQ_TIMEOUT_MS;
    enum outcome o = O_OK;
    resp_t r;
    memset(&r, 0, sizeof r);
    r.status = 0;
    if (fd < 0) fd = connect_lb(deadline, &o);
    if (fd >= 0 && send_all(fd, req, (size_t)rl, deadline, &o) == 0 &&
        read_response(fd, deadline, &r, &o) == 0) {
      const char *want = kind == 0 ? "ok\n" : kind == 1 ? "slow done\n" : "recorded\n";
      if (r.status != 200) o = O_HTTP;
      else if (strcmp(r.body, want) != 0) o = O_OTHER;
      if (r.close_after || !keepalive) {
        close(fd);
        fd = -1;
      }
    } else if (fd >= 0) {
      close(fd);
      fd = -1;
    }
    long long t1 = now_ms();
    atomic_fetch_add(&counts[o], 1);
    pthread_mutex_lock(&out_lock);
    if (o == O_OK && kind == 2 && ack_file) {
      fprintf(ack_file, "%s\n", body);
      fflush(ack_file);
      atomic_fetch_add(&acked, 1);
    } else if (o == O_OK && kind == 2) {
      atomic_fetch_add(&acked, 1);
    }
    if (log_file)
      fprintf(log_file, "%lld %u %s %s %s %d %lld\n", t1 - t_start, w, method, path,
              outcome_name[o], r.status, t1 - t0);
    pthread_mutex_unlock(&out_lock);
    if (ready_path && !atomic_exchange(&ready_done, 1)) {
      FILE *f = fopen(ready_path, "w");
      if (f) fclose(f);
    }
    if (o != O_OK) {
      /* Back off a little after a failure, so an outage (where errors come
       * back at once) is not counted at a far higher request rate. */
      struct timespec ts = {0, 20 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (pause_ms) {
      struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  if (fd >= 0) close(fd);
  return NULL;
}

static int num(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int usage(void) {
  fputs("usage: loadclient -p PORT [-c WORKERS] [-n MAX_REQUESTS] [-t MAX_SECONDS]\n"
        "                  [-P PAUSE_MS] [-s SLOW_MS] [-x BODY_PREFIX]\n"
        "                  [-a ACK_FILE] [-l LOG_FILE] [-r READY_FILE]\n",
        stderr);
  return 2;
}

int main(int argc, char **argv) {
  int opt;
  long v;
  while ((opt = getopt(argc, argv, "p:c:n:t:P:s:x:a:l:r:")) != -1) {
    switch (opt) {
      case 'p':
        if (num(optarg, 1, 65535, &v)) return usage();
        port = (unsigned)v;
        break;
      case 'c':
        if (num(optarg, 1, MAX_WORKERS, &v)) return usage();
        workers = (unsigned)v;
        break;
      case 'n':
        if (num(optarg, 1, 1000000, &v)) return usage();
        max_requests = v;
        break;
      case 't':
        if (num(optarg, 1, 600, &v)) return usage();
        max_seconds = (unsigned)v;
        break;
      case 'P':
        if (num(optarg, 0, 10000, &v)) return usage();
        pause_ms = (unsigned)v;
        break;
      case 's':
        if (num(optarg, 0, 60000, &v)) return usage();
        slow_ms = (unsigned)v;
        break;
      case 'x': prefix = optarg; break;
      case 'a': ack_path = optarg; break;
      case 'l': log_path = optarg; break;
      case 'r': ready_path = optarg; break;
      default: return usage();
    }
  }
  if (!port || optind != argc || strlen(prefix) > 64) return usage();
  for (const char *p = prefix; *p; p++)
    if (*p <= ' ' || *p > '~') return usage();
  if (ack_path && !(ack_file = fopen(ack_path, "w"))) {
    perror(ack_path);
    return 2;
  }
  if (log_path && !(log_file = fopen(log_path, "w"))) {
    perror(log_path);
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  t_start = now_ms();
  pthread_t th[MAX_WORKERS];
  unsigned n = 0;
  for (; n < workers; n++)
    if (pthread_create(&th[n], NULL, worker, (void *)(uintptr_t)n) != 0) break;
  if (n == 0) {
    fputs("loadclient: cannot start threads\n", stderr);
    return 2;
  }
  for (unsigned i = 0; i < n; i++) pthread_join(th[i], NULL);
  t_end = now_ms();
  if (ack_file) fclose(ack_file);
  if (log_file) fclose(log_file);

  long total = 0, failed = 0;
  for (int i = 0; i < O_N; i++) {
    total += atomic_load(&counts[i]);
    if (i != O_OK) failed += atomic_load(&counts[i]);
  }
  printf("total=%ld", total);
  for (int i = 0; i < O_N; i++) printf(" %s=%ld", outcome_name[i], atomic_load(&counts[i]));
  printf(" acked=%ld elapsed_ms=%lld\n", atomic_load(&acked), t_end - t_start);
  return failed ? 1 : 0;
}
