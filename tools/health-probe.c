/* health-probe: exits 0 when URL answers an accepted status within the timeout, 1 otherwise; for
 * HEALTHCHECKs in images without curl. */
#include <health.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

static const char usage_text[] =
    "usage: health-probe [OPTIONS] URL\n"
    "GET URL (http://host[:port][/path][?query]); exit 0 if the answer's status is\n"
    "accepted, 1 otherwise (unhealthy, unreachable, too slow, or a usage error).\n"
    "\n"
    "  -t, --timeout MS       total time for everything: name lookup, connect,\n"
    "                         request and the whole answer (1-600000, default 2000)\n"
    "  -e, --expect LIST      accepted status codes: codes, ranges, classes, e.g.\n"
    "                         200-399 (as Kubernetes), 200,204, 2xx (default 200-299)\n"
    "  -H, --header 'N: V'    add a request header (repeatable); Host, User-Agent,\n"
    "                         Accept and Connection replace the defaults, 'N:' removes one\n"
    "  -q, --quiet            print nothing when the probe fails\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "\n"
    "A failure prints one line on stderr: the URL and why (\"HTTP 503 Service\n"
    "Unavailable (expected 200-299)\", \"timeout after 2000 ms (dns)\", ...).\n"
    "https:// is not supported: probe the plain health port.\n";

static int quiet;

/* Usage errors exit 1 too: Docker reserves 2 ("do not use this exit code"). */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...);
static int usage_error(const char *fmt, ...) {
  if (!quiet) {
    va_list ap;
    va_start(ap, fmt);
    fputs("health-probe: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (health-probe --help for usage)\n", stderr);
  }
  return 1;
}

/* The URL as it may be shown: user information (a password) is masked. */
static void shown_url(const char *url, char *out, size_t len) {
  const char *s = strstr(url, "://");
  const char *a = s ? s + 3 : url;
  size_t alen = strcspn(a, "/?#");
  const char *at = NULL;
  for (const char *p = a; p < a + alen; p++)
    if (*p == '@') at = p;
  if (at) snprintf(out, len, "%.*s***%s", (int)(a - url), url, at);
  else snprintf(out, len, "%s", url);
}

/* Matches --name, --name=VALUE and -x, -xVALUE; *val gets the value (from
 * the next argument when it is not attached).  1 matched, 0 not, -1 a
 * missing value. */
static int opt(int argc, char **argv, int *i, const char *shrt, const char *lng, const char **val) {
  const char *a = argv[*i];
  size_t ll = strlen(lng);
  const char *v = NULL;
  if (strncmp(a, lng, ll) == 0 && (a[ll] == 0 || a[ll] == '=')) {
    if (a[ll] == '=') v = a + ll + 1;
  } else if (shrt && strncmp(a, shrt, 2) == 0) {
    if (a[2]) v = a + 2;
  } else {
    return 0;
  }
  if (!v) {
    if (*i + 1 >= argc) return -1;
    v = argv[++*i];
  }
  *val = v;
  return 1;
}

int main(int argc, char **argv) {
  health_probe_options_t o;
  health_probe_options_init(&o);
  const char *headers[MAX_HEADERS + 1];
  int nh = 0, dashdash = 0;
  const char *url = NULL, *v;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) break;
    else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) quiet = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int m;
    if (dashdash || a[0] != '-' || a[1] == 0) {
      if (url) return usage_error("more than one URL: '%s'", a);
      url = a;
    } else if (strcmp(a, "--") == 0) {
      dashdash = 1;
    } else if ((m = opt(argc, argv, &i, "-t", "--timeout", &v))) {
      if (m < 0) return usage_error("%s needs a value in milliseconds", a);
      char *end;
      long t = strtol(v, &end, 10);
      if (!*v || *end || v[0] == '-' || v[0] == '+' || t < 1 || t > 600000)
        return usage_error("--timeout must be a number of milliseconds, 1-600000, not '%s'", v);
      o.timeout_ms = (unsigned)t;
    } else if ((m = opt(argc, argv, &i, "-e", "--expect", &v))) {
      if (m < 0) return usage_error("%s needs a list of status codes", a);
      o.expect = v;
    } else if ((m = opt(argc, argv, &i, "-H", "--header", &v))) {
      if (m < 0) return usage_error("%s needs 'Name: value'", a);
      if (nh == MAX_HEADERS) return usage_error("more than %d headers", MAX_HEADERS);
      headers[nh++] = v;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      quiet = 1;
    } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      printf("health-probe (libhealth) %s\n", HEALTH_VERSION_STRING);
      return 0;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else {
      return usage_error("unknown option '%s'", a);
    }
  }
  if (!url) return usage_error("%s", "no URL given");
  headers[nh] = NULL;
  o.headers = headers;
  char reason[320];
  int rc = health_probe_with(url, &o, reason, sizeof reason);
  if (rc != 0 && !quiet) {
    char shown[320];
    shown_url(url, shown, sizeof shown);
    fprintf(stderr, "health-probe: %s: %s\n", shown, reason);
  }
  return rc != 0;
}
