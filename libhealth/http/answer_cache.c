/*
 * The answers beyond /health and /ready's defaults: /metrics, the per-check
 * view (/ready?check=NAME), configurable paths, and health_answer_render() for an
 * application that serves them on its own port.
 *
 * One cache serves both the health port and health_answer_render(): each answer
 * is a reference-counted snapshot rendered once per state version (and
 * again when a result goes stale or, for metrics, when the in-flight count
 * moved).  The health port hands libmicrohttpd a response made once from
 * the snapshot (its free callback drops the reference); health_answer_render()
 * hands out a reference.  A request whose answer is cached takes the cache
 * lock, bumps a count and allocates nothing.
 */
#include "http/obs.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_JSON "application/health+json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_OM "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* ---- snapshots ---- */

void health__snap_release(health__snap_t *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) free(s);
}

static void snap_free_cb(void *body) {
  health__snap_release((health__snap_t *)((char *)body - offsetof(health__snap_t, body)));
}

/* Start a buffer whose first bytes are the snapshot header, so the
 * rendered body becomes the snapshot without a copy.  `reuse` (may be
 * NULL) is a snapshot nobody else references any more: its memory is
 * written over, which spares a 150 KB body (100 checks) an mmap, munmap
 * and a page fault per page on every render. */
static void snap_begin(health__buf_t *b, size_t hint, health__snap_t *reuse) {
  static const char zero[sizeof(health__snap_t)];
  health__buf_init(b);
  if (reuse) {
    b->data = (char *)reuse;
    b->cap = reuse->cap;
  } else if (hint) {
    b->data = malloc(hint);
    if (b->data) b->cap = hint;
  }
  health__buf_add(b, zero, offsetof(health__snap_t, body));
}

static health__snap_t *snap_end(health__buf_t *b, unsigned code, const char *ct) {
  if (b->failed || !b->data) {
    health__buf_free(b);
    return NULL;
  }
  health__snap_t *s = (health__snap_t *)(void *)b->data;
  atomic_init(&s->refs, 1);
  s->code = code;
  s->content_type = ct;
  s->len = b->len - offsetof(health__snap_t, body);
  s->cap = b->cap;
  return s;
}

static health__snap_t *snap_const(const char *body, unsigned code) {
  health__buf_t b;
  snap_begin(&b, 0, NULL);
  health__buf_adds(&b, body);
  return snap_end(&b, code, "application/json");
}

/* A response made from a snapshot, holding a reference to it (dropped by
 * snap_free_cb when libmicrohttpd frees the response); NULL: no memory. */
static struct MHD_Response *snap_response(health__snap_t *s) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer_with_free_callback(s->len, s->body, snap_free_cb);
  if (!r) return NULL;
  atomic_fetch_add(&s->refs, 1);
  if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, s->content_type) != MHD_YES ||
      MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
    MHD_destroy_response(r); /* drops the reference */
    return NULL;
  }
  return r;
}

/* ---- handle lifecycle ---- */

int health__obs_new(health_t *h) {
  struct health__obs *o = calloc(1, sizeof *o);
  if (!o) return -1;
  h->obs = o;
  if (pthread_mutex_init(&o->qlock, NULL) != 0) return -1;
  if (pthread_cond_init(&o->qcond, NULL) != 0) {
    pthread_mutex_destroy(&o->qlock);
    return -1;
  }
  o->inited |= 1;
  if (pthread_mutex_init(&o->cache_lock, NULL) != 0) return -1;
  o->inited |= 2;
  return 0;
}

static void slot_clear(health__slot_t *s) {
  if (s->resp) MHD_destroy_response(s->resp);
  health__snap_release(s->snap);
  memset(s, 0, sizeof *s);
}

void health__obs_free(health_t *h) {
  struct health__obs *o = h->obs;
  if (!o) return;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      slot_clear(&o->metrics[i][j]);
      slot_clear(&o->ep[i][j]);
    }
  if (o->per_check)
    for (size_t i = 0; i < 2 * health__checks_count_locked(h); i++) slot_clear(&o->per_check[i]);
  free(o->per_check);
  if (o->resp_403) MHD_destroy_response(o->resp_403);
  if (o->resp_404) MHD_destroy_response(o->resp_404);
  free(o->queue);
  free(o->ready_path);
  free(o->live_path);
  free(o->metrics_path);
  if (o->inited & 1) {
    pthread_mutex_destroy(&o->qlock);
    pthread_cond_destroy(&o->qcond);
  }
  if (o->inited & 2) pthread_mutex_destroy(&o->cache_lock);
  free(o);
  h->obs = NULL;
}

int health__obs_start(health_t *h, health_error_t *err) {
  struct health__obs *o = h->obs;
  size_t nchecks = health__checks_count_locked(h);
  if (nchecks) {
    health__slot_t *pc = calloc(2 * nchecks, sizeof *pc);
    if (!pc) return health__err(err, HEALTH_ENOMEM, "out of memory starting the answer cache");
    pthread_mutex_lock(&o->cache_lock);
    o->per_check = pc;
    pthread_mutex_unlock(&o->cache_lock);
  }
  return 0;
}

/* ---- rendering into the cache ---- */

enum { K_ENDPOINT, K_METRICS, K_CHECK };
typedef struct {
  int kind;
  unsigned ep;     /* K_ENDPOINT, K_CHECK: HEALTH_READINESS / HEALTH_LIVENESS */
  int status_only; /* K_ENDPOINT, K_METRICS */
  int om;          /* K_METRICS */
  size_t check;    /* K_CHECK */
} key_t_;

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The guard's published counters and the dropped log lines summed:
 * /metrics is rendered again when the sum moved. */
static unsigned long guard_events_now(health_t *h) {
  const health__guard_counts_t *gc = &h->http.guard_counts;
  return atomic_load(&gc->evicted) + atomic_load(&gc->reaped) + atomic_load(&gc->emfile) +
         (unsigned long)health__log_dropped(h);
}

static int refresh(health_t *h, health__slot_t *s, const key_t_ *k, uint64_t now) {
  struct health__obs *o = h->obs;
  /* Let go of the old answer first: libmicrohttpd drops its reference
   * now unless a connection is still sending it. */
  if (s->resp) MHD_destroy_response(s->resp);
  s->resp = NULL;
  health__snap_t *reuse = NULL;
  if (s->snap && atomic_load(&s->snap->refs) == 1) {
    reuse = s->snap; /* ours alone: overwritten by the new render */
    s->snap = NULL;
  }
  health__buf_t b;
  snap_begin(&b, k->kind == K_METRICS ? o->last_metrics_len + 1024 : 0, reuse);
  uint64_t vu, vu2;
  unsigned code = 200;
  const char *ct = CT_JSON;
  pthread_mutex_lock(&h->lock);
  uint64_t version = health__version(h);
  int inflight = health__inflight(h);
  unsigned long guard_events = guard_events_now(h);
  if (k->kind == K_ENDPOINT) {
    code = health__render_locked(h, k->ep, k->status_only, now, &b, &vu);
  } else {
    health__aggregate_locked(h, HEALTH_READINESS, now, &vu);
    health__aggregate_locked(h, HEALTH_LIVENESS, now, &vu2);
    vu = min_u64(vu, vu2);
    if (k->kind == K_METRICS) {
      health__metrics_render_locked(h, k->om, k->status_only, now, &b);
      ct = k->om ? CT_OM : CT_PROM;
    } else {
      const health__check_t *c = health__check_at_locked(h, k->check);
      health_status_t st =
          health__shown_status(health__check_status_locked(h, c, now, NULL), c->critical);
      health__buf_adds(&b, st == HEALTH_PASS   ? "{\"status\":\"pass\",\"checks\":{"
                           : st == HEALTH_WARN ? "{\"status\":\"warn\",\"checks\":{"
                                               : "{\"status\":\"fail\",\"checks\":{");
      health__render_check_locked(h, c, now, &b);
      health__buf_adds(&b, "}}\n");
      code = st == HEALTH_FAIL ? 503 : 200;
    }
  }
  pthread_mutex_unlock(&h->lock);
  health__snap_t *snap = snap_end(&b, code, ct);
  if (!snap) return -1;
  if (k->kind == K_METRICS) o->last_metrics_len = snap->len;
  health__snap_release(s->snap);
  s->snap = snap;
  s->version = version;
  s->valid_until_ms = vu;
  s->inflight = inflight;
  s->guard_events = guard_events;
  return 0;
}

/* The slot's snapshot, brought up to date; cache_lock held.  NULL only if
 * nothing could be rendered and nothing was cached. */
static health__snap_t *current(health_t *h, health__slot_t *s, const key_t_ *k) {
  uint64_t now = health__now_ms_coarse();
  if (!s->snap || s->version != health__version(h) || now >= s->valid_until_ms ||
      (k->kind == K_METRICS &&
       (s->inflight != health__inflight(h) || s->guard_events != guard_events_now(h))))
    refresh(h, s, k, now);
  return s->snap;
}

/* Constant-time comparison of "Bearer <token>" (the health port's rule
 * too, http/server.c): RFC 9110 11.4 allows 1*SP after the scheme. */
int health__bearer_ok(const health_t *h, const char *auth) {
  if (!auth || !h->detail_token || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
  const char *given = auth + 7;
  while (*given == ' ') given++;
  size_t gl = strlen(given), tl = strlen(h->detail_token);
  unsigned diff = (unsigned)(gl ^ tl);
  for (size_t i = 0; i < tl; i++)
    diff |= (unsigned char)(given[i % (gl ? gl : 1)] ^ h->detail_token[i]);
  return diff == 0 && gl == tl;
}

static int find_check(const health_t *h, const char *name, size_t *idx) {
  return health__check_find_locked(h, name, 0, idx) != NULL;
}

/* The slot for a request; cache_lock held.  NULL with *code 403/404 for
 * the per-check view's refusals; with *adhoc set, the caller owns a
 * snapshot rendered outside the cache (per-check view before start). */
static health__slot_t *slot_for(health_t *h, unsigned what, const char *check, int status_only,
                                int om, key_t_ *k, unsigned *code) {
  struct health__obs *o = h->obs;
  memset(k, 0, sizeof *k);
  if (what == HEALTH__ROUTE_METRICS) {
    k->kind = K_METRICS, k->om = om, k->status_only = status_only;
    return &o->metrics[om][status_only];
  }
  int ei = what == HEALTH_READINESS ? 0 : 1;
  if (!check) {
    k->kind = K_ENDPOINT, k->ep = what, k->status_only = status_only;
    return &o->ep[ei][status_only];
  }
  *code = 403;
  if (status_only) return NULL;
  *code = 404;
  size_t i;
  if (!o->per_check || !find_check(h, check, &i)) return NULL;
  k->kind = K_CHECK, k->ep = what, k->check = i;
  return &o->per_check[2 * i + (size_t)ei];
}

static const char msg_403[] =
    "{\"status\":\"fail\",\"output\":\"the per-check view needs full detail (HEALTH_DETAIL=full, or the bearer token)\"}\n";
static const char msg_404[] = "{\"status\":\"fail\",\"output\":\"no such check\"}\n";

HEALTH_EXPORT int health_answer_render(health_t *h, unsigned what, const char *check,
                                       const char *authorization, const char *accept,
                                       health_answer_t *out, health_error_t *err) {
  if (!out) return health__err(err, HEALTH_EINVAL, "out is NULL");
  memset(out, 0, sizeof *out);
  if (!h) return health__err(err, HEALTH_EINVAL, "handle is NULL");
  if (health__forked(h))
    return health__err(err, HEALTH_EFORKED, "%s: the handle belongs to the parent process",
                       __func__);
  if (what != HEALTH_READINESS && what != HEALTH_LIVENESS && what != HEALTH_METRICS)
    return health__err(err, HEALTH_EINVAL,
                       "what is HEALTH_READINESS, HEALTH_LIVENESS or HEALTH_METRICS");
  if (check && what == HEALTH_METRICS)
    return health__err(err, HEALTH_EINVAL, "a per-check view exists for readiness and liveness");
  int status_only = h->opt.detail == HEALTH_DETAIL_STATUS ||
                    (h->opt.detail == HEALTH_DETAIL_TOKEN && !health__bearer_ok(h, authorization));
  unsigned route = what == HEALTH_METRICS ? HEALTH__ROUTE_METRICS : what;
  struct health__obs *o = h->obs;
  key_t_ k;
  unsigned code = 0;
  health__snap_t *s = NULL;
  pthread_mutex_lock(&o->cache_lock);
  health__slot_t *slot =
      slot_for(h, route, check, status_only,
               route == HEALTH__ROUTE_METRICS && health__accept_openmetrics(accept), &k, &code);
  if (slot) {
    s = current(h, slot, &k);
    if (s) atomic_fetch_add(&s->refs, 1);
  }
  pthread_mutex_unlock(&o->cache_lock);
  if (!slot) s = snap_const(code == 403 ? msg_403 : msg_404, code); /* rare: not cached */
  if (!s) return health__err(err, HEALTH_ENOMEM, "out of memory");
  out->code = s->code;
  out->content_type = s->content_type;
  out->body = s->body;
  out->body_len = s->len;
  out->reserved[0] = s;
  return 0;
}

HEALTH_EXPORT void health_answer_release(health_answer_t *a) {
  if (!a) return;
  health__snap_release(a->reserved[0]);
  memset(a, 0, sizeof *a);
}

/* ---- the health port ---- */

static struct MHD_Response *const_response(const char *body) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!r) return NULL;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  return r;
}

int health__serve_extra(health_t *h, struct MHD_Connection *conn, unsigned route, int status_only) {
  struct health__obs *o = h->obs;
  const char *check = route == HEALTH__ROUTE_METRICS
                          ? NULL
                          : MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "check");
  int om = route == HEALTH__ROUTE_METRICS && health__accept_openmetrics(MHD_lookup_connection_value(
                                                 conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
  key_t_ k;
  unsigned code = 0;
  enum MHD_Result ret = MHD_NO;
  pthread_mutex_lock(&o->cache_lock);
  health__slot_t *slot = slot_for(h, route, check ? check : NULL, status_only, om, &k, &code);
  if (!slot) {
    struct MHD_Response **r = code == 403 ? &o->resp_403 : &o->resp_404;
    if (!*r) *r = const_response(code == 403 ? msg_403 : msg_404);
    if (*r) ret = MHD_queue_response(conn, code, *r);
  } else if (current(h, slot, &k)) {
    if (!slot->resp) slot->resp = snap_response(slot->snap);
    if (slot->resp) ret = MHD_queue_response(conn, slot->snap->code, slot->resp);
  }
  pthread_mutex_unlock(&o->cache_lock);
  return ret;
}

int health__serve_view(health_t *h, unsigned endpoint, int status_only, health__view_t *v) {
  struct health__obs *o = h->obs;
  key_t_ k;
  unsigned code = 0;
  int rc = -1;
  pthread_mutex_lock(&o->cache_lock);
  health__slot_t *slot = slot_for(h, endpoint, NULL, status_only, 0, &k, &code);
  health__snap_t *s = current(h, slot, &k);
  struct MHD_Response *r = s ? snap_response(s) : NULL;
  if (r) {
    if (v->response) MHD_destroy_response(v->response);
    v->response = r;
    v->version = slot->version;
    v->valid_until_ms = slot->valid_until_ms;
    v->code = s->code;
    rc = 0;
  }
  pthread_mutex_unlock(&o->cache_lock);
  return rc;
}
