/* health-lint: checks deployment files against libhealth's shutdown and health contract; exit 0
 * clean, 1 problems, 2 unreadable input. */
#include "lint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: health-lint [--format text|json] [--env NAME=VALUE]... [--hook MS]... FILE...\n"
    "Check ECS task definitions, ALB target groups, Kubernetes manifests, Compose\n"
    "files, Dockerfiles and systemd units against libhealth's timing budget.\n"
    "\n"
    "  --format text|json   one problem per line (default), or a JSON object\n"
    "  --env NAME=VALUE     a setting the files do not show (repeatable); a\n"
    "                       container's own environment comes first\n"
    "  --hook MS            a flush hook the service registers, with its timeout\n"
    "                       (0: HEALTH_HOOK_TIMEOUT_MS; repeatable; default: one\n"
    "                       hook of HEALTH_HOOK_TIMEOUT_MS)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 no problem, 1 problems, 2 usage error or a file that cannot\n"
    "be read or parsed.  Rules HL001-HL008: see health-lint(1).\n";

static int usage(const char *what, const char *arg) {
  fprintf(stderr, "health-lint: %s%s%s\n%s", what, arg ? ": " : "", arg ? arg : "", usage_text);
  return 2;
}

static int lint_one(lint_t *l, const char *file) {
  char msg[512], *data;
  size_t len;
  if (lint_read_file(file, &data, &len, msg, sizeof msg) < 0) {
    fprintf(stderr, "health-lint: %s\n", msg);
    return -1;
  }
  int rc;
  if (lint_is_systemd(data)) rc = lint_systemd(l, file, data, msg, sizeof msg);
  else if (lint_is_dockerfile(data)) rc = lint_dockerfile(l, file, data, msg, sizeof msg);
  else rc = lint_yaml(l, file, data, len, msg, sizeof msg);
  free(data);
  if (rc < 0) fprintf(stderr, "health-lint: %s\n", msg);
  return rc;
}

int main(int argc, char **argv) {
  lint_t l = {0};
  int json = 0, rc = 0;
  unsigned *hooks = NULL;
  size_t nhooks = 0, nfiles = 0;
  const char **files = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      goto out;
    }
    if (strcmp(a, "--") == 0) {
      while (++i < argc) {
        lint_grow((void **)&files, &nfiles, sizeof *files);
        files[nfiles - 1] = argv[i];
      }
      break;
    }
    if (strncmp(a, "--", 2) == 0 && (v = strchr(a, '='))) {
      a = lint_printf(&l, "%.*s", (int)(v - a), a);
      v++;
    } else if (strcmp(a, "--format") == 0 || strcmp(a, "--env") == 0 || strcmp(a, "--hook") == 0) {
      if (++i >= argc) {
        rc = usage("a value is missing after", a);
        goto out;
      }
      v = argv[i];
    }
    if (strcmp(a, "--format") == 0 && v) {
      if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
        rc = usage("--format must be text or json, not", v);
        goto out;
      }
      json = strcmp(v, "json") == 0;
    } else if (strcmp(a, "--env") == 0 && v) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v) {
        rc = usage("--env needs NAME=VALUE, not", v);
        goto out;
      }
      lint_grow((void **)&l.cli_env, &l.ncli, sizeof *l.cli_env);
      l.cli_env[l.ncli - 1] = (lint_var_t){lint_printf(&l, "%.*s", (int)(eq - v), v), eq + 1, 0};
    } else if (strcmp(a, "--hook") == 0 && v) {
      char *end;
      unsigned long ms = strtoul(v, &end, 10);
      if (!*v || *end || *v == '-' || ms > 600000) {
        rc = usage("--hook needs a timeout of 0-600000 ms, not", v);
        goto out;
      }
      lint_grow((void **)&hooks, &nhooks, sizeof *hooks);
      hooks[nhooks - 1] = (unsigned)ms;
    } else if (a[0] == '-' && a[1]) {
      rc = usage("unknown option", a);
      goto out;
    } else {
      lint_grow((void **)&files, &nfiles, sizeof *files);
      files[nfiles - 1] = a;
    }
  }
  if (!nfiles) {
    rc = usage("no FILE given", NULL);
    goto out;
  }
  if (!nhooks) {
    lint_grow((void **)&hooks, &nhooks, sizeof *hooks);
    hooks[0] = 0; /* one hook of HEALTH_HOOK_TIMEOUT_MS */
  }
  for (size_t i = 0; i < nfiles; i++)
    if (lint_one(&l, files[i]) < 0) rc = 2;
  if (rc == 0) {
    lint_rules(&l, hooks, nhooks);
    lint_print(&l, json);
    rc = l.nproblems ? 1 : 0;
  }
out:
  free(files);
  free(hooks);
  lint_free(&l);
  return rc;
}
