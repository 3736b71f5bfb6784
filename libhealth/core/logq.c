/*
 * The log queue: no thread of the library or the application ever waits
 * for a log sink.
 *
 * A container's log driver may stop reading (Docker's default
 * mode=blocking, a throttled awslogs or fluentd); a write(2) to its pipe
 * then blocks, and a thread that blocks while holding a lock hands the
 * stall to every thread that needs the lock, probes and shutdown
 * included.  So while a handle is started, core/log.c formats a line and hands
 * it to this file, which appends it to a bounded in-memory queue under a
 * lock of its own (never held across a write or a sink call) and wakes
 * the handle's writer thread.  The writer alone calls the application's
 * log_fn, or writes to stderr.  Queue full: the line is dropped and
 * counted (/metrics: libhealth_log_lines_dropped_total); the first line
 * the sink takes after drops is followed by one "log_dropped" line with
 * the count.
 *
 * Writes to stderr never block for long, even on the writer: the fd is
 * the application's, so its file status flags are left alone; each write
 * is preceded by poll(POLLOUT) with a timeout and carries at most
 * PIPE_BUF bytes, so a write to a pipe is atomic (a line of the library is
 * never cut by the application's own writes).  The writer writes a pipe
 * through its own O_NONBLOCK descriptor of it (writer_fd()), so even a
 * race with another writer filling the pipe cannot block it.  A socket
 * gets send(MSG_DONTWAIT | MSG_NOSIGNAL).  A reader that has gone gives EPIPE:
 * the writer blocks every signal, and the SIGPIPE the kernel raised on it
 * (thread-directed) is consumed.
 *
 * Outside start..stop (before health_start, after health_stop, in a child
 * after fork) there is no writer: the line goes out on the caller's thread
 * by the same bounded write (SIGPIPE blocked around it, a pending one it
 * raised consumed), with a short poll timeout that drops to zero once a
 * write has timed out until one succeeds again.  A log_fn is then called
 * directly, as before start only the application's own threads log.
 *
 * fd 2 closed when the handle was created: the default sink is off for
 * that handle (a later descriptor that takes number 2 is not stderr).
 */
#include "health_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_LINES 1024
#define QUEUE_BYTES (256u * 1024u)
#define WRITER_POLL_MS 200 /* how often a blocked writer looks at `stopping` */
#define SYNC_POLL_MS 100   /* a caller's thread waits at most this per line */
#define STOP_FLUSH_MS 1000 /* health_stop() waits this long for queued lines */

typedef struct {
  char *line; /* the JSON text, then '\n', then NUL */
  size_t len; /* without the '\n' */
  health_log_level_t level;
} entry_t;

struct health__logq {
  pthread_mutex_t mu;
  pthread_cond_t work; /* the writer waits: a line, or stop */
  pthread_cond_t idle; /* flushers wait: queue empty and nothing in hand */
  entry_t ring[QUEUE_LINES];
  unsigned head, count;
  size_t bytes;
  int running, stopping, busy;
  pid_t pid; /* the process the writer runs in (fork) */
  uint64_t stop_until;
  unsigned long long unreported; /* drops not yet told by a log_dropped line */
  pthread_t thread;
  health__logq_t *next_running; /* all_running's list, under all_mu */
  health_log_fn fn;             /* NULL: stderr */
  void *arg;
  int stderr_off;
  int nb_fd; /* the writer's own descriptor of a stderr pipe, or -1 */
  dev_t nb_dev;
  ino_t nb_ino;
  atomic_ullong dropped;
};

/* Every running writer's queue, for health__log_flush_all(). */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static health__logq_t *all_running;

/* Callers' threads without a handle (h == NULL), and handles whose last
 * synchronous write timed out, do not wait again until one succeeds. */
static atomic_int sync_stuck;

/* ---- bounded writes to stderr ---- */

/* Consume a SIGPIPE raised by our own write on this thread, unless one was
 * already pending before (that one is the application's). */
static void eat_sigpipe(int was_pending) {
  if (was_pending) return;
  sigset_t p, s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  if (sigpending(&p) == 0 && sigismember(&p, SIGPIPE)) {
    struct timespec zero = {0, 0};
    int r;
    do r = sigtimedwait(&s, NULL, &zero);
    while (r < 0 && errno == EINTR);
  }
}

/*
 * Write buf (len bytes) to fd 2, each write at most PIPE_BUF and preceded
 * by poll.  `until`: a health__now_ms() bound for the whole line, 0 for
 * none until `stop_q` (the writer's queue, or NULL) stops: then its
 * stop_until.  1 written, 0 not (timeout, error).  A line is cut short
 * only when the time runs out after part of it went out (a line longer
 * than PIPE_BUF, or a tty or socket that took part of a chunk).
 */
static int write_stderr(int fd, int sock, const char *buf, size_t len, uint64_t until,
                        health__logq_t *stop_q) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  /* Blocking SIGPIPE first makes a write to a closed pipe return EPIPE on
   * this thread instead of killing the process (application threads). */
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pend;
  int was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
  size_t off = 0;
  int ok = 1;
  while (off < len) {
    int timeout = WRITER_POLL_MS;
    if (until) {
      uint64_t now = health__now_ms();
      if (now >= until && off == 0) {
        /* nothing written yet: one look without waiting */
        timeout = 0;
      } else if (now >= until) {
        ok = 0;
        break;
      } else if (until - now < (uint64_t)timeout) {
        timeout = (int)(until - now);
      }
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (r > 0 && (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & POLLOUT))) {
      ok = 0;
      break;
    }
    if (r == 0) {
      if (!until && stop_q) {
        pthread_mutex_lock(&stop_q->mu);
        if (stop_q->stopping) until = stop_q->stop_until;
        pthread_mutex_unlock(&stop_q->mu);
      }
      if (until && health__now_ms() >= until) {
        ok = 0;
        break;
      }
      continue;
    }
    size_t n = len - off < PIPE_BUF ? len - off : PIPE_BUF;
    ssize_t w =
        sock ? send(fd, buf + off, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(fd, buf + off, n);
    if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (w <= 0) {
      ok = 0;
      break;
    }
    off += (size_t)w;
  }
  eat_sigpipe(was_pending);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return ok;
}

/* The line on the caller's thread, bounded; for no handle or no writer. */
static void write_sync(health__logq_t *q, health_log_level_t level, char *line, size_t len) {
  if (q && q->fn) {
    line[len] = 0;
    q->fn(level, line, q->arg);
    return;
  }
  struct stat st;
  if ((q && q->stderr_off) || fstat(STDERR_FILENO, &st) != 0) return;
  uint64_t wait = atomic_load(&sync_stuck) ? 0 : SYNC_POLL_MS;
  line[len] = '\n';
  /* A pipe through a descriptor of our own, O_NONBLOCK (see writer_fd()). */
  int fd = S_ISFIFO(st.st_mode)
               ? health__fd_hoist(open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC))
               : -1;
  int ok = write_stderr(fd >= 0 ? fd : STDERR_FILENO, S_ISSOCK(st.st_mode), line, len + 1,
                        health__now_ms() + wait, NULL);
  if (fd >= 0) close(fd);
  line[len] = 0;
  atomic_store(&sync_stuck, !ok);
  if (!ok && q) atomic_fetch_add(&q->dropped, 1);
}

/* ---- the writer ---- */

/*
 * The descriptor the writer writes stderr's lines to.  A pipe or FIFO is
 * opened again through /proc: a new open file description of the same
 * pipe, which can be O_NONBLOCK without touching the application's fd 2.
 * Then a write never blocks even when another writer (the application)
 * fills the pipe between poll and write, so health_stop() can always join
 * the writer.  Opened again when fd 2 has become another file (dup2).
 * Regular files and ttys: fd 2 itself, behind poll.
 */
static int writer_fd(health__logq_t *q, int *sock) {
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return -1;
  *sock = S_ISSOCK(st.st_mode);
  if (!S_ISFIFO(st.st_mode)) return STDERR_FILENO;
  if (q->nb_fd >= 0 && q->nb_dev == st.st_dev && q->nb_ino == st.st_ino) return q->nb_fd;
  if (q->nb_fd >= 0) close(q->nb_fd);
  q->nb_fd = health__fd_hoist(open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  q->nb_dev = st.st_dev;
  q->nb_ino = st.st_ino;
  return q->nb_fd >= 0 ? q->nb_fd : STDERR_FILENO;
}

/* Hand one line to the sink; 1 taken, 0 not. */
static int deliver(health__logq_t *q, health_log_level_t level, char *line, size_t len) {
  if (q->fn) {
    line[len] = 0;
    q->fn(level, line, q->arg);
    return 1;
  }
  if (q->stderr_off) return 1;
  line[len] = '\n';
  pthread_mutex_lock(&q->mu);
  uint64_t until = q->stopping ? q->stop_until : 0;
  pthread_mutex_unlock(&q->mu);
  int sock = 0, fd = writer_fd(q, &sock);
  int ok = fd >= 0 && write_stderr(fd, sock, line, len + 1, until, q);
  line[len] = 0;
  return ok;
}

static void *writer_main(void *arg) {
  health__logq_t *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (q->count == 0 && !q->stopping) pthread_cond_wait(&q->work, &q->mu);
    if (q->count == 0) break;
    if (q->stopping && health__now_ms() >= q->stop_until) break;
    entry_t e = q->ring[q->head];
    q->head = (q->head + 1) % QUEUE_LINES;
    q->count--;
    q->bytes -= e.len;
    q->busy = 1;
    pthread_mutex_unlock(&q->mu);
    int ok = deliver(q, e.level, e.line, e.len);
    free(e.line);
    pthread_mutex_lock(&q->mu);
    if (!ok) {
      atomic_fetch_add(&q->dropped, 1);
      q->unreported++;
    } else if (q->unreported) {
      /* The sink takes lines again: say how many it missed. */
      unsigned long long n = q->unreported;
      q->unreported = 0;
      pthread_mutex_unlock(&q->mu);
      char num[24];
      snprintf(num, sizeof num, "%llu", n);
      health__buf_t b;
      health__buf_init(&b);
      health__log_format(&b, HEALTH_LOG_WARN, "log_dropped", NULL, "#lines", num, "reason",
                         "the log sink did not keep up; see libhealth_log_lines_dropped_total",
                         NULL);
      health__buf_add(&b, "\n", 1);
      if (!b.failed) deliver(q, HEALTH_LOG_WARN, b.data, b.len - 1);
      health__buf_free(&b);
      pthread_mutex_lock(&q->mu);
    }
    q->busy = 0;
    if (q->count == 0) pthread_cond_broadcast(&q->idle);
  }
  /* Stopped with lines left (a sink that did not take them in time). */
  while (q->count) {
    free(q->ring[q->head].line);
    q->head = (q->head + 1) % QUEUE_LINES;
    q->count--;
    atomic_fetch_add(&q->dropped, 1);
  }
  q->bytes = 0;
  q->running = 0;
  pthread_cond_broadcast(&q->idle);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* ---- the calls core/log.c and the lifecycle make ---- */

health__logq_t *health__logq_new(health_log_fn fn, void *arg) {
  health__logq_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  if (pthread_mutex_init(&q->mu, NULL) != 0) goto fail;
  if (pthread_cond_init(&q->work, NULL) != 0) goto fail_mu;
  if (health__cond_init_monotonic(&q->idle) != 0) goto fail_work;
  q->fn = fn;
  q->arg = arg;
  q->nb_fd = -1;
  q->stderr_off = !fn && fcntl(STDERR_FILENO, F_GETFD) < 0;
  return q;
fail_work:
  pthread_cond_destroy(&q->work);
fail_mu:
  pthread_mutex_destroy(&q->mu);
fail:
  free(q);
  return NULL;
}

void health__logq_free(health__logq_t *q) {
  if (!q) return;
  health__logq_stop(q);
  if (q->nb_fd >= 0) close(q->nb_fd);
  pthread_cond_destroy(&q->idle);
  pthread_cond_destroy(&q->work);
  pthread_mutex_destroy(&q->mu);
  free(q);
}

int health__logq_start(health__logq_t *q) {
  if (!q) return 0;
  pthread_mutex_lock(&q->mu);
  int rc = 0;
  if (!q->running) {
    q->stopping = 0;
    q->pid = getpid();
    rc = health__thread_create(&q->thread, writer_main, q, 0);
    if (rc == 0) q->running = 1;
  }
  pthread_mutex_unlock(&q->mu);
  if (rc == 0) {
    pthread_mutex_lock(&all_mu);
    q->next_running = all_running;
    all_running = q;
    pthread_mutex_unlock(&all_mu);
  }
  return rc;
}

void health__logq_stop(health__logq_t *q) {
  if (!q) return;
  pthread_mutex_lock(&q->mu);
  int joinable = q->running && q->pid == getpid() && !q->stopping;
  if (joinable) {
    q->stopping = 1;
    q->stop_until = health__now_ms() + STOP_FLUSH_MS;
    pthread_cond_signal(&q->work);
  }
  pthread_mutex_unlock(&q->mu);
  if (!joinable) return;
  pthread_join(q->thread, NULL);
  pthread_mutex_lock(&all_mu);
  for (health__logq_t **p = &all_running; *p; p = &(*p)->next_running)
    if (*p == q) {
      *p = q->next_running;
      break;
    }
  pthread_mutex_unlock(&all_mu);
}

void health__logq_put(health__logq_t *q, health_log_level_t level, health__buf_t *b) {
  /* b holds the line and room for one more byte ('\n' or NUL). */
  size_t len = b->len;
  health__buf_add(b, "", 1);
  if (b->failed) return;
  if (q) {
    pthread_mutex_lock(&q->mu);
    if (q->running && !q->stopping && q->pid == getpid()) {
      if (q->count < QUEUE_LINES && q->bytes + len <= QUEUE_BYTES) {
        entry_t *e = &q->ring[(q->head + q->count) % QUEUE_LINES];
        e->line = b->data; /* the buffer moves into the queue */
        e->len = len;
        e->level = level;
        q->count++;
        q->bytes += len;
        health__buf_init(b);
        pthread_cond_signal(&q->work);
      } else {
        atomic_fetch_add(&q->dropped, 1);
        q->unreported++;
      }
      pthread_mutex_unlock(&q->mu);
      return;
    }
    pthread_mutex_unlock(&q->mu);
  }
  write_sync(q, level, b->data, len);
}

int health__logq_flush(health__logq_t *q, uint64_t until_mono_ms) {
  if (!q) return 0;
  int rc = 0;
  pthread_mutex_lock(&q->mu);
  if (q->pid == getpid()) {
    while (q->running && (q->count || q->busy)) {
      if (health__now_ms() >= until_mono_ms) {
        rc = -1;
        break;
      }
      struct timespec ts = health__timespec_ms(until_mono_ms);
      pthread_cond_timedwait(&q->idle, &q->mu, &ts);
    }
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

unsigned long long health__logq_dropped(const health__logq_t *q) {
  return q ? atomic_load(&((health__logq_t *)q)->dropped) : 0;
}

int health__log_flush_all(uint64_t until_mono_ms) {
  int rc = 0;
  pthread_mutex_lock(&all_mu);
  for (health__logq_t *q = all_running; q; q = q->next_running)
    if (health__logq_flush(q, until_mono_ms) != 0) rc = -1;
  pthread_mutex_unlock(&all_mu);
  return rc;
}
