/*
 * fork(): a child's copy of a handle is inert.
 *
 * Every handle is on a registry from health_new() to its final free.  The
 * pthread_atfork child handler walks it in the child: it marks each copy
 * forked (every public call then returns HEALTH_EFORKED or does nothing,
 * without a lock or a system call), closes the child's copies of the
 * listening sockets (so the health port is refused once the parent closes
 * it, even while children live) and of the library's pipes (a child never
 * wakes the parent's shutdown thread), moves the handles from the registry
 * (the child owns none of them) to a list that keeps them reachable, and
 * puts back the application's SIGTERM/SIGINT dispositions (shutdown/signals.c).
 *
 * Why a child never frees its copy: freeing means destroying condition
 * variables whose waiter counts were copied from the parent (glibc's
 * pthread_cond_destroy() waits for those waiters, who do not exist in the
 * child) and calling the checkers' free callbacks, which end connections
 * the parent still uses (PQfinish() sends Terminate, SSL_shutdown() sends
 * close_notify on the parent's TLS session).  The memory goes with the
 * child's exit() or exec().
 *
 * Why the prepare handler takes only the registry's lock: no call in a
 * child takes a handle's locks (they are inert before any lock), so a lock
 * held by another parent thread at fork() can never block a child; taking
 * the handles' locks in prepare would instead make fork() wait for a
 * check's publication and deadlock a fork() from a log sink, which runs
 * with h->lock held.
 */
#include "health_int.h"

#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static health_t *reg_first;
/* In a child: the handles inherited through fork(), kept reachable (never
 * freed: see health_free() in health.c). */
static health_t *inherited;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void prepare(void) { pthread_mutex_lock(&reg_lock); }

static void parent(void) { pthread_mutex_unlock(&reg_lock); }

static void close_copy(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void child(void) {
  for (health_t *h = reg_first; h; h = h->fk.next) {
    h->fk.forked = 1;
    close_copy(&h->fk.listen_fd[0]);
    close_copy(&h->fk.listen_fd[1]);
    for (int i = 0; i < 2; i++) {
      close_copy(&h->sd.wake_pipe[i]);
      close_copy(&h->sd.drain_pipe[i]);
    }
  }
  if (reg_first) {
    health_t *last = reg_first;
    while (last->fk.next) last = last->fk.next;
    last->fk.next = inherited;
    if (inherited) inherited->fk.prev = last;
    inherited = reg_first;
  }
  reg_first = NULL;
  health__signals_forked();
  pthread_mutex_unlock(&reg_lock); /* the child's one thread took it in prepare */
}

static void install(void) { pthread_atfork(prepare, parent, child); }

void health__fork_register(health_t *h) {
  pthread_once(&atfork_once, install);
  h->fk.pid = getpid();
  h->fk.listen_fd[0] = h->fk.listen_fd[1] = -1;
  pthread_mutex_lock(&reg_lock);
  h->fk.prev = NULL;
  h->fk.next = reg_first;
  if (reg_first) reg_first->fk.prev = h;
  reg_first = h;
  pthread_mutex_unlock(&reg_lock);
}

void health__fork_unregister(health_t *h) {
  if (h->fk.forked) return; /* the child's registry never had it */
  pthread_mutex_lock(&reg_lock);
  if (h->fk.prev) h->fk.prev->fk.next = h->fk.next;
  else if (reg_first == h) reg_first = h->fk.next;
  if (h->fk.next) h->fk.next->fk.prev = h->fk.prev;
  h->fk.prev = h->fk.next = NULL;
  pthread_mutex_unlock(&reg_lock);
}

void health__fork_listening(health_t *h, int http_fd, int agent_fd) {
  pthread_mutex_lock(&reg_lock);
  h->fk.listen_fd[0] = http_fd;
  h->fk.listen_fd[1] = agent_fd;
  pthread_mutex_unlock(&reg_lock);
}
