/* health-lint: memory, the collected settings, and the report (text or JSON). */
#include "lint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void) {
  fputs("health-lint: out of memory\n", stderr);
  exit(2);
}

void lint_grow(void **array, size_t *n, size_t size) {
  char *p = realloc(*array, (*n + 1) * size);
  if (!p) oom();
  memset(p + *n * size, 0, size);
  *array = p;
  (*n)++;
}

void *lint_alloc(lint_t *l, size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) oom();
  lint_grow((void **)&l->arena, &l->narena, sizeof *l->arena);
  l->arena[l->narena - 1] = p;
  return p;
}

char *lint_strdup(lint_t *l, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *p = lint_alloc(l, n + 1);
  memcpy(p, s, n);
  return p;
}

static char *vformat(const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  char *p = malloc(n > 0 ? (size_t)n + 1 : 1);
  if (!p) oom();
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *lint_printf(lint_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(fmt, ap);
  va_end(ap);
  char *p = lint_strdup(l, s);
  free(s);
  return p;
}

void lint_problem(lint_t *l, const char *file, int line, const char *rule, const char *fmt, ...) {
  lint_grow((void **)&l->problems, &l->nproblems, sizeof *l->problems);
  lint_problem_t *p = &l->problems[l->nproblems - 1];
  p->file = file;
  p->line = line;
  p->rule = rule;
  va_list ap;
  va_start(ap, fmt);
  p->message = vformat(fmt, ap);
  va_end(ap);
}

lint_unit_t *lint_unit(lint_t *l, const char *file, const char *kind, const char *name, int line) {
  lint_grow((void **)&l->units, &l->nunits, sizeof *l->units);
  lint_unit_t *u = &l->units[l->nunits - 1];
  u->file = file;
  u->kind = kind;
  u->name = lint_strdup(l, name ? name : "");
  u->line = line;
  u->kill_ms = -1;
  return u;
}

lint_check_t *lint_check(lint_unit_t *u, int kind, const char *what, int line) {
  lint_grow((void **)&u->checks, &u->nchecks, sizeof *u->checks);
  lint_check_t *c = &u->checks[u->nchecks - 1];
  c->kind = kind;
  c->what = what;
  c->line = line;
  c->timeout_ms = c->tool_timeout_ms = -1;
  c->period_s = c->threshold = c->initial_s = c->start_s = -1;
  return c;
}

void lint_env(lint_t *l, lint_unit_t *u, const char *name, const char *value, int line) {
  lint_grow((void **)&u->env, &u->nenv, sizeof *u->env);
  u->env[u->nenv - 1] = (lint_var_t){lint_strdup(l, name), lint_strdup(l, value), line};
}

static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p == '\n') fputs("\\n", stdout);
    else if (*p == '\t') fputs("\\t", stdout);
    else if (*p < 0x20 || *p == 0x7F) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

/* The rule ids with their one-line titles (the man page has the same). */
static const char *title(const char *rule) {
  static const char *t[][2] = {
      {"HL001", "the load balancer notices the drain within HEALTH_DRAIN_MS"},
      {"HL002", "drain and hooks fit the shutdown deadline, which comes before the kill"},
      {"HL003", "liveness checks ask the liveness path"},
      {"HL004", "readiness checks ask the readiness path on the health port"},
      {"HL005", "an HTTP client's timeout is below its health check's timeout"},
      {"HL006", "the load balancer's matcher does not accept 503"},
      {"HL007", "the startup window covers HEALTH_STARTUP_DEADLINE_MS"},
      {"HL008", "HEALTH_* values are well-formed"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(t[i][0], rule) == 0) return t[i][1];
  return "";
}

void lint_print(const lint_t *l, int json) {
  if (json) printf("{\"problems\":[");
  for (size_t i = 0; i < l->nproblems; i++) {
    const lint_problem_t *p = &l->problems[i];
    /* The rules write "what is wrong\nhow to fix it". */
    const char *nl = strchr(p->message, '\n');
    int mlen = nl ? (int)(nl - p->message) : (int)strlen(p->message);
    const char *fix = nl ? nl + 1 : "";
    if (!json) {
      if (p->line) printf("%s:%d: ", p->file, p->line);
      else printf("%s: ", p->file);
      printf("%s: %.*s%s%s\n", p->rule, mlen, p->message, *fix ? "; fix: " : "", fix);
      continue;
    }
    printf(i ? ",\n{\"file\":" : "\n{\"file\":");
    json_str(p->file);
    if (p->line) printf(",\"line\":%d", p->line);
    printf(",\"rule\":");
    json_str(p->rule);
    printf(",\"title\":");
    json_str(title(p->rule));
    printf(",\"message\":");
    char *m = strdup(p->message);
    if (m) m[mlen] = '\0';
    json_str(m ? m : "");
    free(m);
    printf(",\"fix\":");
    json_str(fix);
    putchar('}');
  }
  if (json) printf("%s],\"count\":%zu}\n", l->nproblems ? "\n" : "", l->nproblems);
  fflush(stdout);
}

void lint_free(lint_t *l) {
  for (size_t i = 0; i < l->nunits; i++) {
    free(l->units[i].env);
    free(l->units[i].ports);
    free(l->units[i].checks);
  }
  free(l->units);
  free(l->groups);
  free(l->group_files);
  free(l->cli_env);
  for (size_t i = 0; i < l->nproblems; i++) free(l->problems[i].message);
  free(l->problems);
  for (size_t i = 0; i < l->narena; i++) free(l->arena[i]);
  free(l->arena);
  memset(l, 0, sizeof *l);
}
