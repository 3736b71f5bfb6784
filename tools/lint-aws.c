/*
 * health-lint: ECS task definitions (register-task-definition's input, or
 * describe-task-definition's output with its "taskDefinition" wrapper) and
 * ALB target groups (CloudFormation AWS::ElasticLoadBalancingV2::TargetGroup,
 * describe-target-groups, describe-target-group-attributes).
 */
#include "lint.h"

#include <stdio.h>
#include <string.h>

static int health_env(yaml_document_t *d, yaml_node_t *container) {
  yaml_node_t *env = ly_get(d, container, "environment");
  for (size_t i = 0; i < ly_len(env); i++) {
    const char *n = ly_str(ly_get(d, ly_item(d, env, i), "name"));
    if (n && strncmp(n, "HEALTH_", 7) == 0) return 1;
  }
  return 0;
}

/* A command in a JSON array: exec form (CMD, args...) or one shell string. */
static void command(lint_t *l, lint_check_t *c, yaml_document_t *d, yaml_node_t *cmd, size_t skip) {
  size_t n = ly_len(cmd);
  if (n <= skip) return;
  const char *argv[64];
  size_t argc = 0;
  const char *first = ly_str(ly_item(d, cmd, 0));
  if (skip && first && strcmp(first, "CMD-SHELL") == 0) {
    char *sh = lint_strdup(l, ly_str(ly_item(d, cmd, 1)));
    for (char *t = sh ? strtok(sh, " \t\n") : NULL; t && argc < 64; t = strtok(NULL, " \t\n"))
      argv[argc++] = t;
  } else {
    for (size_t i = skip; i < n && argc < 64; i++) {
      const char *a = ly_str(ly_item(d, cmd, i));
      if (a) argv[argc++] = a;
    }
  }
  lint_command(l, c, argv, argc);
}

static void ecs_container(lint_t *l, const char *file, yaml_document_t *d, yaml_node_t *cd) {
  yaml_node_t *name = ly_get(d, cd, "name");
  lint_unit_t *u = lint_unit(l, file, "ECS container", ly_str(name), ly_line(cd));
  u->ecs = 1;
  yaml_node_t *env = ly_get(d, cd, "environment");
  for (size_t i = 0; i < ly_len(env); i++) {
    yaml_node_t *e = ly_item(d, env, i);
    const char *n = ly_str(ly_get(d, e, "name")), *v = ly_str(ly_get(d, e, "value"));
    if (n && v) lint_env(l, u, n, v, ly_line(e));
  }
  yaml_node_t *st = ly_get(d, cd, "stopTimeout");
  long v;
  u->kill_name = "stopTimeout";
  u->kill_max_ms = 120000;
  if (st && ly_long(st, &v) == 0) {
    u->kill_ms = v * 1000;
    u->kill_line = ly_line(st);
  } else {
    u->kill_ms = 30000; /* ECS's default */
    u->kill_default = 1;
    u->kill_line = ly_line(cd);
  }
  yaml_node_t *hc = ly_get(d, cd, "healthCheck");
  if (hc && hc->type == YAML_MAPPING_NODE) {
    lint_check_t *c = lint_check(u, LINT_LIVE, "healthCheck", ly_line(hc));
    yaml_node_t *x;
    c->timeout_name = "healthCheck.timeout";
    c->timeout_ms = 5000; /* ECS's default */
    if ((x = ly_get(d, hc, "timeout")) && ly_long(x, &v) == 0) c->timeout_ms = v * 1000;
    c->start_name = "healthCheck.startPeriod";
    c->start_s = 0;
    if ((x = ly_get(d, hc, "startPeriod")) && ly_long(x, &v) == 0) c->start_s = v;
    c->period_name = "healthCheck.interval";
    c->period_s = 30;
    if ((x = ly_get(d, hc, "interval")) && ly_long(x, &v) == 0) c->period_s = v;
    c->threshold_name = "healthCheck.retries";
    c->threshold = 3;
    if ((x = ly_get(d, hc, "retries")) && ly_long(x, &v) == 0) c->threshold = v;
    command(l, c, d, ly_get(d, hc, "command"), 1);
  }
}

static void ecs(lint_t *l, const char *file, yaml_document_t *d, yaml_node_t *td) {
  yaml_node_t *cds = ly_get(d, td, "containerDefinitions");
  int any = 0;
  for (size_t i = 0; i < ly_len(cds); i++) any |= health_env(d, ly_item(d, cds, i));
  /* With HEALTH_* settings somewhere, the containers without any (a log
   * router, a proxy) are not libhealth's. */
  for (size_t i = 0; i < ly_len(cds); i++)
    if (!any || health_env(d, ly_item(d, cds, i))) ecs_container(l, file, d, ly_item(d, cds, i));
}

static const char *scalar(lint_t *l, yaml_node_t *n) { return lint_strdup(l, ly_str(n)); }

static void group(lint_t *l, const char *file, yaml_document_t *d, yaml_node_t *p, int line) {
  lint_grow((void **)&l->groups, &l->ngroups, sizeof *l->groups);
  l->ngroups--;
  lint_grow((void **)&l->group_files, &l->ngroups, sizeof *l->group_files);
  l->group_files[l->ngroups - 1] = file;
  lint_check_t *c = &l->groups[l->ngroups - 1];
  c->kind = LINT_READY;
  c->what = "target group";
  c->line = line;
  c->timeout_ms = c->tool_timeout_ms = -1;
  c->initial_s = c->start_s = -1;
  yaml_node_t *x;
  long v;
  c->path = "/"; /* the ALB's defaults */
  c->port = "traffic-port";
  c->period_s = 30;
  c->threshold = 2;
  c->matcher = "200";
  c->period_name = "HealthCheckIntervalSeconds";
  c->threshold_name = "UnhealthyThresholdCount";
  if ((x = ly_get(d, p, "HealthCheckPath")) && ly_str(x)) c->path = scalar(l, x);
  if ((x = ly_get(d, p, "HealthCheckPort")) && ly_str(x)) c->port = scalar(l, x);
  if ((x = ly_get(d, p, "Port")) && ly_str(x)) c->traffic_port = scalar(l, x);
  if ((x = ly_get(d, p, "HealthCheckIntervalSeconds")) && ly_long(x, &v) == 0) c->period_s = v;
  if ((x = ly_get(d, p, "UnhealthyThresholdCount")) && ly_long(x, &v) == 0) c->threshold = v;
  const char *proto = ly_str(ly_get(d, p, "HealthCheckProtocol"));
  if (proto && strcmp(proto, "TCP") == 0) c->tcp = 1;
  c->matcher_line = line;
  if ((x = ly_get(d, ly_get(d, p, "Matcher"), "HttpCode")) && ly_str(x)) {
    c->matcher = scalar(l, x);
    c->matcher_line = ly_line(x);
  }
}

int lint_aws(lint_t *l, const char *file, yaml_document_t *d, char *msg, size_t msglen) {
  (void)msg, (void)msglen;
  yaml_node_t *root = yaml_document_get_root_node(d), *x;
  if ((x = ly_get(d, root, "taskDefinition")) && ly_get(d, x, "containerDefinitions")) {
    ecs(l, file, d, x);
    return 1;
  }
  if (ly_get(d, root, "containerDefinitions")) {
    ecs(l, file, d, root);
    return 1;
  }
  if ((x = ly_get(d, root, "TargetGroups")) && x->type == YAML_SEQUENCE_NODE) {
    for (size_t i = 0; i < ly_len(x); i++)
      group(l, file, d, ly_item(d, x, i), ly_line(ly_item(d, x, i)));
    return 1;
  }
  if ((x = ly_get(d, root, "Attributes")) && x->type == YAML_SEQUENCE_NODE)
    return 1; /* nothing timed */
  yaml_node_t *res = ly_get(d, root, "Resources");
  if (!res || res->type != YAML_MAPPING_NODE) return 0;
  int found = 0;
  for (yaml_node_pair_t *p = res->data.mapping.pairs.start; p < res->data.mapping.pairs.top; p++) {
    yaml_node_t *r = yaml_document_get_node(d, p->value);
    const char *type = ly_str(ly_get(d, r, "Type"));
    if (type && strcmp(type, "AWS::ElasticLoadBalancingV2::TargetGroup") == 0) {
      group(l, file, d, ly_get(d, r, "Properties"), ly_line(r));
      found = 1;
    }
  }
  return found;
}
