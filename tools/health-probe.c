/* health-probe: exits 0 when URL answers 2xx within the timeout, 1 otherwise; for HEALTHCHECKs in images without curl. */
#include <health.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fputs("usage: health-probe [--timeout MS] URL\n"
        "  GET URL (http://host[:port]/path); exit 0 on 2xx, 1 otherwise.\n"
        "  --timeout MS  total time allowed, 1-600000 (default 2000)\n", stderr);
  return 2;
}

int main(int argc, char **argv) {
  unsigned timeout = 2000;
  const char *url = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "-t") == 0) {
      if (++i >= argc) return usage();
      char *end;
      long v = strtol(argv[i], &end, 10);
      if (!*argv[i] || *end || v < 1 || v > 600000) {
        fprintf(stderr, "health-probe: --timeout must be 1-600000 ms\n");
        return 2;
      }
      timeout = (unsigned)v;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage();
      return 0;
    } else if (!url && argv[i][0] != '-') {
      url = argv[i];
    } else {
      return usage();
    }
  }
  if (!url) return usage();
  char reason[256];
  int rc = health_probe(url, timeout, reason, sizeof reason);
  if (rc != 0) fprintf(stderr, "health-probe: %s: %s\n", url, reason);
  return rc;
}
