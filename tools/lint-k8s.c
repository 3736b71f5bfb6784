/*
 * health-lint: Kubernetes manifests (Deployment, StatefulSet, DaemonSet,
 * Pod) and Docker Compose files.
 */
#include "lint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int health_env(yaml_document_t *d, yaml_node_t *c, const char *key) {
  yaml_node_t *env = ly_get(d, c, key);
  if (env && env->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = env->data.mapping.pairs.start; p < env->data.mapping.pairs.top;
         p++) {
      const char *k = ly_str(yaml_document_get_node(d, p->key));
      if (k && strncmp(k, "HEALTH_", 7) == 0) return 1;
    }
  }
  for (size_t i = 0; i < ly_len(env); i++) {
    yaml_node_t *e = ly_item(d, env, i);
    const char *n = ly_str(e) ? ly_str(e) : ly_str(ly_get(d, e, "name"));
    if (n && strncmp(n, "HEALTH_", 7) == 0) return 1;
  }
  return 0;
}

static void argv_of(lint_t *l, lint_check_t *c, yaml_document_t *d, yaml_node_t *cmd) {
  const char *argv[64];
  size_t argc = 0;
  if (ly_str(cmd)) { /* one shell string */
    char *sh = lint_strdup(l, ly_str(cmd));
    for (char *t = strtok(sh, " \t\n"); t && argc < 64; t = strtok(NULL, " \t\n")) argv[argc++] = t;
  } else {
    for (size_t i = 0; i < ly_len(cmd) && argc < 64; i++)
      if (ly_str(ly_item(d, cmd, i))) argv[argc++] = ly_str(ly_item(d, cmd, i));
  }
  /* sh -c 'the command': its words. */
  if (argc == 3 && strcmp(argv[1], "-c") == 0 && strstr(argv[0], "sh")) {
    char *sh = lint_strdup(l, argv[2]);
    argc = 0;
    for (char *t = strtok(sh, " \t\n"); t && argc < 64; t = strtok(NULL, " \t\n")) argv[argc++] = t;
  }
  lint_command(l, c, argv, argc);
}

static void probe(lint_t *l, lint_unit_t *u, yaml_document_t *d, yaml_node_t *c, const char *key,
                  int kind) {
  yaml_node_t *p = ly_get(d, c, key), *x;
  if (!p || p->type != YAML_MAPPING_NODE) return;
  lint_check_t *k = lint_check(u, kind, key, ly_line(p));
  long v;
  k->timeout_name = "timeoutSeconds";
  k->timeout_ms = 1000; /* Kubernetes' defaults */
  k->period_s = 10;
  k->threshold = 3;
  k->initial_s = 0;
  if ((x = ly_get(d, p, "timeoutSeconds")) && ly_long(x, &v) == 0) k->timeout_ms = v * 1000;
  if ((x = ly_get(d, p, "periodSeconds")) && ly_long(x, &v) == 0) k->period_s = v;
  if ((x = ly_get(d, p, "failureThreshold")) && ly_long(x, &v) == 0) k->threshold = v;
  if ((x = ly_get(d, p, "initialDelaySeconds")) && ly_long(x, &v) == 0) k->initial_s = v;
  k->period_name = "periodSeconds";
  k->threshold_name = "failureThreshold";
  if ((x = ly_get(d, p, "httpGet"))) {
    const char *path = ly_str(ly_get(d, x, "path"));
    k->path = lint_strdup(l, path ? path : "/");
    k->port = lint_strdup(l, ly_str(ly_get(d, x, "port")));
    k->line = ly_line(x);
  } else if ((x = ly_get(d, p, "tcpSocket")) || (x = ly_get(d, p, "grpc"))) {
    k->tcp = 1;
    k->port = lint_strdup(l, ly_str(ly_get(d, x, "port")));
  } else if ((x = ly_get(d, p, "exec"))) {
    argv_of(l, k, d, ly_get(d, x, "command"));
  }
}

static void container(lint_t *l, const char *file, yaml_document_t *d, yaml_node_t *spec,
                      yaml_node_t *c) {
  lint_unit_t *u = lint_unit(l, file, "container", ly_str(ly_get(d, c, "name")), ly_line(c));
  yaml_node_t *env = ly_get(d, c, "env"), *x;
  for (size_t i = 0; i < ly_len(env); i++) {
    yaml_node_t *e = ly_item(d, env, i);
    const char *n = ly_str(ly_get(d, e, "name")), *v = ly_str(ly_get(d, e, "value"));
    if (n && v) lint_env(l, u, n, v, ly_line(e));
  }
  yaml_node_t *ports = ly_get(d, c, "ports");
  for (size_t i = 0; i < ly_len(ports); i++) {
    yaml_node_t *p = ly_item(d, ports, i);
    const char *n = ly_str(ly_get(d, p, "name")), *v = ly_str(ly_get(d, p, "containerPort"));
    if (!n || !v) continue;
    lint_grow((void **)&u->ports, &u->nports, sizeof *u->ports);
    u->ports[u->nports - 1] = (lint_var_t){lint_strdup(l, n), lint_strdup(l, v), ly_line(p)};
  }
  long v;
  u->kill_name = "terminationGracePeriodSeconds";
  if ((x = ly_get(d, spec, "terminationGracePeriodSeconds")) && ly_long(x, &v) == 0) {
    u->kill_ms = v * 1000;
    u->kill_line = ly_line(x);
  } else {
    u->kill_ms = 30000;
    u->kill_default = 1;
    u->kill_line = ly_line(spec);
  }
  /* preStop runs inside the grace period, before SIGTERM. */
  yaml_node_t *pre = ly_get(d, ly_get(d, c, "lifecycle"), "preStop");
  if ((x = ly_get(d, ly_get(d, pre, "sleep"), "seconds")) && ly_long(x, &v) == 0) {
    u->prestop_ms = v * 1000;
    u->prestop_line = ly_line(x);
  } else if ((x = ly_get(d, ly_get(d, pre, "exec"), "command"))) {
    for (size_t i = 0; i < ly_len(x); i++) {
      const char *a = ly_str(ly_item(d, x, i));
      const char *s = a ? strstr(a, "sleep") : NULL;
      if (!s) continue;
      s += 5;
      if (!*s && i + 1 < ly_len(x)) s = ly_str(ly_item(d, x, i + 1));
      double secs = s ? strtod(s, NULL) : 0;
      if (secs > 0) {
        u->prestop_ms = (long)(secs * 1000);
        u->prestop_line = ly_line(x);
      }
      break;
    }
  }
  probe(l, u, d, c, "livenessProbe", LINT_LIVE);
  probe(l, u, d, c, "readinessProbe", LINT_READY);
  probe(l, u, d, c, "startupProbe", LINT_STARTUP);
}

int lint_k8s(lint_t *l, const char *file, yaml_document_t *d) {
  yaml_node_t *root = yaml_document_get_root_node(d);
  const char *kind = ly_str(ly_get(d, root, "kind"));
  if (!kind || !ly_get(d, root, "apiVersion")) return 0;
  yaml_node_t *spec = ly_get(d, root, "spec");
  if (strcmp(kind, "Deployment") == 0 || strcmp(kind, "StatefulSet") == 0 ||
      strcmp(kind, "DaemonSet") == 0)
    spec = ly_get(d, ly_get(d, spec, "template"), "spec");
  else if (strcmp(kind, "Pod") != 0) return 0;
  yaml_node_t *cs = ly_get(d, spec, "containers");
  int any = 0;
  for (size_t i = 0; i < ly_len(cs); i++) any |= health_env(d, ly_item(d, cs, i), "env");
  for (size_t i = 0; i < ly_len(cs); i++)
    if (!any || health_env(d, ly_item(d, cs, i), "env"))
      container(l, file, d, spec, ly_item(d, cs, i));
  return 1;
}

/* ---- Docker Compose ---- */

static void service(lint_t *l, const char *file, yaml_document_t *d, const char *name,
                    yaml_node_t *s) {
  lint_unit_t *u = lint_unit(l, file, "service", name, ly_line(s));
  yaml_node_t *env = ly_get(d, s, "environment"), *x;
  if (env && env->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = env->data.mapping.pairs.start; p < env->data.mapping.pairs.top;
         p++) {
      yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
      if (ly_str(k)) lint_env(l, u, ly_str(k), ly_str(v) ? ly_str(v) : "", ly_line(k));
    }
  }
  for (size_t i = 0; i < ly_len(env); i++) {
    yaml_node_t *e = ly_item(d, env, i);
    const char *kv = ly_str(e), *eq = kv ? strchr(kv, '=') : NULL;
    if (!eq) continue;
    char *k = lint_strdup(l, kv);
    k[eq - kv] = '\0';
    lint_env(l, u, k, eq + 1, ly_line(e));
  }
  u->kill_name = "stop_grace_period";
  u->kill_ms = 10000; /* Docker's default */
  u->kill_default = 1;
  u->kill_line = ly_line(s);
  if ((x = ly_get(d, s, "stop_grace_period")) && ly_str(x)) {
    u->kill_ms = lint_duration_ms(ly_str(x));
    u->kill_default = 0;
    u->kill_line = ly_line(x);
  }
  if ((x = ly_get(d, s, "stop_signal")) && ly_str(x)) {
    u->stop_signal = lint_strdup(l, ly_str(x));
    u->signal_name = "stop_signal";
    u->signal_line = ly_line(x);
  }
  yaml_node_t *hc = ly_get(d, s, "healthcheck");
  yaml_node_t *test = ly_get(d, hc, "test");
  if (!test) return;
  const char *first = ly_str(ly_item(d, test, 0));
  if (first && strcmp(first, "NONE") == 0) return;
  lint_check_t *c = lint_check(u, LINT_LIVE, "healthcheck", ly_line(hc));
  c->timeout_name = "healthcheck.timeout";
  c->timeout_ms = 30000;
  if ((x = ly_get(d, hc, "timeout")) && ly_str(x)) c->timeout_ms = lint_duration_ms(ly_str(x));
  c->start_name = "healthcheck.start_period";
  c->start_s = 0;
  if ((x = ly_get(d, hc, "start_period")) && ly_str(x))
    c->start_s = lint_duration_ms(ly_str(x)) / 1000;
  if (ly_str(test)) {
    argv_of(l, c, d, test);
  } else if (first && (strcmp(first, "CMD") == 0 || strcmp(first, "CMD-SHELL") == 0)) {
    const char *argv[64];
    size_t argc = 0;
    for (size_t i = 1; i < ly_len(test) && argc < 64; i++)
      if (ly_str(ly_item(d, test, i))) argv[argc++] = ly_str(ly_item(d, test, i));
    if (strcmp(first, "CMD-SHELL") == 0 && argc == 1) {
      char *sh = lint_strdup(l, argv[0]);
      argc = 0;
      for (char *t = strtok(sh, " \t\n"); t && argc < 64; t = strtok(NULL, " \t\n"))
        argv[argc++] = t;
    }
    lint_command(l, c, argv, argc);
  }
}

int lint_compose(lint_t *l, const char *file, yaml_document_t *d) {
  yaml_node_t *root = yaml_document_get_root_node(d);
  yaml_node_t *svcs = ly_get(d, root, "services");
  if (!svcs || svcs->type != YAML_MAPPING_NODE) return 0;
  int any = 0;
  for (yaml_node_pair_t *p = svcs->data.mapping.pairs.start; p < svcs->data.mapping.pairs.top; p++)
    any |= health_env(d, yaml_document_get_node(d, p->value), "environment");
  for (yaml_node_pair_t *p = svcs->data.mapping.pairs.start; p < svcs->data.mapping.pairs.top;
       p++) {
    yaml_node_t *s = yaml_document_get_node(d, p->value);
    if (!any || health_env(d, s, "environment"))
      service(l, file, d, ly_str(yaml_document_get_node(d, p->key)), s);
  }
  return 1;
}
