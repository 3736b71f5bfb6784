/*
 * health-lint's private header: what the readers (lint-aws.c, lint-k8s.c,
 * lint-text.c) take out of a deployment file, and what the rules
 * (lint-rules.c) check it against.  The readers only collect settings with
 * their names and lines; every judgement is in lint-rules.c.
 */
#ifndef HEALTH_LINT_H
#define HEALTH_LINT_H

#include <stddef.h>
#include <yaml.h>

/* A setting as the file spells it: NAME=VALUE at LINE (0: no line). */
typedef struct {
  const char *name, *value;
  int line;
} lint_var_t;

enum { LINT_LIVE, LINT_READY, LINT_STARTUP };

/* One health check of a container or a target group. */
typedef struct {
  int kind;         /* LINT_LIVE, LINT_READY or LINT_STARTUP */
  const char *what; /* its name in the file: livenessProbe, healthCheck, HEALTHCHECK... */
  int line;
  const char *path; /* the HTTP path it asks, NULL when unknown */
  const char *port; /* a number, a named port or traffic-port; NULL when unknown */
  int tcp;          /* a TCP-only check: sees no HTTP status */
  long timeout_ms;  /* the check's own timeout, -1 when it has none */
  const char *timeout_name;
  long period_s, threshold, initial_s, start_s; /* -1: not given (the rules apply defaults) */
  const char *period_name, *threshold_name, *start_name;
  /* An HTTP client inside the check's command: health-probe, curl, wget. */
  const char *tool;     /* NULL: no HTTP client found */
  long tool_timeout_ms; /* -1: the client has no timeout */
  const char *tool_timeout_name;
  /* Target groups: the accepted status codes, the traffic port. */
  const char *matcher, *traffic_port;
  int matcher_line;
} lint_check_t;

/* One process that links libhealth: an ECS container, a Kubernetes
 * container, a Compose service, a Dockerfile's final stage, a systemd
 * service. */
typedef struct {
  const char *file, *kind, *name;
  int line;
  int ecs; /* the target groups read with it apply to it */
  lint_var_t *env;
  size_t nenv;
  lint_var_t *ports; /* Kubernetes named ports: name=containerPort */
  size_t nports;
  lint_check_t *checks;
  size_t nchecks;
  /* The kill: SIGKILL at kill_ms after the stop signal (-1: unknown). */
  long kill_ms;
  const char *kill_name;
  int kill_line, kill_default;
  long kill_max_ms; /* the platform's cap (ECS: 120 s), 0: none */
  long prestop_ms;  /* Kubernetes preStop time taken from the grace period */
  int prestop_line;
  const char *stop_signal; /* NULL: SIGTERM */
  const char *signal_name;
  int signal_line;
} lint_unit_t;

typedef struct {
  const char *file;
  int line;
  const char *rule;
  char *message;
} lint_problem_t;

typedef struct {
  lint_unit_t *units;
  size_t nunits;
  lint_check_t *groups; /* ALB target groups' health checks (LINT_READY) */
  const char **group_files;
  size_t ngroups;
  lint_var_t *cli_env; /* --env NAME=VALUE */
  size_t ncli;
  lint_problem_t *problems;
  size_t nproblems;
  void **arena; /* every string the readers keep, freed at the end */
  size_t narena;
} lint_t;

/* lint-out.c */
void *lint_alloc(lint_t *l, size_t n); /* zeroed, owned by the arena; exits on ENOMEM */
char *lint_strdup(lint_t *l, const char *s);
char *lint_printf(lint_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lint_grow(void **array, size_t *n, size_t size); /* one more zeroed element */
void lint_problem(lint_t *l, const char *file, int line, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void lint_print(const lint_t *l, int json);
void lint_free(lint_t *l);
lint_unit_t *lint_unit(lint_t *l, const char *file, const char *kind, const char *name, int line);
lint_check_t *lint_check(lint_unit_t *u, int kind, const char *what, int line);
void lint_env(lint_t *l, lint_unit_t *u, const char *name, const char *value, int line);

/* lint-yaml.c: a read error is -1 with `msg` naming the line. */
int lint_read_file(const char *path, char **data, size_t *len, char *msg, size_t msglen);
/* 1 (and `msg`) when brackets nest deeper than libyaml reads in good time. */
int lint_too_deep(const char *data, const char *file, char *msg, size_t msglen);
int lint_yaml(lint_t *l, const char *file, const char *data, size_t len, char *msg, size_t msglen);
yaml_node_t *ly_get(yaml_document_t *d, yaml_node_t *map, const char *key);
const char *ly_str(yaml_node_t *n); /* a scalar's text, NULL otherwise */
int ly_line(yaml_node_t *n);
int ly_long(yaml_node_t *n, long *out); /* a whole number scalar: 0, else -1 */
size_t ly_len(yaml_node_t *seq);
yaml_node_t *ly_item(yaml_document_t *d, yaml_node_t *seq, size_t i);

/* lint-aws.c: 1 when the document was an ECS or ALB one. */
int lint_aws(lint_t *l, const char *file, yaml_document_t *d, char *msg, size_t msglen);
/* lint-k8s.c: Kubernetes workloads and Compose files. */
int lint_k8s(lint_t *l, const char *file, yaml_document_t *d);
int lint_compose(lint_t *l, const char *file, yaml_document_t *d);

/* lint-text.c: Dockerfiles, systemd units and health check commands. */
int lint_is_dockerfile(const char *data);
int lint_is_systemd(const char *data);
int lint_dockerfile(lint_t *l, const char *file, const char *data, char *msg, size_t msglen);
int lint_systemd(lint_t *l, const char *file, const char *data, char *msg, size_t msglen);
/* Finds an HTTP client and its URL in argv (an exec form, or one shell
 * string split on blanks) and fills the check's path, port and tool. */
void lint_command(lint_t *l, lint_check_t *c, const char *const *argv, size_t argc);
/* "1m30s", "10s", "500ms" (Compose, Docker); -1 when malformed. */
long lint_duration_ms(const char *s);

/* lint-rules.c: the eight rules over everything read. */
void lint_rules(lint_t *l, const unsigned *hooks, size_t nhooks);

#endif
