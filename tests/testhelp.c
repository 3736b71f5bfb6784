#define _GNU_SOURCE
#include "testhelp.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TH_HAVE_VALGRIND_H 1
#endif
#endif

uint64_t th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_loopback(unsigned port, unsigned timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, (int)timeout_ms) != 1) {
      close(fd);
      return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* Where the header block ends (index after CRLFCRLF), or 0. */
static size_t head_end(const char *buf, size_t len) {
  for (size_t i = 3; i < len; i++)
    if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' && buf[i] == '\n')
      return i + 1;
  return 0;
}

static long content_length(const char *head) {
  const char *p = head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "Content-Length:", 15) == 0) return strtol(p + 15, NULL, 10);
  }
  return -1;
}

int th_http_raw(unsigned port, const char *raw, size_t raw_len, int head_only, unsigned timeout_ms,
                th_response_t *out) {
  memset(out, 0, sizeof *out);
  out->status = -1;
  uint64_t deadline = th_now_ms() + timeout_ms;
  int fd = connect_loopback(port, timeout_ms);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < raw_len) {
    ssize_t n = send(fd, raw + off, raw_len - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      uint64_t now = th_now_ms();
      if (now >= deadline) break;
      struct pollfd p = {fd, POLLOUT, 0};
      poll(&p, 1, (int)(deadline - now));
      continue;
    }
    break; /* peer closed early: still read what it said */
  }
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap + 1);
  int rc = -1;
  for (;;) {
    size_t he = head_end(buf, len);
    if (he) {
      buf[len] = 0;
      long cl = content_length(buf);
      if (head_only && len >= he) {
        rc = 0;
        break;
      }
      if (cl >= 0 && len >= he + (size_t)cl) {
        rc = 0;
        break;
      }
    }
    uint64_t now = th_now_ms();
    if (now >= deadline) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)(deadline - now)) <= 0) continue;
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
    }
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n > 0) {
      len += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    rc = head_end(buf, len) ? 0 : -1; /* closed */
    break;
  }
  close(fd);
  buf[len] = 0;
  size_t he = head_end(buf, len);
  if (he == 0) he = len;
  out->head = strndup(buf, he);
  out->body_len = len - he;
  out->body = malloc(out->body_len + 1);
  memcpy(out->body, buf + he, out->body_len);
  out->body[out->body_len] = 0;
  free(buf);
  if (strncmp(out->head, "HTTP/1.", 7) == 0 && strlen(out->head) > 12)
    out->status = atoi(out->head + 9);
  return out->status > 0 ? rc : -1;
}

int th_http(unsigned port, const char *method, const char *path, th_response_t *out) {
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", method, path);
  return th_http_raw(port, req, (size_t)n, strcmp(method, "HEAD") == 0, TS(5000), out);
}

const char *th_header(const th_response_t *r, const char *name, char *buf, size_t len) {
  size_t nl = strlen(name);
  const char *p = r->head;
  while (p && (p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t i = 0;
      while (v[i] && v[i] != '\r' && v[i] != '\n' && i + 1 < len) {
        buf[i] = v[i];
        i++;
      }
      buf[i] = 0;
      return buf;
    }
  }
  return NULL;
}

void th_response_free(th_response_t *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof *r);
}

int th_wait_until(int (*cond)(void *arg), void *arg, unsigned timeout_ms) {
  uint64_t deadline = th_now_ms() + timeout_ms;
  for (;;) {
    if (cond(arg)) return 1;
    if (th_now_ms() >= deadline) return 0;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

int th_blackhole(unsigned *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int th_script(const char *script, const char *args, char *out, size_t outlen) {
  const char *src = getenv("top_srcdir");
  if (!src) src = ".";
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "/bin/sh '%s/tests/%s' %s", src, script, args ? args : "");
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t len = 0;
  if (out && outlen) {
    out[0] = 0;
    size_t n;
    while (len + 1 < outlen && (n = fread(out + len, 1, outlen - 1 - len, p)) > 0) len += n;
    out[len] = 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r')) out[--len] = 0;
  }
  char sink[256];
  while (fread(sink, 1, sizeof sink, p) > 0) {}
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *th_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  char *path = NULL;
  if (asprintf(&path, "%s/libhealth-%s-XXXXXX", base, tag) < 0) return NULL;
  if (!mkdtemp(path)) {
    free(path);
    return NULL;
  }
  return path;
}

int th_require_servers(void) {
  const char *v = getenv("HEALTH_TEST_REQUIRE_SERVERS");
  return v && *v && strcmp(v, "0") != 0;
}

unsigned th_time_scale(void) {
  const char *v = getenv("HEALTH_TEST_TIME_SCALE");
  if (!v || !*v) return 1;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (*end || n < 1) return 1;
  return n > 1000 ? 1000u : (unsigned)n;
}

int th_under_valgrind(void) {
#ifdef TH_HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND) return 1;
#endif
  const char *v = getenv("HEALTH_TEST_VALGRIND");
  return v && *v && strcmp(v, "0") != 0;
}

int th_connect_from(const char *src, unsigned port, unsigned timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  if (src) {
    if (inet_pton(AF_INET, src, &a.sin_addr) != 1) goto fail;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) goto fail;
  }
  a.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (errno != EINPROGRESS) goto fail;
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms == TH_FOREVER ? -1 : (int)timeout_ms) != 1) goto fail;
    int e = 0;
    socklen_t el = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) goto fail;
  }
  return fd;
fail:
  close(fd);
  return -1;
}

int th_send_all(int fd, const void *buf, size_t len, unsigned timeout_ms) {
  const char *p = buf;
  uint64_t deadline = th_now_ms() + timeout_ms;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      uint64_t now = th_now_ms();
      if (now >= deadline) return -1;
      struct pollfd pf = {fd, POLLOUT, 0};
      poll(&pf, 1, (int)(deadline - now));
      continue;
    }
    return -1;
  }
  return 0;
}

int th_status(unsigned port, const char *method, const char *path) {
  th_response_t r;
  th_http(port, method, path, &r);
  int st = r.status;
  th_response_free(&r);
  return st;
}

int th_status_is(void *arg) {
  th_want_t *w = arg;
  return th_status(w->port, "GET", w->path) == w->want;
}

/* The process's threads, or -1 when /proc cannot tell. */
static int thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* The count th_threads_mark() took, in the process that took it (Check
 * forks a child per test: a mark of the parent does not hold there). */
static int mark_count;
static pid_t mark_pid;

static void *no_op(void *arg) { return arg; }

void th_threads_mark(void) {
  if (mark_pid == getpid()) return; /* the first mark of a test holds */
  /* ThreadSanitizer starts its background thread with a process's first
   * thread: start and join one, so that the count includes it. */
  pthread_t t;
  if (pthread_create(&t, NULL, no_op, NULL) == 0) pthread_join(t, NULL);
  mark_count = thread_count();
  mark_pid = getpid();
}

int th_single_thread(void *arg) {
  (void)arg;
  int n = thread_count();
  if (n < 0) return 1; /* cannot tell: do not wait */
  /* The runtime's own threads (ThreadSanitizer's background thread, a
   * timer's) were there at the mark and stay; without a mark, only the
   * main thread may be left. */
  return n <= (mark_pid == getpid() && mark_count > 0 ? mark_count : 1);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;
static size_t log_len, log_lines;

void th_capture_log(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)arg;
  if (getenv("HEALTH_TEST_LOG")) fprintf(stderr, "%s\n", line); /* for debugging */
  size_t n = strlen(line);
  pthread_mutex_lock(&log_lock);
  char *p = realloc(log_text, log_len + n + 2);
  if (p) {
    memcpy(p + log_len, line, n);
    p[log_len + n] = '\n';
    p[log_len + n + 1] = 0;
    log_text = p;
    log_len += n + 1;
    log_lines++;
  }
  pthread_mutex_unlock(&log_lock);
}

/* The library's log writers (core/logq.c) deliver lines asynchronously: what
 * was logged before a call here has reached th_capture_log() after this. */
int health__log_flush_all(uint64_t until_mono_ms);
static void log_settle(void) { health__log_flush_all(th_now_ms() + TS(5000)); }

int th_log_contains(const char *s) {
  log_settle();
  pthread_mutex_lock(&log_lock);
  int found = log_text && strstr(log_text, s) != NULL;
  pthread_mutex_unlock(&log_lock);
  return found;
}

int th_log_count(const char *s) {
  log_settle();
  int n = 0;
  pthread_mutex_lock(&log_lock);
  for (const char *p = log_text; p && (p = strstr(p, s)) != NULL; p++) n++;
  pthread_mutex_unlock(&log_lock);
  return n;
}

size_t th_log_lines(void) {
  log_settle();
  pthread_mutex_lock(&log_lock);
  size_t n = log_lines;
  pthread_mutex_unlock(&log_lock);
  return n;
}

const char *th_log_text(void) {
  log_settle();
  return log_text;
}

void th_log_clear(void) {
  log_settle();
  pthread_mutex_lock(&log_lock);
  free(log_text);
  log_text = NULL;
  log_len = 0;
  log_lines = 0;
  pthread_mutex_unlock(&log_lock);
}

int th_run_suite(Suite *s, enum print_output mode, enum fork_status fork) {
  SRunner *sr = srunner_create(s);
  if (fork != CK_FORK_GETENV) srunner_set_fork_status(sr, fork);
  srunner_run_all(sr, mode);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed;
}

int th_server_skip(int rc, const char *prog, const char *note) {
  if (rc != 77 || th_require_servers()) return 0;
  fprintf(stderr, "%s: %s\n", prog, note);
  return 1;
}

void th_remove_dir(const char *prog, const char *dir) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "%s: could not remove %s\n", prog, dir);
}

int th_private_mounts(char *why, size_t len) {
  static int done;
  if (done) return 0;
  /* A private mount namespace (this process only: Check runs each test in
   * a forked child, still single-threaded here). */
  if (unshare(CLONE_NEWNS) != 0) {
    snprintf(why, len, "unshare(CLONE_NEWNS): %s", strerror(errno));
    return -1;
  }
  /* "none", not NULL: the kernel ignores both here, valgrind reads them */
  if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) {
    snprintf(why, len, "mount --make-rprivate /: %s", strerror(errno));
    return -1;
  }
  done = 1;
  return 0;
}

int th_mount_file(const char *target, const char *content, char *why, size_t len) {
  if (th_private_mounts(why, len) != 0) return -1;
  char *dir = th_tmpdir("etc");
  char path[512];
  FILE *f = NULL;
  if (dir) {
    snprintf(path, sizeof path, "%s/file", dir);
    f = fopen(path, "w");
  }
  if (!f) {
    snprintf(why, len, "cannot write a file for %s", target);
    free(dir);
    return -1;
  }
  fputs(content, f);
  fclose(f);
  int rc = mount(path, target, "none", MS_BIND, NULL);
  int e = errno;
  unlink(path); /* the mount keeps the file */
  rmdir(dir);
  free(dir);
  if (rc != 0) {
    snprintf(why, len, "bind-mount over %s: %s", target, strerror(e));
    return -1;
  }
  return 0;
}

int th_hang_dns(char *why, size_t len) {
  th_threads_mark(); /* th_dns_unhang() waits for the resolver threads only */
  if (th_private_mounts(why, len) != 0) return -1;
  /* A name server that receives every query and answers none. */
  int fd = -1;
  char addr[32] = "";
  for (int i = 53; i < 63 && fd < 0; i++) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    snprintf(addr, sizeof addr, "127.0.0.%d", i);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    snprintf(why, len, "no loopback address with UDP port 53 free: %s", strerror(errno));
    return -1;
  }
  char conf[128];
  snprintf(conf, sizeof conf, "nameserver %s\noptions timeout:30 attempts:1\n", addr);
  if (th_mount_file("/etc/resolv.conf", conf, why, len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ---- a misbehaving peer ---- */

struct th_peer {
  int lfd, stop[2];
  char *reply;
  size_t len;
  int rst;
  pthread_t thread;
};

static void *peer_main(void *arg) {
  th_peer_t *p = arg;
  for (;;) {
    struct pollfd f[2] = {{p->lfd, POLLIN, 0}, {p->stop[0], POLLIN, 0}};
    if (poll(f, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (f[1].revents) break;
    int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (p->reply) {
      /* Answer the client's first message, whatever it was. */
      struct pollfd r = {c, POLLIN, 0};
      char buf[512];
      if (poll(&r, 1, 2000) > 0 && recv(c, buf, sizeof buf, 0) > 0)
        (void)send(c, p->reply, p->len, MSG_NOSIGNAL);
    }
    if (p->rst) {
      struct linger l = {1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c);
  }
  return NULL;
}

th_peer_t *th_peer_start(const char *reply, size_t len, int rst, unsigned *port) {
  th_peer_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->rst = rst;
  p->len = len;
  p->stop[0] = p->stop[1] = -1;
  if (reply && !(p->reply = malloc(len ? len : 1))) goto fail;
  if (reply) memcpy(p->reply, reply, len);
  if ((p->lfd = th_blackhole(port)) < 0) goto fail;
  if (pipe2(p->stop, O_CLOEXEC) != 0) goto fail_listen;
  if (pthread_create(&p->thread, NULL, peer_main, p) != 0) goto fail_pipe;
  return p;
fail_pipe:
  close(p->stop[0]);
  close(p->stop[1]);
fail_listen:
  close(p->lfd);
fail:
  free(p->reply);
  free(p);
  return NULL;
}

void th_peer_stop(th_peer_t *p) {
  if (!p) return;
  (void)!write(p->stop[1], "x", 1);
  pthread_join(p->thread, NULL);
  close(p->stop[0]);
  close(p->stop[1]);
  close(p->lfd);
  free(p->reply);
  free(p);
}

int th_one_of(const char *s, const char *alternatives) {
  size_t n = strlen(s);
  for (const char *a = alternatives;;) {
    size_t k = strcspn(a, "|");
    if (k == n && strncmp(a, s, n) == 0) return 1;
    if (!a[k]) return 0;
    a += k + 1;
  }
}

int th_has_one_of(const char *s, const char *alternatives) {
  for (const char *a = alternatives;;) {
    size_t k = strcspn(a, "|");
    if (k && memmem(s, strlen(s), a, k)) return 1;
    if (!a[k]) return 0;
    a += k + 1;
  }
}

int th_dns_refuse(int fd) {
  int n = 0;
  for (;;) {
    unsigned char q[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t len = recvfrom(fd, q, sizeof q, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (len < 0) return n;
    if (len < 12) continue;
    q[2] |= 0x80;                              /* a response */
    q[3] = (unsigned char)((q[3] & 0xf0) | 5); /* REFUSED */
    (void)sendto(fd, q, (size_t)len, 0, (struct sockaddr *)&from, fl);
    n++;
  }
}

void th_dns_unhang(int fd, unsigned timeout_ms) {
  uint64_t t0 = th_now_ms();
  while (!th_single_thread(NULL) && th_now_ms() - t0 < timeout_ms) {
    th_dns_refuse(fd);
    struct pollfd p = {fd, POLLIN, 0};
    (void)poll(&p, 1, 10); /* a query, or 10 ms for the threads to exit */
  }
}
