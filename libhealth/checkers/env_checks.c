/*
 * Checks configured from the environment, so an operator adds one in a
 * task definition without recompiling:
 *
 *   HEALTH_CHECK_<NAME>=<target>            the scheme picks the checker
 *   HEALTH_CHECK_<NAME>_<OPTION>=<value>    its options
 *
 * All or nothing: everything is parsed first, then registered; a failure
 * half-way removes what this call added.  Messages name the variable and
 * never quote a target (it may be a URL with a password in it).
 */
#include "health_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 128 /* HEALTH_CHECK_ + a 64-character name + the longest option */
#define PREFIX "HEALTH_CHECK_"
#define PREFIX_LEN 13
#define MAX_VARS 256

enum {
  K_TCP = 1,
  K_HTTP = 2,
  K_DISK = 4,
  K_MEMORY = 8,
  K_FDS = 16,
  K_PG = 32,
  K_REDIS = 64,
  K_ALL = 127,
  K_TLS = K_HTTP | K_REDIS,
  K_LEVEL = K_DISK | K_MEMORY | K_FDS
};

/* A table, a few entries per line. */
/* clang-format off */
static const struct {
  const char *scheme;
  int kind;
  const char *word;
} schemes[] = {
    {"tcp://", K_TCP, "tcp"}, {"http://", K_HTTP, "http"}, {"https://", K_HTTP, "https"},
    {"disk:", K_DISK, "disk"}, {"memory:", K_MEMORY, "memory"}, {"fds:", K_FDS, "fds"},
    {"postgresql://", K_PG, "postgresql"}, {"postgres://", K_PG, "postgresql"},
    {"redis://", K_REDIS, "redis"}, {"rediss://", K_REDIS, "redis"},
};
/* clang-format on */

/* A table, a few entries per line.  Longer names first: "INODES_WARN" must win
 * over "WARN". */
/* clang-format off */
static const struct {
  const char *name;
  int kinds;
} options[] = {
    {"INSECURE_SKIP_VERIFY", K_TLS}, {"FAILURE_THRESHOLD", K_ALL}, {"SUCCESS_THRESHOLD", K_ALL},
    {"REQUIRE_WRITABLE", K_PG}, {"REQUIRE_MASTER", K_REDIS}, {"MAX_REDIRECTS", K_HTTP},
    {"INODES_WARN", K_DISK}, {"INODES_FAIL", K_DISK}, {"WRITE_PROBE", K_DISK},
    {"SERVER_NAME", K_TLS}, {"INTERVAL_MS", K_ALL}, {"TIMEOUT_MS", K_ALL}, {"CGROUP_DIR", K_MEMORY},
    {"READINESS", K_ALL}, {"CERT_FILE", K_TLS}, {"KEY_FILE", K_TLS}, {"LIVENESS", K_ALL},
    {"CRITICAL", K_ALL}, {"OOM_KILL", K_MEMORY}, {"CA_FILE", K_TLS}, {"CA_DIR", K_TLS},
    {"METHOD", K_HTTP}, {"STATUS", K_HTTP}, {"EXPECT", K_HTTP}, {"QUERY", K_PG}, {"WARN", K_LEVEL},
    {"FAIL", K_LEVEL},
};
/* clang-format on */
#define NOPTIONS (sizeof options / sizeof options[0])

typedef struct var {
  char env[KEY_MAX]; /* "HEALTH_CHECK_X" */
  size_t keylen;     /* its length */
  const char *rest;  /* "X..." (in env) */
  size_t restlen;
  const char *value;
  int owner;  /* index of the target var this option belongs to, -1: a target */
  int option; /* index into options[] */
} var_t;

typedef struct spec {
  int var; /* its target variable */
  int kind;
  char name[HEALTH__NAME_MAX + 1];
  health_check_options_t co;
  health_http_options_t http;
  health_disk_options_t disk;
  health_memory_options_t mem;
  health_fds_options_t fds;
  health_postgres_options_t pg;
  health_redis_options_t redis;
  int liveness, readiness, levels_given;
} spec_t;

static const char *kind_word(int kind) {
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (schemes[i].kind == kind) return schemes[i].word;
  return "?";
}

static void kinds_list(int kinds, char *buf, size_t len) {
  buf[0] = 0;
  for (int k = 1; k <= K_REDIS; k <<= 1)
    if (kinds & k)
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "", kind_word(k));
}

/* ---- one option ---- */

static int bad(health_error_t *err, const var_t *v, const char *want) {
  return health__err(err, HEALTH_EINVAL, "%.*s='%.60s' %s", (int)v->keylen, v->env, v->value, want);
}

static int apply(spec_t *sp, const var_t *v, health_error_t *err) {
  const char *o = options[v->option].name, *val = v->value;
  unsigned u;
  int b;
  double d;
  health_check_options_t *co = &sp->co;
  int tls_redis = sp->kind == K_REDIS;
  if (!(options[v->option].kinds & sp->kind)) {
    char list[96];
    kinds_list(options[v->option].kinds, list, sizeof list);
    return health__err(err, HEALTH_EINVAL, "%.*s: option %s does not apply to a %s check (only %s)",
                       (int)v->keylen, v->env, o, kind_word(sp->kind), list);
  }
  if (!strcmp(o, "TIMEOUT_MS")) {
    if (health__env_uint(val, 1, 600000, &u))
      return bad(err, v, "is not a whole number from 1 to 600000");
    co->timeout_ms = u;
  } else if (!strcmp(o, "INTERVAL_MS")) {
    if (health__env_uint(val, 10, 86400000, &u))
      return bad(err, v, "is not a whole number from 10 to 86400000");
    co->interval_ms = u;
  } else if (!strcmp(o, "FAILURE_THRESHOLD") || !strcmp(o, "SUCCESS_THRESHOLD")) {
    if (health__env_uint(val, 1, 100, &u))
      return bad(err, v, "is not a whole number from 1 to 100");
    if (o[0] == 'F') co->failure_threshold = u;
    else co->success_threshold = u;
  } else if (!strcmp(o, "CRITICAL") || !strcmp(o, "LIVENESS") || !strcmp(o, "READINESS") ||
             !strcmp(o, "INSECURE_SKIP_VERIFY") || !strcmp(o, "WRITE_PROBE") ||
             !strcmp(o, "REQUIRE_WRITABLE") || !strcmp(o, "REQUIRE_MASTER")) {
    if (health__env_bool(val, &b)) return bad(err, v, "must be 1/0, true/false, yes/no or on/off");
    if (!strcmp(o, "CRITICAL")) co->critical = b;
    else if (!strcmp(o, "LIVENESS")) sp->liveness = b;
    else if (!strcmp(o, "READINESS")) sp->readiness = b;
    else if (!strcmp(o, "WRITE_PROBE")) sp->disk.write_probe = b;
    else if (!strcmp(o, "REQUIRE_WRITABLE")) sp->pg.require_writable = b;
    else if (!strcmp(o, "REQUIRE_MASTER")) sp->redis.require_master = b;
    else if (tls_redis) sp->redis.insecure_skip_verify = b;
    else sp->http.insecure_skip_verify = b;
  } else if (!strcmp(o, "CA_FILE")) {
    *(tls_redis ? &sp->redis.ca_file : &sp->http.ca_file) = val;
  } else if (!strcmp(o, "CA_DIR")) {
    *(tls_redis ? &sp->redis.ca_dir : &sp->http.ca_dir) = val;
  } else if (!strcmp(o, "CERT_FILE")) {
    *(tls_redis ? &sp->redis.cert_file : &sp->http.cert_file) = val;
  } else if (!strcmp(o, "KEY_FILE")) {
    *(tls_redis ? &sp->redis.key_file : &sp->http.key_file) = val;
  } else if (!strcmp(o, "SERVER_NAME")) {
    *(tls_redis ? &sp->redis.tls_server_name : &sp->http.tls_server_name) = val;
  } else if (!strcmp(o, "METHOD")) {
    if (strcasecmp(val, "GET") && strcasecmp(val, "HEAD"))
      return bad(err, v, "must be GET or HEAD");
    sp->http.method = val;
  } else if (!strcmp(o, "STATUS")) {
    unsigned lo, hi;
    char a[8], z[8];
    size_t n = strlen(val);
    if (n == 3 && val[0] >= '1' && val[0] <= '5' && (val[1] == 'x' || val[1] == 'X') &&
        (val[2] == 'x' || val[2] == 'X')) {
      lo = (unsigned)(val[0] - '0') * 100;
      hi = lo + 99;
    } else {
      const char *dash = strchr(val, '-');
      size_t al = dash ? (size_t)(dash - val) : n;
      if (al >= sizeof a || (dash && strlen(dash + 1) >= sizeof z))
        return bad(err, v, "must be a status (200), a range (200-399) or a class (2xx)");
      memcpy(a, val, al);
      a[al] = 0;
      snprintf(z, sizeof z, "%s", dash ? dash + 1 : a);
      if (health__env_uint(a, 100, 599, &lo) || health__env_uint(z, 100, 599, &hi) || lo > hi)
        return bad(err, v, "must be a status (200), a range (200-399) or a class (2xx)");
    }
    sp->http.status_min = lo;
    sp->http.status_max = hi;
  } else if (!strcmp(o, "EXPECT")) {
    sp->http.expect = val;
  } else if (!strcmp(o, "MAX_REDIRECTS")) {
    if (health__env_uint(val, 0, 10, &u)) return bad(err, v, "is not a whole number from 0 to 10");
    sp->http.max_redirects = u;
  } else if (!strcmp(o, "WARN") || !strcmp(o, "FAIL")) {
    int warn = o[0] == 'W';
    if (!sp->levels_given) { /* given levels replace both defaults */
      sp->levels_given = 1;
      sp->disk.warn_free_percent = sp->disk.fail_free_percent = 0;
      sp->mem.warn_percent = sp->mem.fail_percent = 0;
      sp->fds.warn_percent = sp->fds.fail_percent = 0;
    }
    if (sp->kind == K_DISK) {
      uint64_t by = 0;
      int is_pct;
      if (health__env_amount(val, &d, &by, &is_pct))
        return bad(
            err, v,
            "must be a percentage of free space (10%) or a free size: bytes (1048576) or a number "
            "and one of K, M, G, T, powers of 1024 (500M, 1.5G; not GB, GiB or lower case)");
      if (is_pct) *(warn ? &sp->disk.warn_free_percent : &sp->disk.fail_free_percent) = d;
      else *(warn ? &sp->disk.warn_free_bytes : &sp->disk.fail_free_bytes) = by;
    } else {
      if (health__env_percent(val, &d))
        return bad(err, v, "must be a percentage from 0 to 100 (85 or 85%)");
      if (sp->kind == K_MEMORY) *(warn ? &sp->mem.warn_percent : &sp->mem.fail_percent) = d;
      else *(warn ? &sp->fds.warn_percent : &sp->fds.fail_percent) = d;
    }
  } else if (!strcmp(o, "INODES_WARN") || !strcmp(o, "INODES_FAIL")) {
    if (health__env_percent(val, &d))
      return bad(err, v, "must be a percentage of free inodes from 0 to 100 (10%)");
    *(o[7] == 'W' ? &sp->disk.warn_free_inodes_percent : &sp->disk.fail_free_inodes_percent) = d;
  } else if (!strcmp(o, "CGROUP_DIR")) {
    sp->mem.cgroup_dir = val;
  } else if (!strcmp(o, "OOM_KILL")) {
    if (!strcasecmp(val, "warn")) sp->mem.oom_kill = HEALTH_WARN;
    else if (!strcasecmp(val, "fail")) sp->mem.oom_kill = HEALTH_FAIL;
    else if (!strcasecmp(val, "ignore")) sp->mem.oom_kill = HEALTH_PASS;
    else return bad(err, v, "must be warn, fail or ignore");
  } else if (!strcmp(o, "QUERY")) {
    sp->pg.query = val;
  }
  return 0;
}

/* ---- finding the variables ---- */

static int find_target(const var_t *vars, size_t n, const char *rest, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (vars[i].restlen == len && strncmp(vars[i].rest, rest, len) == 0) return (int)i;
  return -1;
}

/* `names` as environ ("NAME" or "NAME=VALUE"); values from `lookup`. */
static int collect(var_t *vars, size_t *count, health__lookup_fn lookup, void *arg,
                   const char *const *names, health_error_t *err) {
  size_t n = 0;
  for (const char *const *e = names; e && *e; e++) {
    const char *s = *e;
    size_t keylen = strcspn(s, "=");
    if (strncmp(s, PREFIX, PREFIX_LEN) != 0) continue;
    if (keylen >= KEY_MAX)
      return health__err(err, HEALTH_EINVAL, "%.*s...: a variable name has at most %d characters",
                         KEY_MAX - 1, s, KEY_MAX - 1);
    if (n == MAX_VARS)
      return health__err(err, HEALTH_EINVAL, "more than %d HEALTH_CHECK_* variables", MAX_VARS);
    memcpy(vars[n].env, s, keylen);
    vars[n].env[keylen] = 0;
    s = vars[n].env;
    const char *value = lookup(s, arg);
    if (!value || !*value) continue;
    int dup = 0; /* a name given twice (a lint's file and --env) counts once */
    for (size_t i = 0; i < n && !dup; i++) dup = strcmp(vars[i].env, s) == 0;
    if (dup) continue;
    const char *rest = s + PREFIX_LEN;
    size_t restlen = keylen - PREFIX_LEN;
    /* The handle's defaults (health_options_from_env()), not checks. */
    if ((restlen == 11 && !strncmp(rest, "INTERVAL_MS", 11)) ||
        (restlen == 10 && !strncmp(rest, "TIMEOUT_MS", 10)))
      continue;
    if (restlen == 0 || rest[0] == '_' || rest[restlen - 1] == '_')
      return health__err(err, HEALTH_EINVAL, "%.*s: expected HEALTH_CHECK_<NAME>", (int)keylen, s);
    for (size_t i = 0; i < restlen; i++)
      if (!((rest[i] >= 'A' && rest[i] <= 'Z') || (rest[i] >= '0' && rest[i] <= '9') ||
            rest[i] == '_'))
        return health__err(
            err, HEALTH_EINVAL,
            "%.*s: the name after HEALTH_CHECK_ must be upper-case letters, digits and '_'",
            (int)keylen, s);
    vars[n].keylen = keylen;
    vars[n].rest = rest;
    vars[n].restlen = restlen;
    vars[n].value = value;
    vars[n].owner = -1;
    vars[n].option = -1;
    n++;
  }
  /* An option is HEALTH_CHECK_<P>_<OPTION> where HEALTH_CHECK_<P> is set. */
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < NOPTIONS && vars[i].owner < 0; k++) {
      size_t ol = strlen(options[k].name);
      if (vars[i].restlen < ol + 2) continue;
      const char *tail = vars[i].rest + vars[i].restlen - ol;
      if (tail[-1] != '_' || strncmp(tail, options[k].name, ol) != 0) continue;
      int t = find_target(vars, n, vars[i].rest, vars[i].restlen - ol - 1);
      if (t < 0) continue;
      vars[i].owner = t;
      vars[i].option = (int)k;
    }
  for (size_t i = 0; i < n; i++)
    if (vars[i].owner >= 0 && vars[vars[i].owner].owner >= 0)
      return health__err(err, HEALTH_EINVAL, "%.*s: %.*s is an option, not a check",
                         (int)vars[i].keylen, vars[i].env, (int)vars[vars[i].owner].keylen,
                         vars[vars[i].owner].env);
  *count = n;
  return 0;
}

static int scheme_of(const var_t *v) {
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strncasecmp(v->value, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
      return schemes[i].kind;
  return 0;
}

/* Why a target has no known scheme; hints at a misspelt option. */
static int unknown_scheme(const var_t *vars, size_t n, const var_t *v, health_error_t *err) {
  for (size_t len = v->restlen; len-- > 1;) {
    if (v->rest[len] != '_') continue;
    int t = find_target(vars, n, v->rest, len);
    if (t >= 0 && vars[t].owner < 0)
      return health__err(err, HEALTH_EINVAL,
                         "%.*s: unknown option %.*s for check %.*s, and not a check target "
                         "(expected tcp://, http://, https://, disk:, memory:, fds:, "
                         "postgresql://, redis:// or rediss://)",
                         (int)v->keylen, v->env, (int)(v->restlen - len - 1), v->rest + len + 1,
                         (int)len, v->rest);
  }
  return health__err(err, HEALTH_EINVAL,
                     "%.*s: unknown check target (expected tcp://host:port, http://..., "
                     "https://..., disk:/path, memory:, fds:, postgresql://..., redis://... "
                     "or rediss://...)",
                     (int)v->keylen, v->env);
}

/* ---- registration ---- */

static int add_one(health_t *h, spec_t *sp, const var_t *v, health_error_t *err) {
  const char *t = v->value;
  switch (sp->kind) {
    case K_TCP: return health_tcp_add(h, sp->name, t, &sp->co, err);
    case K_HTTP: return health_http_add(h, sp->name, t, &sp->http, &sp->co, err);
    case K_DISK: return health_disk_add(h, sp->name, t + 5, &sp->disk, &sp->co, err);
    case K_MEMORY: return health_memory_add(h, sp->name, &sp->mem, &sp->co, err);
    case K_FDS: return health_fds_add(h, sp->name, &sp->fds, &sp->co, err);
    case K_PG: return health_postgres_add(h, sp->name, t, &sp->pg, &sp->co, err);
    default: return health_redis_add(h, sp->name, t, &sp->redis, &sp->co, err);
  }
}

struct health__checks_env {
  var_t *vars;
  spec_t *specs;
  size_t nspecs;
};

void health__checks_env_free(health__checks_env_t *ce) {
  if (!ce) return;
  free(ce->specs);
  free(ce->vars);
  free(ce);
}

int health__checks_env_parse(health__lookup_fn lookup, void *arg, const char *const *names,
                             health__checks_env_t **out, health_error_t *err) {
  int rc;
  *out = NULL;
  health__checks_env_t *ce = calloc(1, sizeof *ce);
  if (!ce || !(ce->vars = calloc(MAX_VARS, sizeof *ce->vars)) ||
      !(ce->specs = calloc(MAX_VARS, sizeof *ce->specs))) {
    health__checks_env_free(ce);
    return health__err(err, HEALTH_ENOMEM, "out of memory");
  }
  var_t *vars = ce->vars;
  size_t n = 0;
  if ((rc = collect(vars, &n, lookup, arg, names, err)) != 0) goto out;
  /* Parse everything before registering anything. */
  for (size_t i = 0; i < n; i++) {
    const var_t *v = &vars[i];
    if (v->owner >= 0) continue;
    spec_t *sp = &ce->specs[ce->nspecs++];
    sp->var = (int)i;
    if (!(sp->kind = scheme_of(v))) {
      rc = unknown_scheme(vars, n, v, err);
      goto out;
    }
    if (v->restlen > HEALTH__NAME_MAX) {
      rc = health__err(err, HEALTH_EINVAL, "%.*s: a check name has at most %d characters",
                       (int)v->keylen, v->env, HEALTH__NAME_MAX);
      goto out;
    }
    for (size_t k = 0; k < v->restlen; k++)
      sp->name[k] = (char)(v->rest[k] >= 'A' && v->rest[k] <= 'Z' ? v->rest[k] + 32 : v->rest[k]);
    if (sp->kind == K_DISK && v->value[5] != '/') {
      rc = health__err(err, HEALTH_EINVAL, "%.*s: expected disk:/absolute/path", (int)v->keylen,
                       v->env);
      goto out;
    }
    if ((sp->kind == K_MEMORY && v->value[7]) || (sp->kind == K_FDS && v->value[4])) {
      rc = health__err(err, HEALTH_EINVAL, "%.*s: expected just '%s' (options go in %.*s_*)",
                       (int)v->keylen, v->env,
                       sp->kind == K_MEMORY ? "memory:" : "fds:", (int)v->keylen, v->env);
      goto out;
    }
    health_check_options_init(&sp->co);
    health_http_options_init(&sp->http);
    health_disk_options_init(&sp->disk);
    health_memory_options_init(&sp->mem);
    health_fds_options_init(&sp->fds);
    health_postgres_options_init(&sp->pg);
    health_redis_options_init(&sp->redis);
    sp->readiness = 1;
    for (size_t j = 0; j < n; j++)
      if (vars[j].owner == (int)i && (rc = apply(sp, &vars[j], err)) != 0) goto out;
    sp->co.endpoints =
        (sp->readiness ? HEALTH_READINESS : 0) | (sp->liveness ? HEALTH_LIVENESS : 0);
    if (!sp->co.endpoints) {
      rc = health__err(err, HEALTH_EINVAL, "%.*s: with _READINESS=0 the check needs _LIVENESS=1",
                       (int)v->keylen, v->env);
      goto out;
    }
  }
  *out = ce;
  return 0;
out:
  health__checks_env_free(ce);
  return rc;
}

int health__checks_env_add(health_t *h, health__checks_env_t *ce, unsigned *added,
                           health_error_t *err) {
  size_t before = health__checks_count(h);
  if (added) *added = 0;
  for (size_t i = 0; i < ce->nspecs; i++) {
    const var_t *v = &ce->vars[ce->specs[i].var];
    health_error_t e;
    int rc = add_one(h, &ce->specs[i], v, &e);
    if (rc != 0) {
      health__checks_truncate(h, before);
      return health__err(err, rc, "%.*s: %s", (int)v->keylen, v->env, e.text);
    }
  }
  for (size_t i = 0; i < ce->nspecs; i++)
    health__log(h, HEALTH_LOG_INFO, "check_from_env", "check", ce->specs[i].name, "checker",
                kind_word(ce->specs[i].kind), NULL);
  if (added) *added = (unsigned)ce->nspecs;
  return 0;
}
