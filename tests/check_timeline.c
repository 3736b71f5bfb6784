/* The shutdown timeline, as a property: for many generated configurations
 * (drain, drain minimum set or not, a request in flight or not, 0-4 hooks
 * that succeed, fail or hang, with their own or the default timeout, a
 * deadline that may cut them, 1-3 signals, options from the API or from
 * HEALTH_* variables), a real child process runs a real shutdown at a
 * small time scale, and what its JSON log and exit code show is compared
 * with a model written here from the documented rules (docs/guide.md, "Shutdown"):
 *
 *   drain end   = the 2nd signal if it comes first; else drain_min once
 *                 nothing is in flight (only when drain_min < drain); else
 *                 the drain; never before drain_min;
 *   hooks       = in (order, registration) order from the drain's end, each
 *                 until it returns or min(start + timeout, deadline);
 *                 skipped once the deadline has passed;
 *   3rd signal  = exit at once, code 6;
 *   exit code   = the worst of: 3 failed, 4 timed out, 5 deadline, 6 forced.
 *
 * Tolerance: every observed instant within TOL_MS (x HEALTH_TEST_TIME_SCALE)
 * after the model's, never more than EARLY_MS before it.  Instants that the
 * model derives from an earlier one (a hook's start from the previous
 * hook's end) use the observed earlier instant, so scheduling noise does
 * not add up.  The shutdown_plan line logged at start is checked against
 * the model too (drain, minimum, deadline, each hook's budget).
 *
 * Deterministic: the seed is fixed (HEALTH_TIMELINE_SEED overrides it); a
 * failure prints the configuration and HEALTH_TIMELINE_ONLY=<n> replays it
 * alone.  Configurations run 4 at a time; 200 of them take about 30 s.
 * Under valgrind or a sanitizer (HEALTH_TEST_TIME_SCALE > 1) the count is
 * divided by the scale, never below 12. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "testhelp.h"

#define TOL_MS 150
#define EARLY_MS 2
#define MAX_HOOKS 4
#define PARALLEL 4
/* Beyond the library's 1000 ms debounce, with room for a slow delivery of
 * the previous signal (the debounce counts from when it was seen). */
static unsigned g_gap;
#define SIGNAL_GAP_MS g_gap

typedef enum { HK_OK, HK_FAIL, HK_HANG } kind_t;
static const char *kind_name[] = {"ok", "fail", "hang"};

typedef struct {
  unsigned n; /* index, for replay */
  int env;    /* options through HEALTH_* variables */
  unsigned drain, deadline, hook_default;
  int min_set;
  unsigned drain_min;    /* if min_set */
  int inflight;          /* one request in flight ... */
  unsigned inflight_end; /* ... ending this long after the signal */
  unsigned nsignals;     /* 1-3, SIGNAL_GAP_MS apart */
  int use_sigint;        /* the 2nd signal is SIGINT */
  size_t nhooks;
  struct {
    int order;
    unsigned timeout;
    kind_t kind;
  } hooks[MAX_HOOKS];
} cfg_t;

static void cfg_print(const cfg_t *c, char *buf, size_t len) {
  int o = snprintf(
      buf, len,
      "config #%u: %s drain=%u drain_min=%s%u deadline=%u hook_default=%u inflight=%s%u signals=%u%s hooks=[",
      c->n, c->env ? "env" : "api", c->drain, c->min_set ? "" : "unset/",
      c->min_set ? c->drain_min : 0, c->deadline, c->hook_default, c->inflight ? "end@" : "no/",
      c->inflight_end, c->nsignals, c->use_sigint ? "(2nd SIGINT)" : "");
  for (size_t i = 0; i < c->nhooks && o > 0 && (size_t)o < len; i++)
    o += snprintf(buf + o, len - (size_t)o, "%sh%zu order=%d timeout=%u %s", i ? ", " : "", i,
                  c->hooks[i].order, c->hooks[i].timeout, kind_name[c->hooks[i].kind]);
  if (o > 0 && (size_t)o < len) snprintf(buf + o, len - (size_t)o, "]");
}

static uint64_t rng_s;
static unsigned rnd(unsigned n) {
  rng_s ^= rng_s << 13;
  rng_s ^= rng_s >> 7;
  rng_s ^= rng_s << 17;
  return (unsigned)(rng_s % n);
}

static void cfg_gen(cfg_t *c, unsigned n) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->env = rnd(2);
  unsigned r = rnd(100);
  c->nsignals = r < 60 ? 1 : r < 85 ? 2 : 3;
  /* More signals need a drain (or hooks) still running when they come. */
  static const unsigned short_drains[] = {0, 30, 80, 150, 250};
  if (c->nsignals == 1 || rnd(3) == 0) c->drain = short_drains[rnd(5)];
  else c->drain = SIGNAL_GAP_MS + 450 + 100 * rnd(8);
  c->min_set = rnd(2);
  if (c->min_set) {
    unsigned pick = rnd(3);
    c->drain_min = pick == 0 ? 0 : pick == 1 ? c->drain / 2 : c->drain;
  }
  c->inflight = rnd(2);
  if (c->inflight) c->inflight_end = 10 + rnd(c->drain + 200);
  c->nhooks = rnd(MAX_HOOKS + 1);
  static const unsigned timeouts[] = {0, 40, 90, 150};
  static const unsigned defaults[] = {60, 120};
  c->hook_default = defaults[rnd(2)];
  unsigned sum = 0;
  for (size_t i = 0; i < c->nhooks; i++) {
    c->hooks[i].order = (int)rnd(4) - 1;
    c->hooks[i].timeout = timeouts[rnd(4)];
    c->hooks[i].kind = (kind_t)rnd(3);
    sum += c->hooks[i].timeout ? c->hooks[i].timeout : c->hook_default;
  }
  /* A deadline that may cut the hooks, or leaves room. */
  unsigned extra = rnd(2) ? sum + 100 + rnd(200) : 20 + rnd(sum + 40);
  c->deadline = c->drain + extra;
  /* Three signals: most of the time a first hook that hangs for long, so
   * that the 3rd signal finds the sequence running and forces the exit. */
  if (c->nsignals == 3 && rnd(4) != 0) {
    if (c->nhooks == 0) c->nhooks = 1;
    c->hooks[0].order = -2;
    c->hooks[0].timeout = 2 * SIGNAL_GAP_MS + 700;
    c->hooks[0].kind = HK_HANG;
    c->deadline = c->drain + c->hooks[0].timeout + sum + 200;
  }
  c->use_sigint = rnd(2);
}

/* ------------------------------------------------------------------ */
/* The child                                                           */
/* ------------------------------------------------------------------ */

static int ch_log = -1;
static health_t *ch_h;
static const cfg_t *ch_cfg;

static void ch_write(const char *line) {
  size_t n = strlen(line);
  char *b = malloc(n + 1);
  if (!b) return;
  memcpy(b, line, n);
  b[n] = '\n';
  ssize_t w;
  do w = write(ch_log, b, n + 1);
  while (w < 0 && errno == EINTR);
  free(b);
}

static void ch_log_fn(health_log_level_t level, const char *line, void *arg) {
  (void)level, (void)arg;
  ch_write(line);
}

static int ch_hook(void *arg, unsigned budget) {
  (void)budget;
  kind_t k = (kind_t)(intptr_t)arg;
  if (k == HK_FAIL) return 1;
  if (k == HK_HANG)
    for (;;) pause();
  return 0;
}

static void *ch_inflight_main(void *arg) {
  (void)arg;
  struct pollfd p = {health_drain_fd(ch_h), POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {}
  struct timespec ts = {(time_t)(ch_cfg->inflight_end / 1000),
                        (long)(ch_cfg->inflight_end % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  char line[128];
  snprintf(line, sizeof line, "{\"event\":\"app_inflight_end\",\"mono_ms\":%llu}",
           (unsigned long long)th_now_ms());
  ch_write(line);
  health_inflight_end(ch_h);
  return NULL;
}

static void child_main(const cfg_t *c, int ready_fd, const char *log_path) {
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  ch_cfg = c;
  ch_log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (ch_log < 0) _exit(90);
  health_options_t o;
  health_options_init(&o);
  char v[5][24];
  if (c->env) {
    snprintf(v[0], sizeof v[0], "%u", c->drain);
    snprintf(v[1], sizeof v[1], "%u", c->deadline);
    snprintf(v[2], sizeof v[2], "%u", c->hook_default);
    snprintf(v[3], sizeof v[3], "%u", c->drain_min);
    setenv("HEALTH_DRAIN_MS", v[0], 1);
    setenv("HEALTH_SHUTDOWN_DEADLINE_MS", v[1], 1);
    setenv("HEALTH_HOOK_TIMEOUT_MS", v[2], 1);
    if (c->min_set) setenv("HEALTH_DRAIN_MIN_MS", v[3], 1);
    else unsetenv("HEALTH_DRAIN_MIN_MS");
    setenv("HEALTH_ADDRESS", "127.0.0.1", 1);
    setenv("HEALTH_PORT", "0", 1);
    setenv("HEALTH_LOG_LEVEL", "debug", 1);
    health_error_t err;
    if (health_options_from_env(&o, &err) != 0) {
      ch_write(err.text);
      _exit(91);
    }
  } else {
    o.drain_ms = c->drain;
    o.shutdown_deadline_ms = c->deadline;
    o.hook_timeout_ms = c->hook_default;
    if (c->min_set) o.drain_min_ms = c->drain_min;
    o.address = "127.0.0.1";
    o.port = 0;
    o.log_level = HEALTH_LOG_DEBUG;
  }
  o.log_fn = ch_log_fn;
  health_error_t err;
  if (health_new(&ch_h, &o, &err) != 0) {
    ch_write(err.text);
    _exit(92);
  }
  for (size_t i = 0; i < c->nhooks; i++) {
    char name[8];
    snprintf(name, sizeof name, "h%zu", i);
    if (health_hook_add(ch_h, name, c->hooks[i].order, c->hooks[i].timeout, ch_hook,
                        (void *)(intptr_t)c->hooks[i].kind, &err) != 0) {
      ch_write(err.text);
      _exit(93);
    }
  }
  if (c->inflight) health_inflight_begin(ch_h);
  if (health_start(ch_h, &err) != 0) {
    ch_write(err.text);
    _exit(94);
  }
  pthread_t t;
  if (c->inflight) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, NULL, ch_inflight_main, NULL) != 0) _exit(95);
    pthread_detach(t); /* the library exits the process */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  ssize_t w = write(ready_fd, "R", 1);
  (void)w;
  for (;;) pause(); /* the library exits the process */
}

/* ------------------------------------------------------------------ */
/* The log                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  char *text;
} log_t;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return strdup("");
  size_t cap = 65536, len = 0;
  char *b = malloc(cap);
  size_t n;
  while (b && (n = fread(b + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 4096) b = realloc(b, cap *= 2);
  }
  fclose(f);
  if (b) b[len] = 0;
  return b;
}

/* The line of the k-th (0-based) occurrence of `event` whose text also
 * contains `with` (may be NULL); its start, or NULL. */
static const char *find_line(const char *text, const char *event, const char *with, int k) {
  char needle[96];
  snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) {
    const char *ls = p;
    while (ls > text && ls[-1] != '\n') ls--;
    const char *le = strchr(p, '\n');
    size_t n = le ? (size_t)(le - ls) : strlen(ls);
    if (with) {
      char *line = strndup(ls, n);
      int has = line && strstr(line, with) != NULL;
      free(line);
      if (!has) continue;
    }
    if (k-- == 0) return ls;
  }
  return NULL;
}

/* A numeric field of a line (up to its end). */
static double field_num(const char *line, const char *key, double dflt) {
  if (!line) return dflt;
  char needle[64];
  snprintf(needle, sizeof needle, "\"%s\":", key);
  const char *le = strchr(line, '\n');
  const char *p = strstr(line, needle);
  if (!p || (le && p > le)) return dflt;
  return strtod(p + strlen(needle), NULL);
}

static int field_is(const char *line, const char *key, const char *val) {
  if (!line) return 0;
  char needle[128];
  snprintf(needle, sizeof needle, "\"%s\":\"%s\"", key, val);
  const char *le = strchr(line, '\n');
  const char *p = strstr(line, needle);
  return p && (!le || p < le);
}

/* ------------------------------------------------------------------ */
/* The model and the comparison                                       */
/* ------------------------------------------------------------------ */

typedef struct {
  cfg_t cfg;
  pid_t pid;
  int ready_fd;
  char log_path[256];
  int ready;
  uint64_t sig_at[3]; /* when each signal was sent (0: not yet) */
  unsigned sent;
  int status;
  int done;
} run_t;

static unsigned g_tol;
static char g_fail[4096];
static int g_failed;

#define EXPECT(cond, ...)                                            \
  do {                                                               \
    if (!(cond) && !g_failed) {                                      \
      g_failed = 1;                                                  \
      int o_ = snprintf(g_fail, sizeof g_fail, __VA_ARGS__);         \
      if (o_ > 0 && (size_t)o_ < sizeof g_fail)                      \
        cfg_print(&r->cfg, g_fail + o_, sizeof g_fail - (size_t)o_); \
    }                                                                \
  } while (0)

/* observed within [model - EARLY_MS, model + tol]. */
static int near(double obs, double model) {
  return obs >= model - EARLY_MS && obs <= model + g_tol;
}

static void verify(run_t *r) {
  const cfg_t *c = &r->cfg;
  char *text = slurp(r->log_path);
  int code = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : 128 + WTERMSIG(r->status);

  /* The plan logged at start agrees with the model. */
  unsigned dmin = c->min_set ? c->drain_min : c->drain;
  const char *plan = find_line(text, "shutdown_plan", "\"drain_ms\"", 0);
  EXPECT(plan != NULL, "no shutdown_plan line at start; ");
  EXPECT(field_num(plan, "drain_ms", -1) == c->drain &&
             field_num(plan, "drain_min_ms", -1) == dmin &&
             field_num(plan, "deadline_ms", -1) == c->deadline,
         "the logged plan disagrees with the options; ");

  /* The plan again at the signal, in absolute times from the instant the
   * library saw the signal: the anchor of everything that follows. */
  const char *atl = find_line(text, "shutdown_plan", "\"at\":\"signal\"", 0);
  double t0 = field_num(atl, "signal_mono_ms", -1);
  EXPECT(atl != NULL && t0 > 0, "no shutdown_plan line at the signal; ");
  EXPECT(field_num(atl, "drain_end_mono_ms", -1) == t0 + c->drain &&
             field_num(atl, "deadline_mono_ms", -1) == t0 + c->deadline,
         "the plan at the signal has wrong absolute times; ");
  double started = field_num(find_line(text, "shutdown_started", NULL, 0), "mono_ms", -1);
  EXPECT(started >= t0 && started <= t0 + g_tol,
         "shutdown_started %.1f ms after the signal was seen; ", started - t0);
  /* The signal's own latency is not part of the plan: a loaded machine
   * gets twice the tolerance here. */
  EXPECT(t0 >= (double)r->sig_at[0] - EARLY_MS && t0 <= (double)r->sig_at[0] + 2 * g_tol,
         "shutdown_started %.1f ms after the signal; ", t0 - (double)r->sig_at[0]);
  double deadline = t0 + c->deadline;
  double forced = r->sent >= 3 ? (double)r->sig_at[2] : 1e18;

  /* The drain. */
  /* Candidates for the end of the drain; the earliest wins, and one within
   * the tolerance of it is a tie either side may win. */
  double cand[3] = {t0 + c->drain, 1e18, 1e18};
  static const char *reason[3] = {"window elapsed", "nothing in flight", "repeated signal"};
  if (dmin < c->drain) {
    cand[1] = t0 + dmin;
    if (c->inflight) {
      double end = field_num(find_line(text, "app_inflight_end", NULL, 0), "mono_ms", 1e18);
      if (end > cand[1]) cand[1] = end;
    }
  }
  if (r->sent >= 2) cand[2] = (double)r->sig_at[1];
  int win = 0;
  for (int k = 1; k < 3; k++)
    if (cand[k] < cand[win]) win = k;
  double drain_model = cand[win];
  const char *why = reason[win];
  const char *dl = find_line(text, "drain_ended", NULL, 0);
  double drain_obs = field_num(dl, "mono_ms", -1);
  EXPECT(dl != NULL, "no drain_ended line; ");
  EXPECT(near(drain_obs, drain_model), "drain ended %.1f ms after the signal, model %.1f (%s); ",
         drain_obs - t0, drain_model - t0, why);
  int reason_ok = 0;
  for (int k = 0; k < 3; k++)
    if (cand[k] <= drain_model + g_tol && field_is(dl, "reason", reason[k])) reason_ok = 1;
  EXPECT(reason_ok, "drain ended for another reason than \"%s\"; ", why);
  EXPECT(drain_obs >= t0 + dmin - EARLY_MS || r->sent >= 2, "the drain ended before its minimum; ");

  /* The hooks, in run order. */
  size_t idx[MAX_HOOKS];
  for (size_t i = 0; i < c->nhooks; i++) idx[i] = i;
  for (size_t i = 1; i < c->nhooks; i++) /* stable insertion sort by order */
    for (size_t j = i; j > 0 && c->hooks[idx[j - 1]].order > c->hooks[idx[j]].order; j--) {
      size_t t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  int want_code = 0;
  double prev_end = drain_obs;
  int stopped = 0; /* 5: deadline reached, 6: forced exit */
  for (size_t n = 0; n < c->nhooks; n++) {
    size_t i = idx[n];
    char name[16];
    snprintf(name, sizeof name, "\"hook\":\"h%zu\"", i);
    const char *st = find_line(text, "hook_started", name, 0);
    const char *sk = find_line(text, "hook_skipped", name, 0);
    unsigned timeout = c->hooks[i].timeout ? c->hooks[i].timeout : c->hook_default;
    if (stopped) {
      EXPECT(st == NULL && sk != NULL, "hook h%zu was not skipped after the sequence stopped; ", i);
      continue;
    }
    if (!st) {
      /* Skipped: only if the deadline or a forced exit had come (within
       * the tolerance: right at the edge either outcome is right). */
      int dl_skip = sk && field_is(sk, "reason", "shutdown deadline reached");
      double edge = dl_skip ? deadline : forced;
      EXPECT(sk != NULL && prev_end >= edge - g_tol, "hook h%zu did not run (%.1f ms before %s); ",
             i, edge - prev_end, dl_skip ? "the deadline" : "a forced exit");
      stopped = dl_skip ? 5 : 6;
      want_code = want_code > stopped ? want_code : stopped;
      continue;
    }
    EXPECT(prev_end < deadline + g_tol && prev_end < forced + g_tol,
           "hook h%zu ran after the deadline or a forced exit; ", i);
    double begin = field_num(st, "mono_ms", -1);
    EXPECT(near(begin, prev_end), "hook h%zu started %.1f ms after the previous step, model 0; ", i,
           begin - prev_end);
    double until = begin + timeout < deadline ? begin + timeout : deadline;
    double budget = field_num(st, "budget_ms", -1);
    /* The library takes the hook's start a little before the line is
     * logged, in whole milliseconds. */
    EXPECT(budget >= (until - begin) - g_tol && budget <= (until - begin) + g_tol,
           "hook h%zu logged a budget of %.0f ms, model %.0f; ", i, budget, until - begin);
    const char *dn = find_line(text, "hook_done", name, 0);
    EXPECT(dn != NULL, "hook h%zu has no hook_done line; ", i);
    if (!dn) break;
    double end = field_num(dn, "mono_ms", -1);
    /* Candidates: the hook returns (ok/fail: at once), its timeout, the
     * deadline, a forced exit; the earliest wins, a near tie either. */
    double t_ret = c->hooks[i].kind == HK_HANG ? 1e18 : begin;
    double t_to = begin + timeout < deadline ? begin + timeout : 1e18;
    double t_dl = begin + timeout < deadline ? 1e18 : deadline;
    double first = t_ret;
    if (t_to < first) first = t_to;
    if (t_dl < first) first = t_dl;
    if (forced < first) first = forced;
    int got;
    double at;
    if (field_is(dn, "result", "ok")) got = 0, at = t_ret;
    else if (field_is(dn, "result", "failed")) got = 3, at = t_ret;
    else if (field_is(dn, "result", "timeout: abandoned")) got = 4, at = begin + timeout;
    else if (field_is(dn, "result", "abandoned at the shutdown deadline")) got = 5, at = deadline;
    else got = 6, at = forced;
    EXPECT(at <= first + g_tol,
           "hook h%zu ended with code %d at %.1f ms, the model's first outcome is at %.1f ms; ", i,
           got, at - begin, first - begin);
    if (got == 0 || got == 3)
      EXPECT(c->hooks[i].kind == (got ? HK_FAIL : HK_OK), "hook h%zu (%s) reported code %d; ", i,
             kind_name[c->hooks[i].kind], got);
    /* How long it ran: the library's own duration_ms, measured from the
     * instant it took before logging hook_started; that line's mono_ms
     * may come late on a loaded machine (a preempted log call), which
     * would make a hook cut at its timeout look early. */
    double ran = field_num(dn, "duration_ms", -1);
    if (ran < 0) ran = end - begin;
    EXPECT(near(ran, at < begin ? 0 : at - begin),
           "hook h%zu ended %.1f ms after it began, model %.1f; ", i, ran, at - begin);
    want_code = want_code > got ? want_code : got;
    prev_end = end;
    if (got >= 5) stopped = got;
  }
  /* A forced exit after the last hook, before the exit itself: code 6. */
  if (r->sent >= 3 && !stopped && forced <= prev_end + g_tol) {
    const char *fl = find_line(text, "shutdown_signal_repeated", "\"count\":3", 0);
    if (fl) want_code = 6;
  }
  const char *done = find_line(text, "shutdown_complete", NULL, 0);
  double t_done = field_num(done, "mono_ms", -1);
  EXPECT(done != NULL, "no shutdown_complete line; ");
  EXPECT(t_done <= deadline + g_tol, "the sequence ended %.1f ms after the deadline; ",
         t_done - deadline);
  EXPECT(field_num(done, "exit_code", -1) == code, "the log says exit code %.0f, the process %d; ",
         field_num(done, "exit_code", -1), code);
  EXPECT(code == want_code, "exit code %d, model %d; ", code, want_code);
  free(text);
}

/* ------------------------------------------------------------------ */
/* The runner: PARALLEL children at a time                             */
/* ------------------------------------------------------------------ */

static char *g_dir;

static void spawn(run_t *r) {
  snprintf(r->log_path, sizeof r->log_path, "%s/log-%u", g_dir, r->cfg.n);
  unlink(r->log_path);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(99);
    close(p[0]);
    child_main(&r->cfg, p[1], r->log_path);
    _exit(98);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  r->pid = pid;
  r->ready_fd = p[0];
}

static void reap(run_t *r) {
  if (r->ready_fd >= 0) close(r->ready_fd);
  r->ready_fd = -1;
  r->pid = 0;
}

/* Run one configuration slot forward; 1 once it has finished. */
static int step(run_t *r, uint64_t now) {
  int st;
  if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
    r->status = st;
    reap(r);
    if (!r->ready || !r->sent) {
      EXPECT(0, "the child exited (status %d) before its shutdown began; ", st);
      return 1;
    }
    verify(r);
    return 1;
  }
  if (!r->ready) {
    char b;
    if (read(r->ready_fd, &b, 1) == 1) {
      r->ready = 1;
      r->sig_at[0] = th_now_ms();
      kill(r->pid, SIGTERM);
      r->sent = 1;
    }
    return 0;
  }
  if (r->sent < r->cfg.nsignals && now >= r->sig_at[0] + (uint64_t)r->sent * SIGNAL_GAP_MS) {
    r->sig_at[r->sent] = th_now_ms();
    kill(r->pid, r->sent == 1 && r->cfg.use_sigint ? SIGINT : SIGTERM);
    r->sent++;
  }
  uint64_t limit = r->sig_at[0] + r->cfg.deadline + 2 * SIGNAL_GAP_MS + TS(3000);
  if (now > limit) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &st, 0);
    reap(r);
    EXPECT(0, "the child did not exit within %llu ms of the signal; ",
           (unsigned long long)(limit - r->sig_at[0]));
    return 1;
  }
  return 0;
}

START_TEST(test_timeline_property) {
  unsigned scale = th_time_scale();
  unsigned count = 200 / scale;
  if (th_under_valgrind() && count > 12) count = 12;
  if (count < 12) count = 12;
  g_tol = TS(TOL_MS);
  g_gap = 1000 + TS(150); /* the configurations depend on the scale: replay with the same one */
  const char *seed = getenv("HEALTH_TIMELINE_SEED");
  rng_s = seed && *seed ? strtoull(seed, NULL, 0) : 0x5EED0F11u;
  if (!rng_s) rng_s = 1;
  const char *only = getenv("HEALTH_TIMELINE_ONLY");
  long only_n = only && *only ? atol(only) : -1;
  if (only_n >= (long)count) count = (unsigned)only_n + 1;
  cfg_t *cfgs = calloc(count, sizeof *cfgs);
  ck_assert_ptr_nonnull(cfgs);
  for (unsigned i = 0; i < count; i++) cfg_gen(&cfgs[i], i); /* all first: replay sees the same */
  g_dir = th_tmpdir("timeline");
  ck_assert_ptr_nonnull(g_dir);

  run_t slots[PARALLEL];
  int busy[PARALLEL] = {0};
  unsigned next = only_n >= 0 ? (unsigned)only_n : 0,
           end = only_n >= 0 ? (unsigned)only_n + 1 : count;
  unsigned finished = 0, total = end - next;
  uint64_t t_start = th_now_ms();
  unsigned counts[7] = {0};
  while (finished < total) {
    for (int s = 0; s < PARALLEL; s++)
      if (!busy[s] && next < end && !g_failed) {
        memset(&slots[s], 0, sizeof slots[s]);
        slots[s].cfg = cfgs[next++];
        slots[s].ready_fd = -1;
        spawn(&slots[s]);
        busy[s] = 1;
      }
    uint64_t now = th_now_ms();
    int any = 0;
    for (int s = 0; s < PARALLEL; s++) {
      if (!busy[s]) continue;
      any = 1;
      if (step(&slots[s], now)) {
        busy[s] = 0;
        finished++;
        int code = WIFEXITED(slots[s].status) ? WEXITSTATUS(slots[s].status) : 0;
        if (code < 7) counts[code]++;
        if (!g_failed) unlink(slots[s].log_path);
      }
    }
    if (g_failed) {
      for (int s = 0; s < PARALLEL; s++)
        if (busy[s] && slots[s].pid > 0) {
          kill(slots[s].pid, SIGKILL);
          waitpid(slots[s].pid, NULL, 0);
          reap(&slots[s]);
        }
      break;
    }
    if (!any && next >= end) break;
    struct timespec ts = {0, 1000000L}; /* pacing of a poll loop over child processes */
    nanosleep(&ts, NULL);
  }
  fprintf(
      stderr,
      "check_timeline: %u configurations in %.1f s (tolerance %u ms): exit codes 0:%u 3:%u 4:%u 5:%u 6:%u\n",
      finished, (double)(th_now_ms() - t_start) / 1000.0, g_tol, counts[0], counts[3], counts[4],
      counts[5], counts[6]);
  if (g_failed) fprintf(stderr, "check_timeline: %s\n", g_fail);
  th_remove_dir("check_timeline", g_dir);
  free(g_dir);
  free(cfgs);
  ck_assert_msg(!g_failed,
                "%s (replay: HEALTH_TIMELINE_ONLY=<n> HEALTH_TEST_TIME_SCALE=%u, seed %s)", g_fail,
                scale, seed && *seed ? seed : "default");
  /* The generator really covered the outcomes. */
  if (only_n < 0 && total >= 100)
    ck_assert_msg(counts[0] && counts[3] && counts[4] && counts[5] && counts[6],
                  "the generated configurations missed an exit code");
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("timeline");
  TCase *t = tcase_create("property");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, test_timeline_property);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return th_run_suite(suite(), CK_NORMAL, CK_FORK_GETENV) ? 1 : 0; }
