/*
 * health-lint: reading a file, and the YAML (and JSON: YAML 1.2 flow) ones
 * with libyaml, which gives every node its line.  Each document is handed
 * to the readers that know it by its content.
 */
#include "lint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (16u << 20)

int lint_read_file(const char *path, char **data, size_t *len, char *msg, size_t msglen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, msglen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  int rc = 0;
  while (buf) {
    if (n + 1 >= cap) {
      if (cap >= MAX_FILE) {
        snprintf(msg, msglen, "%s: larger than %u bytes", path, MAX_FILE);
        rc = -1;
        break;
      }
      char *b = realloc(buf, cap * 2);
      if (!b) break;
      buf = b;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) {
        snprintf(msg, msglen, "%s: cannot read: %s", path, strerror(errno));
        rc = -1;
      }
      break;
    }
  }
  fclose(f);
  if (!buf) {
    snprintf(msg, msglen, "%s: out of memory", path);
    return -1;
  }
  if (rc) {
    free(buf);
    return -1;
  }
  if (memchr(buf, '\0', n)) {
    snprintf(msg, msglen, "%s: a binary file (it holds NUL bytes)", path);
    free(buf);
    return -1;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

yaml_node_t *ly_get(yaml_document_t *d, yaml_node_t *map, const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    const char *k = ly_str(yaml_document_get_node(d, p->key));
    if (k && strcmp(k, key) == 0) return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

const char *ly_str(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int ly_line(yaml_node_t *n) { return n ? (int)n->start_mark.line + 1 : 0; }

int ly_long(yaml_node_t *n, long *out) {
  const char *s = ly_str(n);
  if (!s || !*s || strlen(s) > 9) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  *out = strtol(s, NULL, 10);
  return 0;
}

size_t ly_len(yaml_node_t *seq) {
  if (!seq || seq->type != YAML_SEQUENCE_NODE) return 0;
  return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

yaml_node_t *ly_item(yaml_document_t *d, yaml_node_t *seq, size_t i) {
  if (i >= ly_len(seq)) return NULL;
  return yaml_document_get_node(d, seq->data.sequence.items.start[i]);
}

/* libyaml's time grows with the square of the flow nesting (16000 levels:
 * 3.5 s, 200000: minutes); no deployment file nests 256 deep. */
#define MAX_NEST 256

int lint_too_deep(const char *data, const char *file, char *msg, size_t msglen) {
  long depth = 0;
  int line = 1;
  for (const char *p = data; *p; p++) {
    if (*p == '\n') line++;
    else if (*p == '[' || *p == '{') depth++;
    else if ((*p == ']' || *p == '}') && depth > 0) depth--;
    if (depth > MAX_NEST) {
      snprintf(msg, msglen, "%s:%d: nested deeper than %d levels", file, line, MAX_NEST);
      return 1;
    }
  }
  return 0;
}

int lint_yaml(lint_t *l, const char *file, const char *data, size_t len, char *msg, size_t msglen) {
  if (lint_too_deep(data, file, msg, msglen)) return -1;
  /* JSON strings cannot hold a raw tab, so in a JSON file every tab is
   * blank space; libyaml refuses tabs where YAML indents (a JSON file's
   * first and last lines), so they become spaces, which keeps the lines. */
  const char *s = data + strspn(data, " \t\r\n");
  char *copy = NULL;
  if (*s == '{' || *s == '[') {
    copy = malloc(len + 1);
    if (!copy) {
      snprintf(msg, msglen, "%s: out of memory", file);
      return -1;
    }
    for (size_t i = 0; i <= len; i++) copy[i] = data[i] == '\t' ? ' ' : data[i];
    data = copy;
  }
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    free(copy);
    snprintf(msg, msglen, "%s: out of memory", file);
    return -1;
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
  int rc = 0, known = 0, ndocs = 0;
  for (;;) {
    yaml_document_t d;
    if (!yaml_parser_load(&p, &d)) {
      yaml_mark_t m =
          p.problem_mark.line || p.problem_mark.column ? p.problem_mark : p.context_mark;
      snprintf(msg, msglen, "%s:%zu: not valid YAML or JSON: %s%s%s", file, m.line + 1,
               p.problem ? p.problem : "error", p.context ? " " : "", p.context ? p.context : "");
      rc = -1;
      break;
    }
    yaml_node_t *root = yaml_document_get_root_node(&d);
    if (!root) {
      yaml_document_delete(&d);
      break; /* the end of the stream */
    }
    ndocs++;
    if (root->type == YAML_MAPPING_NODE) {
      int r = lint_aws(l, file, &d, msg, msglen);
      if (r < 0) rc = -1;
      else if (r > 0) known = 1;
      else if (lint_k8s(l, file, &d) || lint_compose(l, file, &d)) known = 1;
      else if (ly_get(&d, root, "apiVersion") && ly_get(&d, root, "kind"))
        known = 1; /* a Service, a ConfigMap... */
    }
    yaml_document_delete(&d);
    if (rc) break;
  }
  yaml_parser_delete(&p);
  free(copy);
  if (!rc && !known) {
    snprintf(
        msg, msglen,
        "%s:1: not a deployment file health-lint knows (an ECS task definition, an ALB target group, Kubernetes manifests, a Compose file, a Dockerfile or a systemd unit)%s",
        file, ndocs ? "" : ": it is empty");
    rc = -1;
  }
  return rc;
}
