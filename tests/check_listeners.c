/* Status listeners: every transition of a check and of the endpoints, in
 * order, on the library's notifier thread; a slow listener never holds the
 * engine up (the queue drops and counts); the enumeration of checks. */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "health_int.h"
#include "testhelp.h"

#define HEALTH__EVENT_QUEUE_TEST 257 /* the held event and a full queue (http/obs.h) */

static atomic_int g_want = HEALTH_PASS;
static atomic_int g_flip; /* ctl alternates pass/fail on every run */

static void ctl_check(health_result_t *r, void *arg) {
  (void)arg;
  static atomic_uint n;
  health_status_t s = (health_status_t)atomic_load(&g_want);
  if (atomic_load(&g_flip)) s = atomic_fetch_add(&n, 1) % 2 ? HEALTH_FAIL : HEALTH_PASS;
  health_result_set(r, s, "controlled %s", s == HEALTH_PASS ? "pass" : "fail");
}

static void pass_check(health_result_t *r, void *arg) {
  (void)arg;
  health_result_set(r, HEALTH_PASS, NULL);
}

typedef struct {
  unsigned subject;
  char check[16];
  health_status_t from, to;
  char reason[64];
  uint64_t seq;
  pthread_t thread;
} ev_t;

#define MAX_EV 4096
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static ev_t evs[MAX_EV];
static size_t nev;
static atomic_int g_hold; /* the listener blocks while set */
static atomic_int g_in_listener;

static void listener(const health_transition_t *t, void *arg) {
  (void)arg;
  atomic_store(&g_in_listener, 1);
  uint64_t until = th_now_ms() + TS(20000);
  while (atomic_load(&g_hold) && th_now_ms() < until) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&ev_lock);
  if (nev < MAX_EV) {
    ev_t *e = &evs[nev++];
    e->subject = t->subject;
    snprintf(e->check, sizeof e->check, "%s", t->check ? t->check : "");
    e->from = t->from;
    e->to = t->to;
    snprintf(e->reason, sizeof e->reason, "%s", t->reason);
    e->seq = t->seq;
    e->thread = pthread_self();
  }
  pthread_mutex_unlock(&ev_lock);
}

static int second_calls;
static void counting_listener(const health_transition_t *t, void *arg) {
  (void)t;
  ++*(int *)arg;
}

static health_t *g_h;

static void teardown(void) {
  if (g_h) health_free(g_h);
  g_h = NULL;
  atomic_store(&g_hold, 0);
}

static health_t *start(unsigned interval_ms) {
  health_options_t o;
  health_options_init(&o);
  o.address = "127.0.0.1";
  o.port = 0;
  o.handle_signals = 0;
  o.exit_on_shutdown = 0;
  o.drain_ms = 60000;
  o.drain_min_ms = 60000;
  o.shutdown_deadline_ms = 70000;
  o.log_fn = th_capture_log;
  health_t *h;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, &o, &err), 0);
  g_h = h;
  health_check_options_t co;
  health_check_options_init(&co);
  co.interval_ms = interval_ms;
  co.timeout_ms = 1000;
  co.failure_threshold = 1;
  co.success_threshold = 1;
  ck_assert_int_eq(health_check_add(h, "ctl", ctl_check, NULL, NULL, &co, &err), 0);
  co.endpoints = HEALTH_LIVENESS | HEALTH_READINESS;
  co.critical = 0;
  ck_assert_int_eq(health_check_add(h, "aux", pass_check, NULL, NULL, &co, &err), 0);
  ck_assert_int_eq(health_listener_add(h, listener, NULL, &err), 0);
  ck_assert_int_eq(health_listener_add(h, counting_listener, &second_calls, &err), 0);
  ck_assert_int_eq(health_start(h, &err), 0);
  return h;
}

/* Index of the first event at or after `from` matching, or -1. */
static int find(size_t from, unsigned subject, const char *check, health_status_t to) {
  pthread_mutex_lock(&ev_lock);
  int found = -1;
  for (size_t i = from; i < nev && found < 0; i++)
    if (evs[i].subject == subject && strcmp(evs[i].check, check) == 0 && evs[i].to == to)
      found = (int)i;
  pthread_mutex_unlock(&ev_lock);
  return found;
}

typedef struct {
  size_t from;
  unsigned subject;
  const char *check;
  health_status_t to;
} want_ev_t;
static int ev_cond(void *arg) {
  want_ev_t *w = arg;
  return find(w->from, w->subject, w->check, w->to) >= 0;
}
static size_t wait_ev(size_t from, unsigned subject, const char *check, health_status_t to) {
  want_ev_t w = {from, subject, check, to};
  ck_assert_msg(th_wait_until(ev_cond, &w, TS(5000)), "no event %u '%s' -> %d after #%zu", subject,
                check, (int)to, from);
  return (size_t)find(from, subject, check, to);
}

START_TEST(test_every_transition_in_order) {
  health_t *h = start(20);
  size_t i = wait_ev(0, HEALTH_READINESS, "", HEALTH_PASS);
  const size_t first_ready = i; /* via warn if aux was still pending */
  const int flips = 5;
  for (int k = 0; k < flips; k++) {
    atomic_store(&g_want, HEALTH_FAIL);
    i = wait_ev(i, HEALTH_READINESS, "", HEALTH_FAIL);
    atomic_store(&g_want, HEALTH_PASS);
    i = wait_ev(i, HEALTH_READINESS, "", HEALTH_PASS);
  }
  health_shutdown(h);
  size_t d = wait_ev(i, HEALTH_READINESS, "", HEALTH_FAIL);
  health_stop(h); /* everything queued has been told when it returns */

  pthread_mutex_lock(&ev_lock);
  ck_assert_str_eq(evs[d].reason, "draining");
  /* Sequence numbers run 1, 2, 3... on one thread that is not ours. */
  health_status_t last_ctl = HEALTH_PENDING, last_aux = HEALTH_PENDING;
  health_status_t last_ready = HEALTH_FAIL, last_live = HEALTH_WARN; /* baselines */
  int ctl_flips = 0, ready_flips = 0;
  for (size_t k = 0; k < nev; k++) {
    ev_t *e = &evs[k];
    ck_assert_uint_eq(e->seq, k + 1);
    ck_assert(pthread_equal(e->thread, evs[0].thread));
    ck_assert(!pthread_equal(e->thread, pthread_self()));
    ck_assert_int_ne(e->from, e->to);
    health_status_t *last = e->subject == HEALTH_READINESS  ? &last_ready
                            : e->subject == HEALTH_LIVENESS ? &last_live
                            : strcmp(e->check, "ctl") == 0  ? &last_ctl
                                                            : &last_aux;
    ck_assert_msg(e->from == *last, "event %zu (%u %s) from %d, last told %d", k, e->subject,
                  e->check, (int)e->from, (int)*last);
    *last = e->to;
    if (e->subject == 0 && strcmp(e->check, "ctl") == 0) {
      ctl_flips++;
      ck_assert_str_eq(e->reason, e->to == HEALTH_PASS ? "controlled pass" : "controlled fail");
    }
    if (e->subject == HEALTH_READINESS && k > first_ready) {
      ready_flips++;
      if (e->to == HEALTH_FAIL && k != d) {
        /* Caused by ctl, which was told just before. */
        ck_assert_str_eq(evs[k - 1].check, "ctl");
        ck_assert_ptr_nonnull(strstr(e->reason, "'ctl'"));
      }
    }
  }
  ck_assert_int_eq(ctl_flips, 1 + 2 * flips);
  ck_assert_int_eq(ready_flips, 2 * flips + 1);
  ck_assert_int_eq(last_live, HEALTH_PASS);
  ck_assert_int_eq(last_aux, HEALTH_PASS);
  ck_assert_int_eq(second_calls, (int)nev); /* every listener hears every event */
  pthread_mutex_unlock(&ev_lock);
}
END_TEST

static uint64_t runs_of(health_t *h, const char *name) {
  health_check_info_t info;
  ck_assert_int_eq(health_check_find(h, name, &info, NULL), 0);
  return info.runs;
}

typedef struct {
  health_t *h;
  uint64_t runs;
} runs_t;
static int runs_cond(void *arg) {
  runs_t *r = arg;
  return runs_of(r->h, "ctl") >= r->runs;
}

static int drained(void *arg) {
  (void)arg;
  pthread_mutex_lock(&ev_lock);
  int ok = nev >= HEALTH__EVENT_QUEUE_TEST;
  pthread_mutex_unlock(&ev_lock);
  return ok;
}

static int ctl_passes(void *arg) {
  health_check_info_t info;
  return health_check_find(arg, "ctl", &info, NULL) == 0 && info.status == HEALTH_PASS;
}

START_TEST(test_slow_listener_never_blocks) {
  atomic_store(&g_hold, 1);
  atomic_store(&g_flip, 1);
  health_t *h = start(10);
  /* Two events a run (ctl and readiness): the 256-event queue fills after
   * about 128 runs; the engine goes on regardless. */
  runs_t want = {h, 400};
  ck_assert_msg(th_wait_until(runs_cond, &want, TS(15000)), "the engine stalled at %llu runs",
                (unsigned long long)runs_of(h, "ctl"));
  ck_assert(atomic_load(&g_in_listener));
  health_answer_t a;
  ck_assert_int_eq(health_answer_render(h, HEALTH_METRICS, NULL, NULL, NULL, &a, NULL), 0);
  const char *p = strstr(a.body, "\nlibhealth_listener_events_dropped_total ");
  ck_assert_ptr_nonnull(p);
  ck_assert_msg(strtod(p + 41, NULL) > 100, "dropped: %.60s", p);
  health_answer_release(&a);
  ck_assert_int_eq(th_log_count("listener_queue_full"), 1);
  /* Released, the listener gets the 256 queued events, then, after the
   * gap, the next transition. */
  atomic_store(&g_flip, 0); /* ctl settles on pass */
  atomic_store(&g_hold, 0);
  ck_assert_msg(th_wait_until(drained, NULL, TS(10000)), "the queued events never came");
  ck_assert(th_wait_until(ctl_passes, h, TS(5000)));
  atomic_store(&g_want, HEALTH_FAIL);
  wait_ev(HEALTH__EVENT_QUEUE_TEST, 0, "ctl", HEALTH_FAIL);
  health_stop(h);
  atomic_store(&g_want, HEALTH_PASS);
  pthread_mutex_lock(&ev_lock);
  int gaps = 0;
  for (size_t k = 1; k < nev; k++) {
    ck_assert_uint_gt(evs[k].seq, evs[k - 1].seq);
    gaps += evs[k].seq != evs[k - 1].seq + 1;
  }
  ck_assert_int_ge(gaps, 1);
  ck_assert_uint_ge(nev, 256);
  pthread_mutex_unlock(&ev_lock);
}
END_TEST

typedef struct {
  int n;
  char names[4][16];
  health_status_t st[4];
  int stop_after;
} list_t;
static int collect(const char *name, const health_check_info_t *info, void *arg) {
  list_t *l = arg;
  if (l->n < 4) {
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->st[l->n] = info->status;
  }
  l->n++;
  return l->stop_after && l->n >= l->stop_after;
}

START_TEST(test_foreach) {
  atomic_store(&g_want, HEALTH_FAIL);
  health_t *h = start(20);
  wait_ev(0, 0, "ctl", HEALTH_FAIL);
  wait_ev(0, 0, "aux", HEALTH_PASS);
  list_t l;
  memset(&l, 0, sizeof l);
  ck_assert_int_eq(health_check_foreach(h, collect, &l), 2);
  ck_assert_int_eq(l.n, 2);
  ck_assert_str_eq(l.names[0], "ctl");
  ck_assert_str_eq(l.names[1], "aux");
  ck_assert_int_eq(l.st[0], HEALTH_FAIL);
  ck_assert_int_eq(l.st[1], HEALTH_PASS);
  memset(&l, 0, sizeof l);
  l.stop_after = 1;
  ck_assert_int_eq(health_check_foreach(h, collect, &l), 1);
  ck_assert_int_eq(health_check_foreach(NULL, collect, &l), HEALTH_EINVAL);
  ck_assert_int_eq(health_check_foreach(h, NULL, NULL), HEALTH_EINVAL);
  health_error_t err;
  ck_assert_int_eq(health_listener_add(h, listener, NULL, &err), HEALTH_ESTATE);
  atomic_store(&g_want, HEALTH_PASS);
}
END_TEST

START_TEST(test_listener_errors) {
  health_t *h;
  health_error_t err;
  ck_assert_int_eq(health_new(&h, NULL, &err), 0);
  g_h = h;
  ck_assert_int_eq(health_listener_add(h, NULL, NULL, &err), HEALTH_EINVAL);
  ck_assert_int_eq(health_listener_add(NULL, listener, NULL, &err), HEALTH_EINVAL);
  for (int i = 0; i < 16; i++) ck_assert_int_eq(health_listener_add(h, listener, NULL, &err), 0);
  ck_assert_int_eq(health_listener_add(h, listener, NULL, &err), HEALTH_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.text, "16"));
}
END_TEST

static Suite *listeners_suite(void) {
  Suite *s = suite_create("listeners");
  TCase *tc = tcase_create("listeners");
  tcase_set_timeout(tc, 40);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_every_transition_in_order);
  tcase_add_test(tc, test_slow_listener_never_blocks);
  tcase_add_test(tc, test_foreach);
  tcase_add_test(tc, test_listener_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return th_run_suite(listeners_suite(), CK_ENV, CK_FORK) ? 1 : 0; }
