/*
 * SIGTERM and SIGINT: the library's handler, chaining to the application's,
 * and noticing a handler installed over the library's after start.
 *
 * The handler makes the request health_shutdown() makes (async-signal-safe,
 * errno saved: the watchdog's clock, one byte to the handle's wake pipe) and then, in the
 * chain mode, runs the handler the application had installed before
 * health_start().  A signal that arrives
 * in a child process (between fork() and the atfork child handler, which
 * puts the application's dispositions back) never reaches the parent's
 * pipe.
 */
#include "health_int.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* The handle whose shutdown the process signals start (one at a time). */
static _Atomic(health_t *) signal_target;

static const int sigs[2] = {SIGTERM, SIGINT};
static const char *const signames[2] = {"SIGTERM", "SIGINT"};

static struct sigaction *prior(health_t *h, int sig) {
  return sig == SIGTERM ? &h->sd.old_term : &h->sd.old_int;
}

static int is_function(const struct sigaction *sa) {
  if (sa->sa_flags & SA_SIGINFO) return sa->sa_sigaction != NULL;
  return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

static void run_prior(const struct sigaction *p, int sig, siginfo_t *si, void *uc) {
  if (!is_function(p)) return; /* SIG_DFL, SIG_IGN: nothing to chain */
  if (p->sa_flags & SA_SIGINFO) p->sa_sigaction(sig, si, uc);
  else p->sa_handler(sig);
}

static void on_signal(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  health_t *h = atomic_load(&signal_target);
  if (h) {
    /* getpid(): the atfork child handler may not have run yet. */
    if (getpid() == h->fk.pid) {
      /* As health_shutdown() (async-signal-safe): the first request also
       * starts the deadline watchdog's clock; then one byte to the wake
       * pipe, where the sequence counts the requests. */
      health__seq_request(h); /* shutdown/reserve.c */
      if (h->opt.handle_signals == HEALTH_SIGNALS_CHAIN) run_prior(prior(h, sig), sig, si, uc);
    } else {
      /* A child of fork() before its atfork handler ran: the application's
       * disposition, as if the library had never been there (SIG_DFL: put
       * it back and raise again, delivered when this handler returns). */
      const struct sigaction *p = prior(h, sig);
      if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_DFL) {
        sigaction(sig, p, NULL);
        raise(sig);
      } else {
        run_prior(p, sig, si, uc);
      }
    }
  }
  errno = saved;
}

static int is_ours(const struct sigaction *sa) {
  return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_signal;
}

int health__signals_install(health_t *h, health_error_t *err) {
  if (h->opt.handle_signals == HEALTH_SIGNALS_OFF) return 0;
  health_t *expected = NULL;
  if (!atomic_compare_exchange_strong(&signal_target, &expected, h))
    return health__err(
        err, HEALTH_ESTATE,
        "another libhealth handle already handles SIGTERM/SIGINT; set handle_signals = 0");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  int chain = h->opt.handle_signals == HEALTH_SIGNALS_CHAIN;
  for (int i = 0; i < 2; i++) {
    /* The prior disposition is read in the handler: store it first. */
    struct sigaction *p = prior(h, sigs[i]);
    sigaction(sigs[i], NULL, p);
    if (is_ours(p)) { /* left by an earlier handle: never chain to ourselves */
      memset(p, 0, sizeof *p);
      p->sa_handler = SIG_DFL;
    }
    sigaction(sigs[i], &sa, NULL);
    if (is_function(prior(h, sigs[i])))
      health__log(h, chain ? HEALTH_LOG_INFO : HEALTH_LOG_WARN,
                  chain ? "signal_chained" : "signal_replaced", "signal", signames[i], "reason",
                  chain ? "the application's handler runs after the library's"
                        : "handle_signals=replace: the application's handler no longer runs",
                  NULL);
  }
  atomic_store(&h->sd.signals_lost, 0);
  h->sd.handlers_installed = 1;
  return 0;
}

void health__signals_restore(health_t *h) {
  if (!h->sd.handlers_installed) return;
  for (int i = 0; i < 2; i++) {
    struct sigaction cur;
    sigaction(sigs[i], NULL, &cur);
    /* A handler installed over ours meanwhile is the application's now. */
    if (is_ours(&cur)) sigaction(sigs[i], prior(h, sigs[i]), NULL);
  }
  h->sd.handlers_installed = 0;
  health_t *expected = h;
  atomic_compare_exchange_strong(&signal_target, &expected, NULL);
}

void health__signals_watch(health_t *h) {
  if (!h->sd.handlers_installed) return;
  for (int i = 0; i < 2; i++) {
    struct sigaction cur;
    if (sigaction(sigs[i], NULL, &cur) != 0) continue;
    int bit = 1 << i;
    int was = atomic_load(&h->sd.signals_lost) & bit;
    if (!is_ours(&cur) && !was) {
      atomic_fetch_or(&h->sd.signals_lost, bit);
      health__log(
          h, HEALTH_LOG_WARN, "signal_handler_replaced", "signal", signames[i], "reason",
          "a handler installed after health_start() replaced the library's: this signal starts "
          "no shutdown unless that handler calls health_shutdown()",
          NULL);
    } else if (is_ours(&cur) && was) {
      atomic_fetch_and(&h->sd.signals_lost, ~bit);
      health__log(h, HEALTH_LOG_INFO, "signal_handler_restored", "signal", signames[i], NULL);
    }
  }
}

void health__signals_forked(void) {
  health_t *h = atomic_load(&signal_target);
  if (!h) return;
  /* Dispositions first, the target last: a signal meanwhile still finds
   * the handle and takes the child's path in on_signal. */
  for (int i = 0; i < 2; i++) {
    struct sigaction cur;
    sigaction(sigs[i], NULL, &cur);
    if (is_ours(&cur)) sigaction(sigs[i], prior(h, sigs[i]), NULL);
  }
  atomic_store(&signal_target, NULL);
}
