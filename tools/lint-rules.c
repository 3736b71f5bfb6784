/*
 * health-lint's rules.  The settings of each container go through the
 * library's own parsers (health__options_from_lookup and its siblings), and
 * the shutdown plan comes from health__plan_derive on a handle built as
 * health_start builds it, so the check cannot disagree with the process.
 */
#include "health_int.h"
#include "lint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
  lint_t *l;
  lint_unit_t *u;
} look_t;

static const lint_var_t *find(const look_t *k, const char *name, int *cli) {
  *cli = 0;
  for (size_t i = k->u->nenv; i-- > 0;)
    if (strcmp(k->u->env[i].name, name) == 0) return &k->u->env[i];
  *cli = 1;
  for (size_t i = k->l->ncli; i-- > 0;)
    if (strcmp(k->l->cli_env[i].name, name) == 0) return &k->l->cli_env[i];
  return NULL;
}

static const char *lookup(const char *name, void *arg) {
  int cli;
  const lint_var_t *v = find(arg, name, &cli);
  /* "${VAR}": the file leaves the value to its runtime (Compose). */
  return v && !strstr(v->value, "${") ? v->value : NULL;
}

/* NAME=VALUE as the file says it, or with "(--env)" or "(default)". */
static const char *setting(look_t *k, const char *name, unsigned long value) {
  int cli;
  const lint_var_t *v = find(k, name, &cli);
  if (!v || !lookup(name, k)) return lint_printf(k->l, "%s=%lu (default)", name, value);
  return lint_printf(k->l, "%s=%s%s", name, v->value, cli ? " (--env)" : "");
}

static int var_line(look_t *k, const char *name) {
  int cli;
  const lint_var_t *v = find(k, name, &cli);
  return v && !cli ? v->line : k->u->line;
}

static const char *where(lint_t *l, const lint_unit_t *u) {
  return *u->name ? lint_printf(l, "%s '%s'", u->kind, u->name) : u->kind;
}

/* HL008 for a message of the library's: the line of the variable it names. */
static void malformed(look_t *k, const char *text) {
  const char *h = strstr(text, "HEALTH_");
  char name[64] = "";
  if (h)
    snprintf(name, sizeof name, "%.*s", (int)strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"), h);
  lint_problem(k->l, k->u->file, *name ? var_line(k, name) : k->u->line, "HL008",
               "%s: the library refuses its settings (health_config_from_env would fail): %s\n"
               "give %s a value the library accepts (docs/environment.md)",
               where(k->l, k->u), text, *name ? name : "the variable");
}

static int hook_noop(void *arg, unsigned remaining_ms) {
  (void)arg, (void)remaining_ms;
  return 0;
}

static long port_of(const lint_unit_t *u, const char *port) {
  if (!port) return -1;
  if (*port && strspn(port, "0123456789") == strlen(port)) return strtol(port, NULL, 10);
  for (size_t i = 0; i < u->nports; i++)
    if (strcmp(u->ports[i].name, port) == 0) return strtol(u->ports[i].value, NULL, 10);
  return -2;
}

static int is_path(const char *p, const char *configured, const char *dflt, const char *alias) {
  return strcmp(p, configured) == 0 || (strcmp(configured, dflt) == 0 && strcmp(p, alias) == 0);
}

static int signal_ok(const char *s) {
  if (strncasecmp(s, "SIG", 3) == 0) s += 3;
  return strcasecmp(s, "TERM") == 0 || strcasecmp(s, "INT") == 0 || strcmp(s, "15") == 0 ||
         strcmp(s, "2") == 0;
}

/* 503 among "200", "200,202", "200-399". */
static int accepts_503(const char *m) {
  const char *p = m;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10), b = a;
    if (end == p) return 0;
    p = end;
    if (*p == '-') {
      b = strtol(p + 1, &end, 10);
      p = end;
    }
    if (a <= 503 && 503 <= b) return 1;
    p += strspn(p, ", ");
  }
  return 0;
}

typedef struct {
  look_t k;
  health_options_t o;
  health_serve_options_t so;
  unsigned startup_ms;
} ctx_t;

static void readiness(ctx_t *c, const lint_check_t *k, const char *file) {
  lint_t *l = c->k.l;
  const char *w = where(l, c->k.u), *what = k->what;
  const char *of = strcmp(what, "target group") == 0 ? "for" : "of";
  const char *hp = setting(&c->k, "HEALTH_PORT", c->o.port);
  int line = k->line;
  /* HL001: the load balancer sees the 503 within the drain. */
  if (k->period_s > 0 && k->threshold > 0 && !k->tcp) {
    long notice = (k->threshold + 1) * k->period_s;
    if ((unsigned long)notice * 1000 > c->o.drain_ms)
      lint_problem(
          l, file, line, "HL001",
          "%s %s %s: %s=%ld s x (%s=%ld + 1) = %ld s to stop routing, longer than %s: requests still arrive after the drain\nraise HEALTH_DRAIN_MS to at least %ld (the deadline and the kill time with it), or check more often",
          what, of, w, k->period_name, k->period_s, k->threshold_name, k->threshold, notice,
          setting(&c->k, "HEALTH_DRAIN_MS", c->o.drain_ms), notice * 1000);
  }
  /* HL004: the readiness path on the health port. */
  if (k->tcp) {
    lint_problem(
        l, file, line, "HL004",
        "%s %s %s checks TCP only: it cannot see /ready's 503, so the load balancer never drains the process\nuse an HTTP check of %s",
        what, of, w, c->so.ready_path);
    return;
  }
  if (k->path && !is_path(k->path, c->so.ready_path, "/ready", "/readyz"))
    lint_problem(
        l, file, line, "HL004",
        "%s %s %s asks %s, not the readiness path %s: it does not turn 503 on SIGTERM or when a dependency fails\nask %s",
        what, of, w, k->path, c->so.ready_path, c->so.ready_path);
  const char *port = k->port;
  if (port && strcmp(port, "traffic-port") == 0) port = k->traffic_port;
  if (!port) return;
  long p = port_of(c->k.u, port);
  if (c->o.port == HEALTH_PORT_OFF)
    lint_problem(l, file, line, "HL004",
                 "%s %s %s asks port %s, but %s: no health port serves %s\nset HEALTH_PORT", what,
                 of, w, port, hp, c->so.ready_path);
  else if (p == -2)
    lint_problem(
        l, file, line, "HL004",
        "%s %s %s asks port '%s', which is not one of the container's named ports\nname the health port (%s) in ports:",
        what, of, w, port, hp);
  else if (p >= 0 && c->o.port && (unsigned long)p != c->o.port)
    lint_problem(l, file, line, "HL004",
                 "%s %s %s asks port %ld, not the health port %s\nask port %u", what, of, w, p, hp,
                 c->o.port);
}

/* "5 s", or "1500 ms" (no locale-dependent %g). */
static const char *secs(lint_t *l, long ms) {
  return ms % 1000 ? lint_printf(l, "%ld ms", ms) : lint_printf(l, "%ld s", ms / 1000);
}

static void check(ctx_t *c, const lint_check_t *k) {
  lint_t *l = c->k.l;
  lint_unit_t *u = c->k.u;
  const char *w = where(l, u);
  if (k->kind == LINT_READY) {
    readiness(c, k, u->file);
  } else if (k->path) { /* HL003 */
    long p = port_of(u, k->port);
    if (is_path(k->path, c->so.ready_path, "/ready", "/readyz"))
      lint_problem(
          l, u->file, k->line, "HL003",
          "%s of %s asks the readiness path %s: it answers 503 when a dependency fails or the process drains, so every container is restarted at once\nask the liveness path %s",
          k->what, w, k->path, c->so.live_path);
    else if (p >= 0 && c->o.port != HEALTH_PORT_OFF && (unsigned long)p == c->o.port &&
             !is_path(k->path, c->so.live_path, "/health", "/livez"))
      lint_problem(l, u->file, k->line, "HL003",
                   "%s of %s asks %s on the health port, not the liveness path %s\nask %s", k->what,
                   w, k->path, c->so.live_path, c->so.live_path);
  }
  /* HL005: the client gives up before the platform does. */
  if (k->tool && k->timeout_ms > 0) {
    if (k->tool_timeout_ms < 0)
      lint_problem(
          l, u->file, k->line, "HL005",
          "%s of %s runs %s without %s: a hung answer runs into %s=%ld s and the failure says only that it timed out\nadd %s %ld (seconds) or less",
          k->what, w, k->tool, k->tool_timeout_name, k->timeout_name, k->timeout_ms / 1000,
          k->tool_timeout_name, k->timeout_ms / 1000 > 1 ? k->timeout_ms / 1000 - 1 : 1);
    else if (k->tool_timeout_ms >= k->timeout_ms)
      lint_problem(
          l, u->file, k->line, "HL005",
          "%s of %s: %s %s %ld ms is not below %s=%s: the platform kills the probe before it can say why\nlower %s below %ld ms",
          k->what, w, k->tool, k->tool_timeout_name, k->tool_timeout_ms, k->timeout_name,
          secs(l, k->timeout_ms), k->tool_timeout_name, k->timeout_ms);
  }
}

/* HL007: the platform waits for the library's own startup deadline. */
static void startup(ctx_t *c) {
  lint_unit_t *u = c->k.u;
  if (!c->startup_ms) return;
  const lint_check_t *s = NULL, *live = NULL;
  for (size_t i = 0; i < u->nchecks; i++) {
    if (u->checks[i].kind == LINT_STARTUP) s = &u->checks[i];
    if (u->checks[i].kind == LINT_LIVE) live = &u->checks[i];
  }
  if (!s) s = live;
  if (!s) return; /* nothing restarts the container */
  long window;
  const char *dl = setting(&c->k, "HEALTH_STARTUP_DEADLINE_MS", c->startup_ms);
  if (s->start_s >= 0) {
    window = s->start_s;
    if (window * 1000 < (long)c->startup_ms)
      lint_problem(
          c->k.l, u->file, s->line, "HL007",
          "%s of %s: %s=%ld s is shorter than %s: failures count before the library's startup deadline\nraise %s to at least %u s",
          s->what, where(c->k.l, u), s->start_name, window, dl, s->start_name,
          (c->startup_ms + 999) / 1000);
  } else {
    long init = s->initial_s > 0 ? s->initial_s : 0;
    window = init + s->threshold * s->period_s;
    if (window * 1000 < (long)c->startup_ms)
      lint_problem(
          c->k.l, u->file, s->line, "HL007",
          "%s of %s: initialDelaySeconds=%ld + %s=%ld x %s=%ld = %ld s is shorter than %s: the container is restarted before the library's startup deadline\n%s",
          s->what, where(c->k.l, u), init, s->threshold_name, s->threshold, s->period_name,
          s->period_s, window, dl,
          s->kind == LINT_STARTUP
              ? "raise failureThreshold x periodSeconds above it"
              : "add a startupProbe whose failureThreshold x periodSeconds covers it");
  }
}

/* HL002: drain and hooks fit the deadline, which comes before the kill. */
static void shutdown_rule(ctx_t *c, const health__plan_t *p) {
  lint_t *l = c->k.l;
  lint_unit_t *u = c->k.u;
  const char *w = where(l, u);
  const char *dl = setting(&c->k, "HEALTH_SHUTDOWN_DEADLINE_MS", c->o.shutdown_deadline_ms);
  for (size_t i = 0; i < p->nhooks; i++) {
    if (p->hooks[i].budget_ms >= p->hooks[i].timeout_ms) continue;
    lint_problem(
        l, u->file, var_line(&c->k, "HEALTH_SHUTDOWN_DEADLINE_MS"), "HL002",
        "%s: %s + %zu flush hook(s) of %u ms in all (%s) = %u ms exceed %s: the deadline cuts hook %zu by %u ms\nraise HEALTH_SHUTDOWN_DEADLINE_MS to at least %u (and the kill time above it), or shorten the drain or the hooks",
        w, setting(&c->k, "HEALTH_DRAIN_MS", c->o.drain_ms), p->nhooks, p->hooks_ms,
        setting(&c->k, "HEALTH_HOOK_TIMEOUT_MS", c->o.hook_timeout_ms), p->drain_ms + p->hooks_ms,
        dl, i + 1, p->hooks[i].timeout_ms - p->hooks[i].budget_ms, p->drain_ms + p->hooks_ms);
    break;
  }
  if (u->stop_signal && c->o.handle_signals && !signal_ok(u->stop_signal))
    lint_problem(
        l, u->file, u->signal_line, "HL002",
        "%s: %s=%s: the library drains on SIGTERM or SIGINT; this signal stops the process without readiness 503, drain or hooks\nuse SIGTERM",
        w, u->signal_name, u->stop_signal);
  if (u->kill_ms < 0) return;
  long kill = u->kill_ms;
  char capped[64] = "", pre[64] = "";
  if (u->kill_max_ms && kill > u->kill_max_ms) {
    kill = u->kill_max_ms;
    snprintf(capped, sizeof capped, ", capped at %ld s", kill / 1000);
  }
  if (u->prestop_ms) {
    kill -= u->prestop_ms;
    snprintf(pre, sizeof pre, " minus preStop %ld ms", u->prestop_ms);
  }
  if ((long)c->o.shutdown_deadline_ms < kill) return;
  unsigned need_s = (unsigned)((c->o.shutdown_deadline_ms + u->prestop_ms) / 1000 + 1);
  const char *fix =
      u->kill_max_ms && (long)need_s * 1000 > u->kill_max_ms
          ? lint_printf(
                l,
                "lower HEALTH_SHUTDOWN_DEADLINE_MS below %ld (%s cannot exceed %ld s), with the drain and hooks inside it",
                kill, u->kill_name, u->kill_max_ms / 1000)
          : lint_printf(
                l,
                "set %s to at least %u s (or lower the deadline, with the drain and hooks inside it)",
                u->kill_name, need_s);
  lint_problem(l, u->file, u->kill_line, "HL002",
               "%s: %s is not below the kill: %s=%ld s%s%s%s leaves %ld ms before SIGKILL\n%s", w,
               dl, u->kill_name, u->kill_ms / 1000, u->kill_default ? " (default)" : "", capped,
               pre, kill, fix);
}

static void unit(lint_t *l, lint_unit_t *u, const unsigned *hooks, size_t nhooks, int groups) {
  ctx_t c = {.k = {l, u}};
  health_error_t err = {0};
  health_options_init(&c.o);
  health_serve_options_init(&c.so);
  if (health__options_from_lookup(&c.o, lookup, &c.k, &err)) {
    malformed(&c.k, err.text);
    return;
  }
  if (health__serve_options_from_lookup(&c.so, lookup, &c.k, &err)) {
    malformed(&c.k, err.text);
    return;
  }
  /* The other families health_config_from_env() parses without a handle. */
  health_fleet_options_t fo;
  health_fleet_options_init(&fo);
  int nofile_set;
  unsigned long nofile_max;
  if (health__fleet_options_from_lookup(&fo, lookup, &c.k, &err) ||
      health__nofile_from_lookup(lookup, &c.k, &nofile_set, &nofile_max, &err)) {
    malformed(&c.k, err.text);
    return;
  }
  /* The handle health_start would plan from: the same options and hooks. */
  health_options_t o = c.o;
  o.log_level = HEALTH_LOG_OFF;
  health_t *h = NULL;
  health__plan_t plan;
  int rc = health_new(&h, &o, &err);
  for (size_t i = 0; !rc && i < nhooks; i++) {
    char name[32];
    snprintf(name, sizeof name, "hook%zu", i + 1);
    rc = health_hook_add(h, name, 0, hooks[i], hook_noop, NULL, &err);
  }
  if (!rc && (rc = health__controls_from_lookup(h, lookup, &c.k, &err)) == 0) {
    c.startup_ms = h->ctl->startup_deadline_ms;
    rc = health__plan_derive(h, &plan, &err);
  }
  health_free(h);
  if (rc) {
    malformed(&c.k, err.text);
    return;
  }
  shutdown_rule(&c, &plan);
  health__plan_free(&plan);
  for (size_t i = 0; i < u->nchecks; i++) check(&c, &u->checks[i]);
  if (groups)
    for (size_t i = 0; i < l->ngroups; i++) readiness(&c, &l->groups[i], l->group_files[i]);
  startup(&c);
}

void lint_rules(lint_t *l, const unsigned *hooks, size_t nhooks) {
  int ecs = 0;
  for (size_t i = 0; i < l->nunits; i++) ecs |= l->units[i].ecs;
  /* Target groups without a task definition: the settings of --env. */
  if (l->ngroups && !ecs) {
    lint_unit_t *u = lint_unit(l, l->group_files[0], "the --env settings", "", 0);
    u->ecs = 1;
  }
  for (size_t i = 0; i < l->nunits; i++) unit(l, &l->units[i], hooks, nhooks, l->units[i].ecs);
  for (size_t i = 0; i < l->ngroups; i++) /* HL006 */
    if (!l->groups[i].tcp && accepts_503(l->groups[i].matcher))
      lint_problem(
          l, l->group_files[i], l->groups[i].matcher_line, "HL006",
          "target group: Matcher HttpCode=%s accepts 503, the answer of /ready while the process drains or a dependency fails\nset HttpCode to 200",
          l->groups[i].matcher);
}
