/*
 * The checker interface: everything a built-in checker (a .c file of checkers/) may
 * use, and nothing of the engine.  A checker includes this header first
 * (it brings config.h, health.h and the connection layer net/conn.h) and never
 * health_int.h: it does not see struct health, the check records or their
 * lock.  checkers/adapter.c is the one adapter between this interface and the
 * engine.
 *
 * The shape of a checker (checkers/tcp.c is the smallest one):
 *
 *   typedef struct { health__checker_t *ck; ...target... } my_state_t;
 *
 *   static void my_run(health_result_t *r, void *arg) {
 *     my_state_t *st = arg;
 *     uint64_t deadline = health__checker_deadline(r);
 *     ... every blocking step ends at `deadline` (health__net_connect,
 *         health__tls_handshake, health__conn_read/write, health__resolve);
 *     on timeout: health__checker_timeout(st->ck, r, "connect");
 *     on success: health__checker_pass(r, elapsed_ms);
 *   }
 *
 *   health_my_add(h, name, ..., opts, err):
 *     st->ck = health__checker_new(h, name);      parse the target, then
 *     health__checker_add(st->ck, my_run, st, my_free, opts, "component", err);
 *   with my_free() calling health__checker_free(st->ck).
 */
#ifndef HEALTH_CHECKER_H
#define HEALTH_CHECKER_H

#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "health.h"
#include "core/stamp.h"

#include "net/conn.h"

/* A checker's link to its handle and its check (checkers/adapter.c). */
typedef struct health__checker health__checker_t;

/* ---- registration (before start, the thread of health_<checker>_add) ---- */

/* A link for the check `name` of `h`.  @return NULL when out of memory. */
health__checker_t *health__checker_new(health_t *h, const char *name);
/* Free the link (in the checker's free function; NULL is fine). */
void health__checker_free(health__checker_t *ck);
/*
 * Register the check: `run(r, state)` on the engine's workers, and
 * `state_free(state)` when the handle is freed.  `component_type` is the
 * default "componentType" ("component", "datastore", "system").  On
 * failure `state_free` has NOT been called: free the state yourself.
 * On success the check's timeout is known (health__checker_timeout_ms).
 * @return 0 or HEALTH_E*, with `err` filled.
 */
int health__checker_add(health__checker_t *ck, health_check_fn run, void *state,
                        void (*state_free)(void *), const health_check_options_t *opts,
                        const char *component_type, health_error_t *err);
/* The check's name, as registered. */
const char *health__checker_name(const health__checker_t *ck);
/* The check's timeout as the engine applies it (its options, else the
 * handle's default): the N of "timeout after N ms".  0 before _add. */
unsigned health__checker_timeout_ms(const health__checker_t *ck);
/* The handle, for the public API only (it is opaque here). */
health_t *health__checker_handle(const health__checker_t *ck);

/* ---- a run (the worker thread running the check) ---- */

/*
 * The run's deadline (monotonic ms) minus a slack, so that the checker's
 * own "timeout after N ms (phase)" reaches the engine before its generic
 * "timeout after N ms".  The default slack is a tenth of the remaining
 * time, at most 100 ms; _slack takes another rule (PostgreSQL and Redis
 * keep theirs: a twentieth, at most 25 ms).
 */
uint64_t health__checker_deadline(const health_result_t *r);
/*
 * Say which step the run is in ("dns", "connect", "tls handshake", a static
 * string).  Should the run outlive its deadline, the engine's own timeout
 * then names it too, so a slow machine that delays the checker past its
 * slack changes nothing in the message.
 */
void health__checker_phase(health_result_t *r, const char *phase);
uint64_t health__checker_deadline_slack(const health_result_t *r, unsigned fraction,
                                        unsigned max_ms);
/* The standard timeout message, "timeout after N ms (phase)", into buf. */
void health__checker_timeout_text(const health__checker_t *ck, const char *phase, char *buf,
                                  size_t len);
/* Publish it: HEALTH_FAIL with the standard timeout message. */
void health__checker_timeout(const health__checker_t *ck, health_result_t *r, const char *phase);
/* Publish a pass with the measured time in ms. */
void health__checker_pass(health_result_t *r, double elapsed_ms);
/* Anything else: health_result_set(r, HEALTH_FAIL, "...") (health.h). */

/* A checker that keeps a connection between runs: */
/* a connection attempt failed: ask for a jittered retry (engine/backoff.c). */
void health__checker_connect_failed(health__checker_t *ck, health_result_t *r);
/* a connection attempt succeeded. */
void health__checker_connected(health__checker_t *ck);
/* 0: close the connection after this run (health_fleet_set). */
int health__checker_keep_connection(const health_result_t *r);

/* The TLS context for a new connection (net/tls_files.c): rebuilt when a
 * CA, certificate or key file changed, logged as tls_files_reloaded; a
 * rebuild that fails keeps the old context and is logged once as
 * tls_files_reload_failed (a warning). */
struct ssl_ctx_st *health__checker_tls_ctx(const health__checker_t *ck, health__tls_files_t *f);

/* ---- logs (any thread; never with a secret in a field) ---- */

/* One JSON log line through the handle's sink: key/value C strings ending
 * with NULL (a key starting with '#' has a raw number as its value). */
void health__checker_log(const health__checker_t *ck, health_log_level_t level, const char *event,
                         ...);
/* The same through the check's repeat filter (core/logrepeat.c): a line that
 * repeats every run is printed once a minute with "repeated":N.  Only from
 * the check's runs (they never overlap). */
void health__checker_log_once(health__checker_t *ck, health_log_level_t level, const char *event,
                              ...);
/* The warning every TLS checker logs once, at registration, when
 * insecure_skip_verify turns certificate verification off: `event` is the
 * checker's own event name ("redis_tls_insecure", "http_tls_insecure"). */
void health__checker_warn_insecure(const health__checker_t *ck, const char *event);

/* ---- library utilities a checker may use ----
 * (The same declarations as the library's private headers; a repeated
 * identical declaration is valid C.) */
uint64_t health__now_ms(void); /* CLOCK_MONOTONIC, ms (core/time.c) */
uint64_t health__now_us(void); /* CLOCK_MONOTONIC, us (core/time.c) */
/* "pass", "warn", "fail" or "pending": the words of the JSON answers (core/core.c). */
const char *health__status_word(health_status_t s);
/* Fill `err` (may be NULL) and return `code` (core/error.c). */
int health__err(health_error_t *err, int code, const char *fmt, ...) HEALTH_PRINTF(3, 4);
/* 0, or HEALTH_EINVAL when an options struct missed its init function or
 * a reserved field of it is set
 * (core/error.c; the ABI policy, core/base_int.h). */
int health__reserved_check(uintptr_t stamp, void *const *reserved, size_t n, const char *stem,
                           health_error_t *err);
#ifndef HEALTH__RESERVED_CHECK
#define HEALTH__RESERVED_CHECK(o, stem, err)             \
  health__reserved_check((o)->init_stamp, (o)->reserved, \
                         sizeof(o)->reserved / sizeof(o)->reserved[0], stem, err)
#endif
/* Copy `url` replacing the password with "***"; copy `text` replacing
 * every occurrence of `secret` with "***" (core/redact.c). */
void health__redact_url(const char *url, char *out, size_t len);
void health__redact_secret(const char *text, const char *secret, char *out, size_t len);
/* Resolve on a thread the run can walk away from; 0: *out (freeaddrinfo
 * it), 1: timed out at `deadline` (*why: a note or NULL), -1: *why says
 * why.  Pass the check's slot, health__checker_dns(ck): a lookup still
 * running from an earlier run is waited for, never doubled (core/resolve.c,
 * core/base_int.h). */
#define HEALTH__RESOLVE_MAX 32
struct addrinfo;
typedef struct health__dns_slot health__dns_slot_t;
int health__resolve(health__dns_slot_t **slot, const char *host, const char *port,
                    uint64_t deadline, struct addrinfo **out, const char **why);
void health__resolve_slot_free(health__dns_slot_t **slot);
/* The check's lookup slot (only its runs use it: they never overlap). */
health__dns_slot_t **health__checker_dns(health__checker_t *ck);
/* Overwrite `n` bytes in a way the compiler may not drop (net/url.c). */
void health__wipe(void *p, size_t n);

#endif
