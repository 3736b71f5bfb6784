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
#include "http/guard_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/* For the reaper (http/guard_reaper.c); the callbacks above and below call the
 * static ones, which the compiler may inline on the request path. */
void health__guard_drain_locked(health__guard_t *g) { drain(g); }

int health__guard_cut_locked(health__guard_t *g, gslot_t *s, atomic_ulong *counter) {
  return cut(g, s, counter);
}

void health__guard_opened(health__guard_t *g, int fd, void **socket_context) {
  pthread_mutex_lock(&g->lock);
  gslot_t *s = g->free_list;
  if (g->live >= g->cap && s) {
    drain(g);               /* (victim() wants the lists in order) */
    gslot_t *v = victim(g); /* (on MHD's thread: nothing can claim it meanwhile) */
    if (!v || !cut(g, v, &g->counts->evicted))
      s = NULL; /* every connection is being answered: the newcomer goes */
  }
  if (!s) { /* (the free list is never empty: MHD's limit is the table size) */
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_add(&g->counts->evicted, 1);
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
  if (g->reserve_fd < 0) g->reserve_fd = health__fd_hoist(open("/dev/null", O_RDONLY | O_CLOEXEC));
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
void health__guard_emfile_evict_locked(health__guard_t *g, uint64_t now, uint64_t *next) {
  gslot_t *v;
  while ((v = victim(g))) { /* none: a connection being answered will close */
    uint64_t since = v->deadline_ms - g->timeout_ms;
    if (now < since + EMFILE_MIN_AGE_MS) {
      if (next && since + EMFILE_MIN_AGE_MS < *next) *next = since + EMFILE_MIN_AGE_MS;
      return;
    }
    if (cut(g, v, &g->counts->evicted)) {
      g->emfile_pending = 0;
      return;
    }
    /* claimed by MHD's thread meanwhile (and off its list now): the next */
  }
}

void health__guard_emfile(health__guard_t *g) {
  pthread_mutex_lock(&g->lock);
  drain(g);
  atomic_fetch_add(&g->counts->emfile, 1);
  if (g->reserve_fd >= 0) close(g->reserve_fd);
  g->reserve_fd = -1;
  g->emfile_pending = 1;
  health__guard_emfile_evict_locked(g, health__now_ms_coarse(), NULL);
  if (g->emfile_pending) pthread_cond_signal(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

unsigned health__guard_slots(const health__guard_t *g) { return g->nslots; }
