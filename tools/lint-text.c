/*
 * health-lint: the line-based formats (Dockerfile, systemd unit), durations,
 * and the HTTP client inside a health check's command.
 */
#include "lint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- commands ---- */

static const char *base(const char *s) {
  const char *b = strrchr(s, '/');
  return b ? b + 1 : s;
}

/* The value of an option spelled "-x V", "--long V", "--long=V" or "-xV". */
static const char *opt(const char *const *argv, size_t argc, size_t *i, const char *s,
                       const char *lng) {
  const char *a = argv[*i];
  size_t n = strlen(lng);
  if ((s && strcmp(a, s) == 0) || strcmp(a, lng) == 0) return *i + 1 < argc ? argv[++*i] : "";
  if (strncmp(a, lng, n) == 0 && a[n] == '=') return a + n + 1;
  if (s && strncmp(a, s, 2) == 0 && a[2] && a[1] != '-') return a + 2;
  return NULL;
}

void lint_command(lint_t *l, lint_check_t *c, const char *const *argv, size_t argc) {
  int tool = 0; /* 1 health-probe, 2 curl, 3 wget */
  for (size_t i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!tool) {
      if (strcmp(base(a), "health-probe") == 0) tool = 1;
      else if (strcmp(base(a), "curl") == 0) tool = 2;
      else if (strcmp(base(a), "wget") == 0) tool = 3;
      if (tool) {
        c->tool = tool == 1 ? "health-probe" : tool == 2 ? "curl" : "wget";
        c->tool_timeout_ms = tool == 1 ? 2000 : tool == 3 ? 900000 : -1; /* their defaults */
        c->tool_timeout_name = tool == 1 ? "--timeout" : tool == 2 ? "--max-time" : "--timeout";
      }
      continue;
    }
    if (strcmp(a, "&&") == 0 || strcmp(a, "||") == 0 || strcmp(a, ";") == 0 || strcmp(a, "|") == 0)
      break;
    if (tool == 1 && (v = opt(argv, argc, &i, "-t", "--timeout"))) {
      c->tool_timeout_ms = strtol(v, NULL, 10);
    } else if (tool == 2 && (v = opt(argv, argc, &i, "-m", "--max-time"))) {
      c->tool_timeout_ms = (long)(strtod(v, NULL) * 1000);
    } else if (tool == 3 && (v = opt(argv, argc, &i, "-T", "--timeout"))) {
      c->tool_timeout_ms = (long)(strtod(v, NULL) * 1000);
    } else if (!c->path && (strncmp(a, "http://", 7) == 0 || strncmp(a, "https://", 8) == 0)) {
      const char *h = strstr(a, "//") + 2;
      const char *slash = strchr(h, '/');
      size_t hl = slash ? (size_t)(slash - h) : strlen(h);
      const char *colon = h[0] == '[' ? NULL : memchr(h, ':', hl);
      const char *rb = h[0] == '[' ? memchr(h, ']', hl) : NULL;
      if (rb && rb[1] == ':') colon = rb + 1;
      if (colon) c->port = lint_printf(l, "%.*s", (int)(h + hl - colon - 1), colon + 1);
      else c->port = a[4] == 's' ? "443" : "80";
      char *path = lint_strdup(l, slash ? slash : "/");
      path[strcspn(path, "?#")] = '\0';
      c->path = path;
    }
  }
}

long lint_duration_ms(const char *s) {
  /* Compose and Docker: Go durations ("1m30s", "500ms"); a bare number is
   * seconds. */
  double total = 0;
  const char *p = s;
  if (!*p) return -1;
  while (*p) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || v < 0) return -1;
    p = end;
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz");
    double unit;
    if (n == 0 && !*p && p == end && total == 0) unit = 1000;
    else if (n == 1 && *p == 'h') unit = 3600000;
    else if (n == 1 && *p == 'm') unit = 60000;
    else if (n == 1 && *p == 's') unit = 1000;
    else if (n == 2 && strncmp(p, "ms", 2) == 0) unit = 1;
    else if (n == 2 && (strncmp(p, "us", 2) == 0 || strncmp(p, "ns", 2) == 0)) unit = 0;
    else return -1;
    total += v * unit;
    p += n;
  }
  return total > 1e12 ? -1 : (long)total;
}

/* systemd time spans: "90", "90s", "1min 30s", "infinity"; -2 infinity. */
static long systemd_span_ms(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  if (strcmp(s, "infinity") == 0) return -2;
  static const struct {
    const char *u;
    double ms;
  } units[] = {{"usec", 0.001},    {"us", 0.001},     {"msec", 1},     {"ms", 1},
               {"seconds", 1000},  {"second", 1000},  {"sec", 1000},   {"s", 1000},
               {"minutes", 60000}, {"minute", 60000}, {"min", 60000},  {"m", 60000},
               {"hours", 3600000}, {"hour", 3600000}, {"hr", 3600000}, {"h", 3600000}};
  double total = 0;
  int any = 0;
  while (*s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    s = end;
    while (*s == ' ') s++;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz");
    double unit = n ? -1 : 1000;
    for (size_t i = 0; n && i < sizeof units / sizeof units[0]; i++)
      if (strlen(units[i].u) == n && strncmp(s, units[i].u, n) == 0) unit = units[i].ms;
    if (unit < 0) return -1;
    total += v * unit;
    s += n;
    while (isspace((unsigned char)*s)) s++;
    any = 1;
  }
  return any && total < 1e12 ? (long)total : -1;
}

/* ---- line-based files ---- */

/* The first line that is neither blank nor a comment. */
static const char *first_line(const char *d, size_t *len) {
  while (*d) {
    const char *e = d + strcspn(d, "\n");
    const char *s = d + strspn(d, " \t\r");
    if (s < e && *s != '#' && *s != ';') {
      *len = (size_t)(e - s);
      while (*len && isspace((unsigned char)s[*len - 1])) (*len)--;
      return s;
    }
    d = *e ? e + 1 : e;
  }
  return NULL;
}

int lint_is_dockerfile(const char *data) {
  size_t n;
  const char *s = first_line(data, &n);
  return s && ((n > 5 && strncasecmp(s, "FROM", 4) == 0 && isblank((unsigned char)s[4])) ||
               (n > 4 && strncasecmp(s, "ARG", 3) == 0 && isblank((unsigned char)s[3])));
}

int lint_is_systemd(const char *data) {
  size_t n;
  const char *s = first_line(data, &n);
  if (!s || n < 3 || s[0] != '[' || s[n - 1] != ']') return 0;
  for (size_t i = 1; i + 1 < n; i++)
    if (!isalpha((unsigned char)s[i]) && s[i] != '-') return 0;
  return 1;
}

/* Logical lines: "\\" at the end continues; comment lines inside vanish. */
typedef struct {
  char *text;
  int line;
} logical_t;

static size_t logical_lines(lint_t *l, const char *data, logical_t **out, const char *comments) {
  size_t n = 0;
  logical_t *v = NULL;
  char *cur = NULL;
  size_t curlen = 0;
  int line = 0, start = 0;
  for (const char *d = data; *d;) {
    const char *e = d + strcspn(d, "\n");
    line++;
    const char *s = d + strspn(d, " \t\r");
    size_t len = (size_t)(e - s);
    while (len && (s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (!(len && strchr(comments, *s)) && (len || cur)) {
      int more = len && s[len - 1] == '\\';
      if (more) len--;
      char *nc = realloc(cur, curlen + len + 2);
      if (!nc) {
        free(cur);
        free(v);
        fputs("health-lint: out of memory\n", stderr);
        exit(2);
      }
      if (!cur) start = line;
      cur = nc;
      memcpy(cur + curlen, s, len);
      curlen += len;
      cur[curlen++] = ' ';
      cur[curlen] = '\0';
      if (!more) {
        lint_grow((void **)&v, &n, sizeof *v);
        while (curlen && cur[curlen - 1] == ' ') cur[--curlen] = '\0';
        v[n - 1] = (logical_t){lint_strdup(l, cur), start};
        free(cur);
        cur = NULL;
        curlen = 0;
      }
    }
    d = *e ? e + 1 : e;
  }
  if (cur) {
    lint_grow((void **)&v, &n, sizeof *v);
    v[n - 1] = (logical_t){lint_strdup(l, cur), start};
    free(cur);
  }
  *out = v;
  return n;
}

/* Words, with "..." and '...' quoting (no escapes beyond \"). */
static size_t words(char *s, char **w, size_t max) {
  size_t n = 0;
  while (*s && n < max) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) break;
    char *o = s;
    w[n++] = o;
    char q = 0;
    for (; *s && (q || !isspace((unsigned char)*s)); s++) {
      if (!q && (*s == '"' || *s == '\'')) q = *s;
      else if (q && *s == q) q = 0;
      else if (*s == '\\' && q == '"' && s[1]) *o++ = *++s;
      else *o++ = *s;
    }
    if (*s) s++;
    *o = '\0';
  }
  return n;
}

/* An exec form ["a", "b"]: JSON, read as YAML flow. */
static int exec_form(lint_t *l, const char *text, const char **argv, size_t *argc) {
  yaml_parser_t p;
  yaml_document_t d;
  int ok = 0;
  if (!yaml_parser_initialize(&p)) return -1;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
  if (yaml_parser_load(&p, &d)) {
    yaml_node_t *root = yaml_document_get_root_node(&d);
    if (root && root->type == YAML_SEQUENCE_NODE) {
      ok = 1;
      *argc = 0;
      for (size_t i = 0; i < ly_len(root) && *argc < 64; i++)
        if (ly_str(ly_item(&d, root, i)))
          argv[(*argc)++] = lint_strdup(l, ly_str(ly_item(&d, root, i)));
    }
    yaml_document_delete(&d);
  }
  yaml_parser_delete(&p);
  return ok ? 0 : -1;
}

int lint_dockerfile(lint_t *l, const char *file, const char *data, char *msg, size_t msglen) {
  logical_t *v;
  size_t n = logical_lines(l, data, &v, "#"), last = 0;
  for (size_t i = 0; i < n; i++)
    if (strncasecmp(v[i].text, "FROM", 4) == 0 && isblank((unsigned char)v[i].text[4])) last = i;
  /* Only the final stage's settings reach the running container. */
  lint_unit_t *u = lint_unit(l, file, "final stage", "", n ? v[last].line : 1);
  int rc = 0;
  for (size_t i = last; i < n && !rc; i++) {
    char *t = v[i].text, *w[64];
    size_t kw = strcspn(t, " \t");
    char *rest = t + kw + strspn(t + kw, " \t");
    if (kw == 3 && strncasecmp(t, "ENV", 3) == 0) {
      char *copy = lint_strdup(l, rest);
      size_t nw = words(copy, w, 64);
      if (nw >= 1 && !strchr(w[0], '=')) { /* ENV NAME value */
        const char *val = rest + strcspn(rest, " \t");
        lint_env(l, u, w[0], val + strspn(val, " \t"), v[i].line);
        continue;
      }
      for (size_t j = 0; j < nw; j++) {
        char *eq = strchr(w[j], '=');
        if (!eq) continue;
        *eq = '\0';
        lint_env(l, u, w[j], eq + 1, v[i].line);
      }
    } else if (kw == 10 && strncasecmp(t, "STOPSIGNAL", 10) == 0) {
      u->stop_signal = lint_strdup(l, rest);
      u->signal_name = "STOPSIGNAL";
      u->signal_line = v[i].line;
    } else if (kw == 11 && strncasecmp(t, "HEALTHCHECK", 11) == 0) {
      if (strncasecmp(rest, "NONE", 4) == 0) continue;
      lint_check_t *c = lint_check(u, LINT_LIVE, "HEALTHCHECK", v[i].line);
      c->timeout_ms = 30000; /* Docker's defaults */
      c->timeout_name = "HEALTHCHECK --timeout";
      c->start_s = 0;
      c->start_name = "HEALTHCHECK --start-period";
      while (strncmp(rest, "--", 2) == 0) {
        size_t ol = strcspn(rest, " \t");
        char *o = lint_printf(l, "%.*s", (int)ol, rest), *eq = strchr(o, '=');
        if (eq && strncmp(o, "--timeout=", 10) == 0) c->timeout_ms = lint_duration_ms(eq + 1);
        if (eq && strncmp(o, "--start-period=", 15) == 0)
          c->start_s = lint_duration_ms(eq + 1) / 1000;
        rest += ol + strspn(rest + ol, " \t");
      }
      if (strncasecmp(rest, "CMD", 3) != 0) {
        snprintf(msg, msglen, "%s:%d: HEALTHCHECK without CMD", file, v[i].line);
        rc = -1;
        break;
      }
      rest += 3 + strspn(rest + 3, " \t");
      const char *argv[64];
      size_t argc = 0;
      if (*rest == '[') {
        if (lint_too_deep(rest, file, msg, msglen)) {
          rc = -1;
          break;
        }
        if (exec_form(l, rest, argv, &argc) < 0) {
          snprintf(msg, msglen, "%s:%d: HEALTHCHECK CMD is not a JSON array of strings", file,
                   v[i].line);
          rc = -1;
          break;
        }
      } else {
        char *copy = lint_strdup(l, rest);
        argc = words(copy, w, 64);
        for (size_t j = 0; j < argc; j++) argv[j] = w[j];
      }
      lint_command(l, c, argv, argc);
    }
  }
  free(v);
  return rc;
}

int lint_systemd(lint_t *l, const char *file, const char *data, char *msg, size_t msglen) {
  (void)msg, (void)msglen;
  logical_t *v;
  size_t n = logical_lines(l, data, &v, "#;");
  lint_unit_t *u = lint_unit(l, file, "systemd service", base(file), 1);
  u->kill_name = "TimeoutStopSec";
  u->kill_ms = 90000; /* DefaultTimeoutStopSec */
  u->kill_default = 1;
  int service = 0;
  for (size_t i = 0; i < n; i++) {
    char *t = v[i].text;
    if (*t == '[') {
      service = strcmp(t, "[Service]") == 0;
      if (service) u->kill_line = u->line = v[i].line;
      continue;
    }
    if (!service) continue;
    char *eq = strchr(t, '=');
    if (!eq) continue;
    char *k = t, *val = eq + 1;
    while (eq > k && isspace((unsigned char)eq[-1])) eq--;
    *eq = '\0';
    val += strspn(val, " \t");
    if (strcmp(k, "Environment") == 0) {
      char *w[64];
      size_t nw = words(val, w, 64);
      for (size_t j = 0; j < nw; j++) {
        char *e = strchr(w[j], '=');
        if (!e) continue;
        *e = '\0';
        lint_env(l, u, w[j], e + 1, v[i].line);
      }
    } else if (strcmp(k, "TimeoutStopSec") == 0 || strcmp(k, "TimeoutSec") == 0) {
      if (strcmp(k, "TimeoutSec") == 0 && !u->kill_default &&
          strcmp(u->kill_name, "TimeoutStopSec") == 0)
        continue;
      long ms = systemd_span_ms(val);
      u->kill_name = strcmp(k, "TimeoutSec") == 0 ? "TimeoutSec" : "TimeoutStopSec";
      u->kill_ms = ms == -2 ? -1 : ms;
      u->kill_default = 0;
      u->kill_line = v[i].line;
    } else if (strcmp(k, "KillSignal") == 0) {
      u->stop_signal = lint_strdup(l, val);
      u->signal_name = "KillSignal";
      u->signal_line = v[i].line;
    }
  }
  free(v);
  return 0;
}
