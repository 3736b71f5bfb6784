/*
 * The connection guard of the health port: which connections it keeps when
 * clients are slow, many, or hostile.
 *
 * libmicrohttpd's CONNECTION_TIMEOUT is an inactivity timeout: every byte
 * received restarts it, so a client that sends its headers a byte at a time
 * holds its connection for ever (slowloris).  And at MHD's connection limit
 * new connections are refused, so 128 slow clients from 128 addresses would
 * take the port away from the load balancer.  So, around libmicrohttpd:
 *
 *  - a table of connections (MHD_OPTION_NOTIFY_CONNECTION), each in one
 *    state: HEAD (waiting for a request head), IDLE (answered, waiting for
 *    the next head on a keep-alive connection), BUSY (being answered) or
 *    CUT (shut down by us, waiting for MHD to close it).  HEAD and IDLE
 *    connections sit on two FIFO lists in the order of their deadline;
 *  - every request head has an absolute deadline, connection_timeout_s
 *    after the connection opened or after the previous answer; a reaper
 *    thread cuts overdue connections (only the list heads are looked at);
 *  - at the cap (max_connections), a new connection evicts the one
 *    furthest from being useful: the oldest HEAD one, else the oldest IDLE
 *    one, never a BUSY one (if all are busy the newcomer itself is cut).
 *    The newest connection is the one most likely to be the load
 *    balancer's probe, whose head is already on its way.
 *    MHD's own limit is the cap plus some slack for cut connections it has
 *    not closed yet, so MHD itself never refuses;
 *  - file descriptors: the soft RLIMIT_NOFILE is raised (never above the
 *    hard limit nor the application's ceiling) to what the table needs; if
 *    it cannot be, the cap shrinks to fit and says so.  A reserve
 *    descriptor and an eviction answer libmicrohttpd's "resource limit"
 *    message (accept() failed with EMFILE/ENFILE): libmicrohttpd stops
 *    accepting until a connection closes, and one now does.
 *
 * To cut, the socket is shut down both ways: the client gets a FIN at once,
 * and MHD sees the hang-up (or a reset, if the client sends more) and
 * closes it itself.  Shutting down only the read side is not enough: with
 * epoll, libmicrohttpd 0.9.75 stops reading after any short read, so a
 * client that keeps dribbling bytes hides the EOF behind them.
 *
 * All callbacks run on MHD's thread; the lock is shared with the reaper
 * only, so it is almost never contended.  The claim of a request (HEAD or
 * IDLE -> BUSY) takes no lock: it is a compare-and-swap on the slot's
 * state, which the reaper's cut (HEAD or IDLE -> CUT) also makes, so
 * exactly one of them wins.  A claimed slot stays on its list; whoever
 * meets a BUSY slot on a list takes it off.  The answer takes no lock
 * either: it sets the slot IDLE with its new deadline and pushes it on a
 * stack of answered slots (once: a slot answered again before the stack
 * is emptied only gets a later deadline), which whoever holds the lock
 * empties first (drain()), moving each slot to its place on the IDLE
 * list.  The reaper, sleeping without a timeout, is woken by a push.
 *
 * A client may send its request with a FIN right behind it (one-shot
 * scripts, `nc -N`).  With epoll, libmicrohttpd 0.9.75 reads the request in
 * one short read and never looks for the EOF behind it, so the connection
 * would wait for the idle timeout.  Whoever drains an answered slot that
 * stays open (keep-alive) peeks at its socket once: at an EOF with nothing
 * unread, the read side is shut down, which wakes MHD, which reads the EOF
 * and closes.  The peek is off the request path: the first such answer
 * after the reaper went to sleep wakes it, and it drains at most every
 * PEEK_BATCH_MS, so under load one peek covers a whole batch of answers
 * on a connection and the health port makes the same system calls per
 * request as bare libmicrohttpd (bench/run.sh, section syscalls).
 */
#include "health-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REAP_INTERVAL_MS 200
#define PEEK_BATCH_MS 20 /* answered keep-alive connections: peeked for a FIN this often at most */
#define EMFILE_MIN_AGE_MS 10 /* on EMFILE, spare connections younger than this */

enum { ST_FREE = 0, ST_HEAD, ST_IDLE, ST_BUSY, ST_CUT };
enum { L_HEAD = 0, L_IDLE = 1 };

typedef struct gslot {
  int fd;
  atomic_int state;          /* ST_*: claim and cut race on it (see above) */
  int on;                    /* L_HEAD, L_IDLE, or -1: on no list; lock held */
  uint64_t deadline_ms;      /* its place on list[on]; lock held */
  struct gslot *prev, *next; /* on list[on], or the free list (next) */
  atomic_int pending;        /* on the answered stack */
  atomic_int want_peek;      /* answered, staying open: look for a FIN behind the request */
  atomic_uint_fast64_t answered_deadline; /* set by the answer, read by drain() */
  struct gslot *pnext;       /* next on the answered stack */
} gslot_t;

typedef struct {
  gslot_t *first, *last;
} glist_t;

struct health__guard {
  uint64_t timeout_ms;
  unsigned cap, nslots, live;   /* live: not cut */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stop;
  atomic_int sleeping;          /* the reaper waits without a timeout */
  atomic_int wake_on_push;      /* the reaper waits: the next answer to peek at wakes it */
  _Atomic(gslot_t *) answered;  /* stack of answered slots, see the top */
  int emfile_pending;           /* accept() is stopped: evict once a victim is old enough */
  pthread_t thread;
  int reserve_fd;
  glist_t list[2];
  gslot_t *free_list;
  health_t *h;
  atomic_ulong evicted, reaped, emfile;
  gslot_t slots[];
};

static void unlink_slot(health__guard_t *g, gslot_t *s) {
  if (s->on < 0) return;
  glist_t *l = &g->list[s->on];
  s->on = -1;
  if (s->prev) s->prev->next = s->next;
  else l->first = s->next;
  if (s->next) s->next->prev = s->prev;
  else l->last = s->prev;
  s->prev = s->next = NULL;
}

/* Append in deadline order (every deadline is now + the same timeout). */
static void append(health__guard_t *g, gslot_t *s, int state, uint64_t now) {
  s->on = state == ST_HEAD ? L_HEAD : L_IDLE;
  glist_t *l = &g->list[s->on];
  atomic_store_explicit(&s->state, state, memory_order_relaxed);
  s->deadline_ms = now + g->timeout_ms;
  s->next = NULL;
  s->prev = l->last;
  if (l->last) l->last->next = s;
  else l->first = s;
  l->last = s;
  if (atomic_load_explicit(&g->sleeping, memory_order_relaxed))
    pthread_cond_signal(&g->cond); /* lock held */
}

/* Lock held.  s, IDLE again, to its place on the IDLE list: near the end,
 * as every deadline is some recent moment + the same timeout. */
static void insert_idle(health__guard_t *g, gslot_t *s, uint64_t deadline) {
  glist_t *l = &g->list[L_IDLE];
  gslot_t *after = l->last;
  while (after && after->deadline_ms > deadline) after = after->prev;
  s->on = L_IDLE;
  s->deadline_ms = deadline;
  s->prev = after;
  s->next = after ? after->next : l->first;
  if (s->next) s->next->prev = s;
  else l->last = s;
  if (after) after->next = s;
  else l->first = s;
}

/* Lock held: the answered slots to their places (see the top). */
static void drain(health__guard_t *g) {
  gslot_t *top = atomic_exchange_explicit(&g->answered, NULL, memory_order_acquire), *fifo = NULL;
  while (top) { /* in the order of the answers: equal deadlines keep it */
    gslot_t *s = top;
    top = s->pnext;
    s->pnext = fifo;
    fifo = s;
  }
  top = fifo;
  while (top) {
    gslot_t *s = top;
    top = s->pnext;
    /* Read the state after clearing pending (an answer from now on pushes
     * again); acquire: the latest answer's deadline and state. */
    atomic_exchange_explicit(&s->pending, 0, memory_order_acq_rel);
    unlink_slot(g, s);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == ST_IDLE)
      insert_idle(g, s, atomic_load_explicit(&s->answered_deadline, memory_order_relaxed));
    /* else claimed again (BUSY): on no list until its next answer */
    /* The FIN behind a request (see the top).  The fd is valid: the slot
     * is freed under this lock, before MHD closes it.  Only an EOF with
     * nothing unread shuts the read side: a next request already there is
     * read and answered, then this runs again.  The system call itself,
     * not recv(): recv() is a cancellation point. */
    char c;
    if (atomic_exchange_explicit(&s->want_peek, 0, memory_order_relaxed) &&
        syscall(SYS_recvfrom, s->fd, &c, (size_t)1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) == 0)
      shutdown(s->fd, SHUT_RD);
  }
}

/* Lock held; s is on a list.  Counts the cut in *counter before the peer
 * can see it.  Returns 0 if MHD's thread claimed it first (it is BUSY
 * now: only taken off the list). */
static int cut(health__guard_t *g, gslot_t *s, atomic_ulong *counter) {
  unlink_slot(g, s);
  int st = atomic_load_explicit(&s->state, memory_order_relaxed);
  while (st == ST_HEAD || st == ST_IDLE)
    if (atomic_compare_exchange_weak_explicit(&s->state, &st, ST_CUT, memory_order_relaxed,
                                              memory_order_relaxed)) {
      g->live--;
      atomic_fetch_add(counter, 1);
      shutdown(s->fd, SHUT_RDWR);
      return 1;
    }
  return 0;
}

static int is_busy(gslot_t *s) {
  return atomic_load_explicit(&s->state, memory_order_relaxed) == ST_BUSY;
}

/* The connection furthest from being useful, or NULL if all are busy:
 * the oldest waiting for a head, else the oldest idle one.  Among the
 * oldest few of a list, one with bytes libmicrohttpd has not read yet is
 * skipped: its request is there and about to be answered (a probe accepted
 * a moment ago, on a server slowed down by the very attack), while a peer
 * that hung up is the best victim of all. */
#define VICTIM_SCAN 8

static gslot_t *victim(health__guard_t *g) {
  for (int l = 0; l < 2; l++) {
    gslot_t *oldest = NULL, *s = g->list[l].first;
    for (int i = 0; s && i < VICTIM_SCAN; s = s->next) {
      if (is_busy(s)) continue; /* claimed, still on its list: not a candidate */
      if (!oldest) oldest = s;
      i++;
      char c;
      if (recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) return s; /* nothing unread, or EOF */
    }
    while (!oldest && s) { /* (only BUSY ones among the first: look further) */
      if (!is_busy(s)) oldest = s;
      s = s->next;
    }
    if (oldest) return oldest;
  }
  return NULL;
}

void health__guard_opened(health__guard_t *g, int fd, void **socket_context) {
  pthread_mutex_lock(&g->lock);
  gslot_t *s = g->free_list;
  if (g->live >= g->cap && s) {
    drain(g); /* (victim() wants the lists in order) */
    gslot_t *v = victim(g); /* (on MHD's thread: nothing can claim it meanwhile) */
    if (!v || !cut(g, v, &g->evicted))
      s = NULL; /* every connection is being answered: the newcomer goes */
  }
  if (!s) { /* (the free list is never empty: MHD's limit is the table size) */
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_add(&g->evicted, 1);
    shutdown(fd, SHUT_RDWR);
    return;
  }
  g->free_list = s->next;
  s->fd = fd;
  g->live++;
  append(g, s, ST_HEAD, health__now_ms_coarse());
  *socket_context = s;
  pthread_mutex_unlock(&g->lock);
}

void health__guard_closed(health__guard_t *g, void **socket_context) {
  gslot_t *s = *socket_context;
  if (!s) return;
  pthread_mutex_lock(&g->lock);
  if (atomic_load_explicit(&s->pending, memory_order_relaxed)) drain(g); /* s is on the stack */
  unlink_slot(g, s);
  if (atomic_load_explicit(&s->state, memory_order_relaxed) != ST_CUT) g->live--;
  /* Called before libmicrohttpd closes the socket: after this the reaper
   * never touches an fd number that may be reused. */
  s->fd = -1;
  atomic_store_explicit(&s->state, ST_FREE, memory_order_relaxed);
  s->next = g->free_list;
  g->free_list = s;
  /* A close makes libmicrohttpd accept again: no eviction owed. */
  g->emfile_pending = 0;
  if (g->reserve_fd < 0) g->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pthread_mutex_unlock(&g->lock);
  *socket_context = NULL;
}

/* No lock: MHD's thread against the reaper's cut(), see the top. */
int health__guard_claim(health__guard_t *g, void *socket_context) {
  gslot_t *s = socket_context;
  (void)g;
  if (!s) return 1;
  int st = atomic_load_explicit(&s->state, memory_order_relaxed);
  while (st == ST_HEAD || st == ST_IDLE)
    if (atomic_compare_exchange_weak_explicit(&s->state, &st, ST_BUSY, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  return st != ST_CUT;
}

void health__guard_answered(health__guard_t *g, void *socket_context, int closing) {
  gslot_t *s = socket_context;
  if (!s) return;
  /* Only MHD's thread moves a slot out of BUSY: the reaper cannot cut it
   * meanwhile.  No lock: see the top. */
  if (atomic_load_explicit(&s->state, memory_order_relaxed) != ST_BUSY) return;
  atomic_store_explicit(&s->answered_deadline, health__now_ms_coarse() + g->timeout_ms,
                        memory_order_relaxed);
  /* Not after "Connection: close": MHD closes after this answer. */
  if (!closing) atomic_store_explicit(&s->want_peek, 1, memory_order_relaxed);
  atomic_store_explicit(&s->state, ST_IDLE, memory_order_relaxed);
  if (!atomic_load_explicit(&s->pending, memory_order_relaxed) &&
      !atomic_exchange_explicit(&s->pending, 1, memory_order_seq_cst)) {
    gslot_t *top = atomic_load_explicit(&g->answered, memory_order_relaxed);
    do s->pnext = top;
    while (!atomic_compare_exchange_weak_explicit(&g->answered, &top, s, memory_order_seq_cst,
                                                  memory_order_relaxed));
    /* A reaper waiting without a timeout set `sleeping` before it looked
     * at the stack a last time (both seq_cst): one of us sees the other. */
    if (atomic_load_explicit(&g->sleeping, memory_order_seq_cst) ||
        (!closing && atomic_load_explicit(&g->wake_on_push, memory_order_seq_cst) &&
         atomic_exchange_explicit(&g->wake_on_push, 0, memory_order_seq_cst))) {
      pthread_mutex_lock(&g->lock);
      pthread_cond_signal(&g->cond);
      pthread_mutex_unlock(&g->lock);
    }
  }
}

/* Lock held.  On EMFILE the connection just accepted may be the oldest
 * one (with only a descriptor or two left there are only a few), and its
 * head is probably already there: evict only one that had time to send
 * it, or let the reaper do it a little later. */
static void emfile_evict(health__guard_t *g, uint64_t now, uint64_t *next) {
  gslot_t *v;
  while ((v = victim(g))) { /* none: a connection being answered will close */
    uint64_t since = v->deadline_ms - g->timeout_ms;
    if (now < since + EMFILE_MIN_AGE_MS) {
      if (next && since + EMFILE_MIN_AGE_MS < *next) *next = since + EMFILE_MIN_AGE_MS;
      return;
    }
    if (cut(g, v, &g->evicted)) {
      g->emfile_pending = 0;
      return;
    }
    /* claimed by MHD's thread meanwhile (and off its list now): the next */
  }
}

void health__guard_emfile(health__guard_t *g) {
  pthread_mutex_lock(&g->lock);
  drain(g);
  atomic_fetch_add(&g->emfile, 1);
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  g->reserve_fd = -1;
  g->emfile_pending = 1;
  emfile_evict(g, health__now_ms_coarse(), NULL);
  if (g->emfile_pending) pthread_cond_signal(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

void health__guard_stats(health__guard_t *g, unsigned long *evicted, unsigned long *reaped,
                         unsigned long *emfile) {
  if (evicted) *evicted = g ? atomic_load(&g->evicted) : 0;
  if (reaped) *reaped = g ? atomic_load(&g->reaped) : 0;
  if (emfile) *emfile = g ? atomic_load(&g->emfile) : 0;
}

unsigned health__guard_slots(const health__guard_t *g) {
  return g->nslots;
}

/* Sleeps until the earliest head deadline (at least REAP_INTERVAL_MS
 * apart, to batch), and indefinitely while no connection waits for a head:
 * an idle service costs no wake-ups. */
static void *reaper_main(void *arg) {
  health__guard_t *g = arg;
  pthread_mutex_lock(&g->lock);
  uint64_t last_drain = 0;
  while (!g->stop) {
    drain(g);
    uint64_t now = health__now_ms(), next = UINT64_MAX;
    last_drain = now;
    for (int l = 0; l < 2; l++) {
      gslot_t *s;
      while ((s = g->list[l].first) && s->deadline_ms <= now)
        cut(g, s, &g->reaped); /* (if claimed meanwhile: left to its answer) */
      if (s && s->deadline_ms < next) next = s->deadline_ms;
    }
    if (g->emfile_pending) emfile_evict(g, now, &next);
    /* Armed before the last look at the stack (both seq_cst): an answer
     * pushed after that look sees the flag and wakes us. */
    atomic_store_explicit(&g->wake_on_push, 1, memory_order_seq_cst);
    if (next == UINT64_MAX) {
      atomic_store_explicit(&g->sleeping, 1, memory_order_seq_cst);
      if (!atomic_load_explicit(&g->answered, memory_order_seq_cst))
        pthread_cond_wait(&g->cond, &g->lock);
      atomic_store_explicit(&g->sleeping, 0, memory_order_relaxed);
    } else if (!atomic_load_explicit(&g->answered, memory_order_seq_cst)) {
      if (next < now + REAP_INTERVAL_MS && !g->emfile_pending) next = now + REAP_INTERVAL_MS;
      struct timespec ts = health__timespec_ms(next);
      pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
    atomic_store_explicit(&g->wake_on_push, 0, memory_order_relaxed);
    /* Woken for answers: batch them (unarmed, nothing wakes us meanwhile). */
    uint64_t batch = last_drain + PEEK_BATCH_MS;
    if (!g->stop && !g->emfile_pending && health__now_ms() < batch) {
      struct timespec ts = {(time_t)(batch / 1000), (long)(batch % 1000) * 1000000L};
      pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    }
  }
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

health__guard_t *health__guard_new(health_t *h) {
  unsigned cap = h->opt.max_connections;
  unsigned slack = 16 + cap / 4; /* cut, not yet closed by MHD */
  unsigned room = health__guard_fd_room(h, cap + slack); /* guard_nofile.c */
  if (room < cap + slack) {
    unsigned was = cap;
    cap = room * 4 / 5;
    if (cap < 1) cap = 1;
    slack = room - cap;
    char a[16], b[16];
    snprintf(a, sizeof a, "%u", was);
    snprintf(b, sizeof b, "%u", cap);
    health__log(h, HEALTH_LOG_WARN, "connections_capped", "#max_connections", a,
                "#cap", b, "reason", "RLIMIT_NOFILE too low", NULL);
  }
  unsigned n = cap + slack;
  health__guard_t *g = calloc(1, sizeof *g + n * sizeof g->slots[0]);
  if (!g) return NULL;
  g->h = h;
  g->timeout_ms = (uint64_t)h->opt.connection_timeout_s * 1000u;
  g->cap = cap;
  g->nslots = n;
  for (unsigned i = n; i-- > 0;) {
    g->slots[i].fd = -1;
    g->slots[i].on = -1;
    g->slots[i].next = g->free_list;
    g->free_list = &g->slots[i];
  }
  g->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (health__cond_init_monotonic(&g->cond) != 0) goto fail;
  if (pthread_mutex_init(&g->lock, NULL) != 0) goto fail_cond;
  if (health__thread_create(&g->thread, reaper_main, g, 0) != 0) goto fail_mutex;
  return g;
fail_mutex:
  pthread_mutex_destroy(&g->lock);
fail_cond:
  pthread_cond_destroy(&g->cond);
fail:
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  free(g);
  return NULL;
}

/* Only after MHD_stop_daemon(): no connection callback may follow. */
void health__guard_free(health__guard_t *g) {
  if (!g) return;
  pthread_mutex_lock(&g->lock);
  g->stop = 1;
  pthread_cond_signal(&g->cond);
  pthread_mutex_unlock(&g->lock);
  pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cond);
  pthread_mutex_destroy(&g->lock);
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  free(g);
}

